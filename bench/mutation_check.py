"""Mutation check: do the tests catch what they guard?

Each mutation below breaks one guard on purpose (a file, an exact snippet of it, its replacement)
and names the tests that must then fail. The script copies the working tree to a scratch
directory, runs all named tests once unmutated (they must pass), then applies each mutation
alone, runs its tests, and restores the file. A mutation is *killed* when its tests fail; one
that survives, or whose snippet no longer exists, makes the script exit non-zero.

The list holds the twelve guards that survived the audit of issue 10, the durable defects fixed
there (each mutation puts the defect back, showing the test failed before the fix), the
guards of the leases, idempotent submit and failover, and the seven behaviours issue 16 found no
test pinned (tests/pinned).

`make test` runs it after pytest (with the Makefile's TEST_* variables), so a change that weakens
a guard's tests, or rewrites a guard so its snippet is no longer found, fails CI.

    TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test TEST_REDIS_URL=redis://127.0.0.1:6379/15 \\
    TEST_REDIS_CACHE_URL=redis://127.0.0.1:6379/12 .venv/bin/python bench/mutation_check.py [--only NAME ...]

It uses its own database (`<TEST_DATABASE_URL's name>_mut`, created by pytest-django as
`test_<name>_mut` for the baseline run and reused by the mutation runs), so it does not collide
with a `make test` run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]


LEASES = "tests/workflows/test_leases.py"
WEBHOOK = "tests/workflows/test_webhook.py"
PINNED = "tests/pinned"

MUTATIONS = [
    # --- the twelve that survived the audit ---------------------------------------------------------
    Mutation(
        "search_claim no longer re-claims a running search whose lease expired",
        "matching/services/leases.py",
        "claimable = [SearchStatus.PENDING, SearchStatus.DISPATCHED, SearchStatus.RUNNING]",
        "claimable = [SearchStatus.PENDING, SearchStatus.DISPATCHED]",
        (f"{LEASES}::test_a_running_search_whose_lease_expired_is_claimed_again_by_the_next_worker",),
    ),
    Mutation(
        "no deadline check before a Celery run",
        "workflows/celery_engine/run.py",
        "        if search.deadline_at <= timezone.now():\n            search_time_out(",
        "        if False:\n            search_time_out(",
        (f"{LEASES}::test_a_search_past_its_deadline_times_out_instead_of_running",),
    ),
    Mutation(
        "dispatch_send sends a record already sent",
        "workflows/dispatch/submit.py",
        "    if dispatch.sent_at is not None:\n        return True\n    # In the trace",
        "    # In the trace",
        ("tests/workflows/test_dispatch.py::test_a_dispatch_already_sent_is_not_sent_again",),
    ),
    Mutation(
        "dispatch_send sends a superseded or finished attempt",
        "workflows/dispatch/submit.py",
        "    if search.attempt != dispatch.attempt or search.is_terminal:",
        "    if False:",
        ("tests/workflows/test_dispatch.py::test_a_dispatch_of_an_attempt_that_moved_on_is_closed_without_sending",),
    ),
    Mutation(
        "a rejected durable dispatch no longer fails the search",
        "workflows/dispatch/submit.py",
        "        search_fail(\n            search_id=search.pk, attempt=dispatch.attempt,",
        "        (lambda **kw: None)(\n            search_id=search.pk, attempt=dispatch.attempt,",
        ("tests/workflows/test_failover.py::test_a_start_the_durable_api_refuses_fails_the_search_with_its_reason",),
    ),
    Mutation(
        "the candidates feed accepts any token when MATCHING_INTERNAL_TOKEN is unset",
        "workflows/webhooks.py",
        "return bool(expected) and hmac.compare_digest(",
        "return hmac.compare_digest(",
        ("tests/workflows/test_candidates_endpoint.py::test_without_a_configured_token_the_feed_refuses_everyone",),
    ),
    Mutation(
        "the workflow sends a callback for a search cancelled at write-result",
        "workflows/durable/workflow.py",
        '    if not wrote and item.get("status") == CANCELLED:',
        "    if False:",
        (
            "tests/durable/test_workflow.py::"
            "test_a_search_cancelled_while_it_ran_is_not_written_over_and_gets_no_callback",
        ),
    ),
    Mutation(
        "a candidates page skips a row",
        "matching/candidates/cold_path.py",
        'next_after = rows[size - 1]["id"] if len(rows) > size else None',
        'next_after = rows[size]["id"] if len(rows) > size else None',
        ("tests/workflows/test_candidates_endpoint.py::test_pages_cover_every_prefiltered_candidate_exactly_once",),
    ),
    Mutation(
        "GET no longer refreshes a stale mirror",
        "matching/api/views.py",
        "        mirror_refresh_if_stale(search=search)\n",
        "",
        ("tests/mirror/test_refresh_on_read.py::test_get_answers_with_the_item_when_the_mirror_is_stale",),
    ),
    Mutation(
        "search_intervene's guard dropped (answering a search that waits on nothing)",
        "workflows/staff_actions.py",
        "    if search.status != SearchStatus.AWAITING_VETTING:\n        raise InterventionNotAllowed(",
        "    if False:\n        raise InterventionNotAllowed(",
        ("tests/workflows/test_intervene.py",),
    ),
    Mutation(
        "the reconciler takes the most recently checked first",
        "workflows/durable_console/reconcile.py",
        '.order_by(F("last_checked").asc(nulls_first=True), "updated_at")',
        '.order_by(F("last_checked").desc(nulls_last=True), "updated_at")',
        ("tests/mirror/test_reconcile.py::test_each_pass_takes_the_least_recently_checked_searches_first",),
    ),
    Mutation(
        "a callback of equal version is applied",
        "workflows/durable_console/callbacks.py",
        "    if version <= (mirrored.version if mirrored else 0):",
        "    if version < (mirrored.version if mirrored else 0):",
        (f"{WEBHOOK}::test_a_callback_of_the_same_version_under_another_id_changes_nothing",),
    ),
    # --- the durable defects put back ------------------------------------------------------------------
    Mutation(
        "defect: a {code, message} error is dropped",
        "workflows/durable_console/callbacks.py",
        '    execution.error = item_error_text({"error": payload.get("error")})',
        '    execution.error = (payload.get("error") or "")[:2000] if isinstance(payload.get("error"), str) else ""',
        (f"{WEBHOOK}::test_a_structured_workflow_error_keeps_its_code_and_message",),
    ),
    Mutation(
        "defect: a late failed callback after succeeded overwrites the mirror",
        "workflows/durable_console/callbacks.py",
        "    if search.is_terminal:\n"
        "        # Nothing changes after a terminal state: not the search, not its mirror.\n"
        "        return WebhookOutcome.IGNORED_TERMINAL\n",
        "",
        (f"{WEBHOOK}::test_a_late_failure_after_success_leaves_the_execution_mirror_as_it_was",),
    ),
    Mutation(
        "defect: a signed callback is applied to a Celery search",
        "workflows/durable_console/callbacks.py",
        "    if search.engine != Engine.DURABLE:\n        # A valid signature does not make the durable engine the "
        "owner of a Celery search.\n        return WebhookOutcome.WRONG_ENGINE\n",
        "",
        (f"{WEBHOOK}::test_a_signed_callback_for_a_search_on_the_celery_engine_is_refused",),
    ),
    Mutation(
        "defect: a released vetting claim leaves its timeline entry",
        "workflows/durable/api.py",
        'return Changes(set={"pending_callback": released}, untimeline=[entry])',
        'return Changes(set={"pending_callback": released})',
        ("tests/durable/test_api.py::test_an_approval_retried_after_lambda_errors_shows_once_in_the_timeline",),
    ),
    Mutation(
        "defect: the local stack's printed environment lacks AWS_ENDPOINT_URL_LAMBDA",
        "devtools/durable_local/stack.py",
        '            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_url,\n',
        "",
        (
            "tests/durable_local/test_local_stack.py::"
            "test_the_printed_console_environment_reads_durable_executions_from_the_local_stack",
        ),
    ),
    # --- leases, idempotency, failover -----------------------------------------------------------------
    Mutation(
        "completion ignores the claim generation",
        "matching/services/searches.py",
        "        if generation is not None:\n            rows = rows.filter(claim_generation=generation)\n",
        "",
        (f"{LEASES}::test_a_worker_whose_lease_was_taken_over_cannot_finish_the_attempt",),
    ),
    Mutation(
        "a claim ignores a live lease",
        "matching/services/leases.py",
        "        if held:\n            return None",
        "        if False:\n            return None",
        (f"{LEASES}::test_a_redelivered_message_is_refused_while_a_live_worker_holds_the_lease",),
    ),
    Mutation(
        "the heartbeat never renews",
        "workflows/celery_engine/heartbeat.py",
        "            while not self._stop.wait(self.renew_every):",
        "            while False:",
        (f"{LEASES}::test_a_slow_worker_keeps_its_lease_alive_and_is_never_sent_again",),
    ),
    Mutation(
        "an expired lease is not sent again",
        "workflows/celery_engine/recovery.py",
        "                dispatch_reopen(search_id=search_id, attempt=attempt)\n",
        "",
        (f"{LEASES}::test_an_expired_lease_sends_the_same_attempt_again_under_a_new_generation",),
    ),
    Mutation(
        "an Idempotency-Key replays whatever the body",
        "matching/services/idempotency.py",
        "        if not hmac.compare_digest(first.fingerprint, fingerprint):",
        "        if False:",
        ("tests/api/test_idempotent_submit.py::test_the_same_key_with_another_body_is_a_422",),
    ),
    Mutation(
        "the breaker opens one failure late",
        "workflows/durable_console/breaker.py",
        "if opened or failures >= self.failure_threshold:",
        "if opened or failures > self.failure_threshold:",
        ("tests/workflows/test_failover.py::test_consecutive_failures_open_the_circuit_and_then_no_request_is_made",),
    ),
    Mutation(
        "an ambiguous start is started again without asking",
        "workflows/dispatch/submit.py",
        "started = client.find_started(str(search.pk), dispatch.attempt) if dispatch.start_uncertain else None",
        "started = None",
        ("tests/workflows/test_failover.py::test_an_ambiguous_start_is_looked_up_by_name_and_never_started_twice",),
    ),
    Mutation(
        "new searches do not fail over while the circuit is open",
        "workflows/dispatch/engine_choice.py",
        "    return EngineChoice(Engine.CELERY, failed_over=reason)",
        "    return EngineChoice(engine)",
        (
            "tests/workflows/test_failover.py::"
            "test_while_the_circuit_is_open_new_searches_run_on_celery_and_staff_see_why",
        ),
    ),
    # --- behaviours no test pinned before issue 16 (tests/pinned) -------------------------------------
    Mutation(
        "a retry finds the first search made with its key, whoever's it is",
        "matching/services/idempotency.py",
        'first = SubmitIdempotencyKey.objects.select_related("search").get(seeker_id=seeker_id, key=key)',
        'first = SubmitIdempotencyKey.objects.select_related("search").filter(key=key).earliest("created_at")',
        (f"{PINNED}/test_idempotency_per_user.py::test_a_key_another_user_already_used_replays_each_users_own_search",),
    ),
    Mutation(
        "the recovery sweep takes back a lease renewed since its query",
        "matching/services/leases.py",
        "            lease_expires_at__lt=now,\n",
        "",
        (f"{PINNED}/test_sweepers.py::test_a_lease_renewed_between_the_sweeps_query_and_its_update_is_not_taken_back",),
    ),
    Mutation(
        "the dispatch sweeper sends records still inside their grace",
        "workflows/dispatch/submit.py",
        "cutoff = now - timedelta(seconds=settings.DISPATCH_GRACE_SECONDS)",
        "cutoff = now",
        (
            f"{PINNED}/test_sweepers.py::"
            "test_the_dispatch_sweeper_leaves_a_record_younger_than_its_default_grace_to_the_relay",
        ),
    ),
    Mutation(
        "a 429 from SnowTrace's notification endpoint is dead-lettered",
        "workflows/outbound/notifications.py",
        "RETRYABLE_STATUS = frozenset({408, 425, 429})",
        "RETRYABLE_STATUS = frozenset({408, 425})",
        (f"{PINNED}/test_notification_429.py::test_a_429_from_snowtrace_is_retried_with_backoff_not_dead_lettered",),
    ),
    Mutation(
        "callback versions are compared with the first attempt's",
        "workflows/durable_console/callbacks.py",
        "mirrored = WorkflowExecution.objects.select_for_update().filter(search=search, attempt=attempt).first()",
        'mirrored = WorkflowExecution.objects.select_for_update().filter(search=search).order_by("attempt").first()',
        (f"{PINNED}/test_callback_versions.py::test_a_late_older_callback_of_the_second_attempt_is_refused_as_stale",),
    ),
    Mutation(
        "the default per-user submit rate is 15 an hour, not the old service's 15 a minute",
        "snowbuddy/settings.py",
        'env_rate("MATCHING_SEARCH_RATE", "15/min")',
        'env_rate("MATCHING_SEARCH_RATE", "15/hour")',
        (f"{PINNED}/test_submit_rate_default.py::test_fifteen_searches_a_minute_per_user_by_default",),
    ),
    Mutation(
        "the warm index's cursor never advances (each refresh re-reads every change since the load)",
        "matching/candidates/warm_index.py",
        "cursor_at = max(state.cursor, db_now - self.overlap)",
        "cursor_at = state.cursor",
        (f"{PINNED}/test_warm_index_cursor.py",),
    ),
    Mutation(
        "a staff retry writes its new attempt and its audit row in two transactions",
        "workflows/staff_actions.py",
        "@transaction.atomic(durable=True)\ndef search_staff_retry(",
        "def search_staff_retry(",
        ("tests/console/test_action_audit_atomic.py::test_a_retry_whose_audit_fails_leaves_no_new_attempt",),
    ),
    Mutation(
        "the block search skips a part whose best score only ties the top K's last",
        "matching/engine/index.py",
        "if full and top.score[-1] > best and worst > rules.MIN_SCORE:",
        "if full and top.score[-1] >= best and worst > rules.MIN_SCORE:",
        ("tests/engine/test_blocks.py::test_blocks_rank_and_count_as_the_scan_and_the_baseline_and_skip_parts",),
    ),
    Mutation(
        "the block search counts a skipped part without checking its worst score passes",
        "matching/engine/index.py",
        "if full and top.score[-1] > best and worst > rules.MIN_SCORE:",
        "if full and top.score[-1] > best:",
        (
            "tests/engine/test_blocks.py::"
            "test_a_part_whose_worst_score_could_fail_the_threshold_is_scored_not_just_counted",
        ),
    ),
]


def _scratch_copy(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _environment(scratch: Path) -> dict[str, str]:
    database = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    return {
        **os.environ,
        "DATABASE_URL": database.rstrip("/") + "_mut",
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "REDIS_CACHE_URL": os.environ.get("TEST_REDIS_CACHE_URL", "redis://127.0.0.1:6379/12"),
        "SNOWBUDDY_VAR_DIR": str(scratch / "var"),
    }


def _pytest(
    scratch: Path, tests: tuple[str, ...], env: dict[str, str], *, fresh_db: bool = False
) -> tuple[int, str, float]:
    started = time.monotonic()
    # The baseline builds the test database from the current migrations; the mutations reuse it.
    database = "--create-db" if fresh_db else "--reuse-db"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", database, *tests],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, done.stdout[-3000:] + done.stderr[-2000:], time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="run only mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or any(word in m.name for word in args.only)]
    if args.list:
        for m in chosen:
            print(f"- {m.name}  ({m.path}; {', '.join(m.tests)})")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        scratch = Path(tmp)
        _scratch_copy(scratch)
        env = _environment(scratch)
        every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        code, output, seconds = _pytest(scratch, every_test, env, fresh_db=True)
        if code != 0:
            print(f"the named tests do not pass unmutated (exit {code}):\n{output}")
            return 2
        print(f"baseline: {len(every_test)} test selections pass unmutated ({seconds:.1f}s)\n")

        killed, problems = 0, []
        for number, mutation in enumerate(chosen, start=1):
            path = scratch / mutation.path
            source = path.read_text()
            if source.count(mutation.original) != 1:
                problems.append(f"{mutation.name}: snippet found {source.count(mutation.original)} times")
                print(f"{number:2}. NOT APPLIED  {mutation.name}: the snippet is not in {mutation.path} once")
                continue
            path.write_text(source.replace(mutation.original, mutation.replacement))
            try:
                code, output, seconds = _pytest(scratch, mutation.tests, env)
            finally:
                path.write_text(source)
            if code == 1:
                killed += 1
                verdict = "killed  "
            else:
                verdict = "SURVIVED" if code == 0 else f"ERROR {code}"
                problems.append(f"{mutation.name}: {verdict}")
            print(f"{number:2}. {verdict} {mutation.name}  ({seconds:.1f}s)")
            if code not in (0, 1):
                print(output)

    print(f"\nkilled {killed} of {len(chosen)} mutations")
    for problem in problems:
        print(f"  not killed: {problem}")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
