"""Drift reconciliation: console vs. DynamoDB item (moto server) vs. durable execution (scripted Lambda)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from matching.models import Engine, Search, SearchEvent, SearchResult, SearchStatus
from tests.mirror.conftest import RESULTS
from workflows.durable_console.reconcile import Outcome, ReconcileConfig, search_reconcile, searches_reconcile_drift
from workflows.mirror.state import workflow_state_sync
from workflows.models import DriftState, WorkflowExecution

pytestmark = pytest.mark.django_db

CONFIG = ReconcileConfig(durable_start_grace_seconds=120, batch=50, min_age_seconds=30)


def reconcile(search: Search):
    return search_reconcile(search=search, config=CONFIG)


def drift(search: Search, attempt: int = 1) -> tuple[str, str]:
    row = WorkflowExecution.objects.get(search=search, attempt=attempt)
    assert row.drift_checked_at is not None
    return row.drift_state, row.drift_reason


# --- durable: repairs ------------------------------------------------------------------------------


def test_a_missed_terminal_callback_is_repaired_from_the_item(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=600)
    state.put(search, status="succeeded", version=7, results=RESULTS)

    result = reconcile(search)

    assert result.outcome == Outcome.REPAIRED and "says succeeded" in result.reason
    search.refresh_from_db()
    assert search.status == SearchStatus.SUCCEEDED and SearchResult.objects.filter(search=search).count() == 2
    assert drift(search)[0] == DriftState.REPAIRED
    assert SearchEvent.objects.filter(search=search, kind="succeeded", actor="reconciler").exists()
    assert not lambda_api.requests  # the item was enough


def test_a_status_the_mirror_recorded_but_the_search_missed_is_applied(state, make_search, lambda_api):
    search = make_search(status="dispatched", idle_seconds=600)
    item = state.put(search, status="awaiting_vetting", version=4)
    # The mirror already holds v4 (say the status transition lost a race then); the search did not move.
    WorkflowExecution.objects.create(
        search=search, attempt=1, engine=Engine.DURABLE, status="awaiting_vetting", version=4
    )
    lambda_api.add(item["execution_arn"], "RUNNING")

    result = reconcile(search)

    search.refresh_from_db()
    assert result.outcome == Outcome.REPAIRED and search.status == SearchStatus.AWAITING_VETTING


@pytest.mark.parametrize(
    ("execution_status", "error", "expected", "words"),
    [
        (
            "STOPPED",
            {"ErrorType": "Stopped", "ErrorMessage": "stopped from the Lambda console"},
            "cancelled",
            "stopped outside the console",
        ),
        (
            "FAILED",
            {"ErrorType": "Runtime.OutOfMemory", "ErrorMessage": "out of memory"},
            "failed",
            "Runtime.OutOfMemory: out of memory",
        ),
        ("TIMED_OUT", None, "timed_out", "timed out"),
    ],
)
def test_an_execution_that_ended_without_writing_its_item_ends_the_search(
    state, make_search, lambda_api, execution_status, error, expected, words
):
    search = make_search(status="running", idle_seconds=600)
    item = state.put(search, status="running", version=2)
    lambda_api.add(item["execution_arn"], execution_status, error=error)

    result = reconcile(search)

    search.refresh_from_db()
    assert result.outcome == Outcome.REPAIRED and search.status == expected
    assert words in search.error and search.finished_at is not None
    mirror = WorkflowExecution.objects.get(search=search, attempt=1)
    assert (mirror.status, mirror.version, mirror.drift_state) == (expected, 2, DriftState.REPAIRED)
    assert execution_status in mirror.drift_reason
    assert SearchEvent.objects.get(search=search, kind=expected).actor == "reconciler"
    # Checked again: the search is finished, nothing more to do.
    assert reconcile(search).outcome == Outcome.SKIPPED


def test_a_durable_execution_stopped_outside_the_console_cancels_a_search_waiting_on_vetting(
    state, make_search, lambda_api
):
    search = make_search(status="dispatched", idle_seconds=900)
    arn = state.put(search, status="awaiting_vetting", version=5)["execution_arn"]
    workflow_state_sync(full=True)  # the console mirrors the wait
    search.refresh_from_db()
    assert search.status == SearchStatus.AWAITING_VETTING
    Search.objects.filter(pk=search.pk).update(updated_at=timezone.now() - timedelta(hours=1))  # a long wait
    lambda_api.add(arn, "STOPPED", error={"ErrorType": "Stopped", "ErrorMessage": "operator stopped it"})

    searches_reconcile_drift(config=CONFIG)

    search.refresh_from_db()
    assert search.status == SearchStatus.CANCELLED
    assert search.error == "the durable execution was stopped outside the console: Stopped: operator stopped it"


def test_when_the_item_catches_up_meanwhile_its_own_terminal_status_wins(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=600)
    arn = state.put(search, status="running", version=2)["execution_arn"]
    lambda_api.add(arn, "STOPPED")
    # A staff cancel through the Durable API lands between our two reads.
    lambda_api.on_get = lambda _arn: state.update(
        search, status="cancelled", error={"code": "cancelled", "message": "duplicate search"}
    )

    result = reconcile(search)

    search.refresh_from_db()
    assert result.outcome == Outcome.REPAIRED and search.status == SearchStatus.CANCELLED
    assert search.error == "cancelled: duplicate search"
    assert WorkflowExecution.objects.get(search=search).version == 3


# --- durable: flags ---------------------------------------------------------------------------------


def test_an_execution_that_succeeded_without_writing_results_is_flagged_once(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=600)
    arn = state.put(search, status="running", version=2)["execution_arn"]
    lambda_api.add(arn, "SUCCEEDED")

    first, second = reconcile(search), reconcile(search)

    search.refresh_from_db()
    assert first.outcome == second.outcome == Outcome.FLAGGED and search.status == SearchStatus.RUNNING
    state_, reason = drift(search)
    assert state_ == DriftState.FLAGGED and "results never reached DynamoDB" in reason
    assert SearchEvent.objects.filter(search=search, kind="drift_flagged").count() == 1


def test_an_execution_that_no_longer_exists_is_flagged(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=600)
    state.put(search, status="running", version=2)
    result = reconcile(search)
    assert result.outcome == Outcome.FLAGGED and "does not exist" in result.reason
    search.refresh_from_db()
    assert search.status == SearchStatus.RUNNING


def test_a_running_execution_with_a_running_item_is_in_agreement(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=600)
    arn = state.put(search, status="running", version=2)["execution_arn"]
    lambda_api.add(arn, "RUNNING")
    result = reconcile(search)
    assert result.outcome == Outcome.OK and drift(search) == (DriftState.OK, "execution RUNNING, item running v2")


def test_a_running_execution_whose_item_was_deleted_is_flagged(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=600)
    arn = state.put(search, status="running", version=2)["execution_arn"]
    workflow_state_sync(full=True)
    state.delete(search)
    lambda_api.add(arn, "RUNNING")
    result = reconcile(search)
    assert result.outcome == Outcome.FLAGGED and "has no item" in result.reason


def test_no_item_is_fine_while_starting_and_flagged_after_the_grace_period(state, make_search, lambda_api):
    fresh = make_search(status="dispatched", idle_seconds=10)
    stale = make_search(status="dispatched", idle_seconds=600)
    assert reconcile(fresh).outcome == Outcome.OK
    result = reconcile(stale)
    assert result.outcome == Outcome.FLAGGED and "no DynamoDB item" in result.reason


def test_an_item_of_another_attempt_is_flagged(state, make_search, lambda_api):
    behind, ahead = make_search(status="dispatched", idle_seconds=600), make_search(status="running", idle_seconds=600)
    Search.objects.filter(pk=behind.pk).update(attempt=2)
    state.put(behind, attempt=1, status="failed", version=6)
    state.put(ahead, attempt=3, status="running", version=9)

    assert "attempt 2 was never started" in reconcile(behind).reason
    assert "newer than the console's attempt 1" in reconcile(ahead).reason
    for search in (behind, ahead):
        search.refresh_from_db()
        assert not search.is_terminal


def test_dynamodb_or_lambda_unreachable_is_flagged_not_repaired(state, make_search, lambda_api, settings):
    search = make_search(status="running", idle_seconds=600)
    arn = state.put(search, status="running", version=2)["execution_arn"]
    lambda_api.add(arn, "STOPPED")
    lambda_api.failing = True

    result = reconcile(search)
    assert result.outcome == Outcome.FLAGGED and "could not read the durable execution" in result.reason

    settings.MATCHING_WORKFLOW_STATE_TABLE = "no-such-table"
    result = reconcile(search)
    assert result.outcome == Outcome.FLAGGED and "could not read the DynamoDB item" in result.reason
    search.refresh_from_db()
    assert search.status == SearchStatus.RUNNING


# --- Celery: the lease's business --------------------------------------------------------------------


def test_a_celery_search_is_left_to_its_lease_and_the_reason_says_so(make_search):
    held = make_search(engine=Engine.CELERY, status="running", idle_seconds=3600)
    Search.objects.filter(pk=held.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=15), lease_owner="celery:w1"
    )
    expired = make_search(engine=Engine.CELERY, status="running", idle_seconds=3600)
    Search.objects.filter(pk=expired.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=40))
    waiting = make_search(engine=Engine.CELERY, status="pending", idle_seconds=3600)

    results = [reconcile(s) for s in (held, expired, waiting)]

    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert "leased to celery:w1 for 1" in results[0].reason
    assert "expired 4" in results[1].reason and "re-sent shortly" in results[1].reason
    for search in (held, expired, waiting):
        before = search.status
        search.refresh_from_db()
        assert search.attempt == 1 and search.status == before  # nothing re-dispatched here


# --- the periodic pass and the command ------------------------------------------------------------------


def test_the_periodic_pass_checks_old_unfinished_searches_with_one_batch_read(
    state, make_search, lambda_api, dynamo_requests
):
    durable = [make_search(status="running", idle_seconds=600) for _ in range(3)]
    for search in durable:
        lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "RUNNING")
    stopped = durable[0]
    lambda_api.executions[f"arn:local:durable:{stopped.pk}-a1"].status = "STOPPED"
    too_fresh = make_search(status="running", idle_seconds=5)
    finished = make_search(status="succeeded", idle_seconds=600)
    requests = dynamo_requests()

    report = searches_reconcile_drift(config=CONFIG)

    assert report.checked == 3 and report.counts == {"ok": 2, "repaired": 1}
    assert requests.operations.count("BatchGetItem") == 1 and "GetItem" in requests.operations  # the re-read
    checked = set(WorkflowExecution.objects.filter(drift_checked_at__isnull=False).values_list("search", flat=True))
    assert checked == {s.pk for s in durable}
    assert too_fresh.pk not in checked and finished.pk not in checked
    stopped.refresh_from_db()
    assert stopped.status == SearchStatus.CANCELLED

    # The least recently checked go first: a limit of 1 picks one not checked in the last run.
    assert searches_reconcile_drift(config=CONFIG, limit=1).checked == 1


def test_each_pass_takes_the_least_recently_checked_searches_first(state, make_search, lambda_api):
    searches = [make_search(status="running", idle_seconds=600) for _ in range(3)]
    for search in searches:
        lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "RUNNING")
    searches_reconcile_drift(config=CONFIG)
    now = timezone.now()
    for minutes, search in zip((5, 30, 10), searches, strict=True):
        WorkflowExecution.objects.filter(search=search).update(drift_checked_at=now - timedelta(minutes=minutes))

    picked = [searches_reconcile_drift(config=CONFIG, limit=1).results[0].search_id for _ in range(3)]

    assert picked == [searches[1].pk, searches[2].pk, searches[0].pk]


def test_the_command_checks_one_search_on_demand(state, make_search, lambda_api):
    search = make_search(status="running", idle_seconds=5)  # too fresh for the periodic pass
    arn = state.put(search, status="running", version=2)["execution_arn"]
    lambda_api.add(arn, "FAILED", error={"ErrorType": "Boom", "ErrorMessage": "bad"})
    out = io.StringIO()
    call_command("reconcile_searches", "--search", str(search.pk), stdout=out)
    assert f"{search.pk}: repaired:" in out.getvalue()
    search.refresh_from_db()
    assert search.status == SearchStatus.FAILED
