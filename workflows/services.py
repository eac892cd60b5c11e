"""Writes that move searches through the engines: submit, retry and cancel (they start or stop
engine work), dispatch (the outbox), the Celery run, workflow callbacks and notifications."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone, translation
from kombu.exceptions import OperationalError as BrokerError

from matching import metrics
from matching.candidates import candidate_index, profile_nicknames
from matching.engine import Match, SearchRequest
from matching.models import (
    TERMINAL_STATUSES,
    ApiClientKey,
    Engine,
    Search,
    SearchEventKind,
    SearchStatus,
    StaffActionKind,
    StaffActionOutcome,
    staff_actor,
)
from matching.services import (
    idempotency_key_attach,
    idempotency_key_take,
    search_attention_mark,
    search_claim,
    search_create,
    search_event_record,
    search_fail,
    search_mark_cancelled,
    search_mark_dispatched,
    search_new_attempt,
    search_record_engine_status,
    search_succeed,
    search_time_out,
    staff_action_record,
)
from workflows.client import (
    DurableApiClient,
    DurableApiConfig,
    DurableApiConfigError,
    DurableApiError,
    DurableApiRejected,
    DurableApiUnavailable,
)
from workflows.durable import tracing
from workflows.dynamo import DynamoStateError
from workflows.leases import LeaseHeartbeat
from workflows.mirror import MirrorNotApplicable, item_error_text, search_mirror_resync
from workflows.models import (
    DriftState,
    EngineRouting,
    RoutingMode,
    SearchDispatch,
    WebhookDelivery,
    WebhookOutcome,
    WorkflowExecution,
)
from workflows.notifications import notifications_kick
from workflows.orchestrator import EngineChoice, engine_for_new_search
from workflows.relay import DispatchRelay
from workflows.routing import routing_forget
from workflows.vetting import VettingDecisionInvalid, vetting_intervene, vetting_start, vetting_wanted

logger = logging.getLogger(__name__)

RUN_SEARCH_TASK = "workflows.tasks.run_search"


def search_submit(
    *,
    seeker_id: str,
    preferences: dict,
    acting_user: str | None = None,
    api_key: ApiClientKey | None = None,
    idempotency_key: str = "",
    request_fingerprint: str = "",
    input_warnings: list[dict] | None = None,
) -> Search:
    """Store a validated search and its dispatch record together; dispatch after commit.

    `input_warnings` (fields of an original-shape body that were ignored, names that resolve to
    nothing) go into the search's audit, in its `submitted` event.

    With an `idempotency_key`, a repeat of the same user's request (same key and body fingerprint)
    returns the search the first one created, marked `replayed`; the same key with another body
    raises matching.services.IdempotencyKeyReused.
    """
    choice = engine_for_new_search(preferences=preferences)
    with transaction.atomic(durable=True):
        if idempotency_key:
            earlier = idempotency_key_take(seeker_id=seeker_id, key=idempotency_key, fingerprint=request_fingerprint)
            if earlier is not None:
                earlier.replayed = True
                return earlier
        search = search_create(
            seeker_id=seeker_id,
            preferences=preferences,
            engine=choice.engine,
            acting_user=acting_user,
            api_key=api_key,
            input_warnings=input_warnings,
        )
        if choice.failed_over:
            search_event_record(
                search_id=search.pk, attempt=1, kind=SearchEventKind.FAILED_OVER, detail=choice.failed_over
            )
            transaction.on_commit(metrics.FAILOVERS.inc)
        if idempotency_key:
            idempotency_key_attach(seeker_id=seeker_id, key=idempotency_key, search=search)
        dispatch_create(search=search)
    search.replayed = False
    return search


def search_retry(
    *,
    search: Search,
    acting_user: str,
    reason: str,
    engine: str | None = None,
    allowed_from: Iterable[str] = TERMINAL_STATUSES,
) -> bool:
    """Start a new attempt with a fresh deadline and dispatch record, on `engine` or, when None, on
    the engine new searches go to. Staff retry finished searches; the drift reconciler may also
    retry a stuck active one by passing `allowed_from`. Runs in the caller's transaction if there is
    one (a staff retry's audit row commits with it); the dispatch is sent after the outermost commit."""
    choice = EngineChoice(engine) if engine else engine_for_new_search(preferences=search.preferences)
    with transaction.atomic():
        retried = search_new_attempt(
            search=search, engine=choice.engine, acting_user=acting_user, reason=reason, allowed_from=allowed_from
        )
        if retried is None:
            return False
        if choice.failed_over:
            search_event_record(
                search_id=retried.pk,
                attempt=retried.attempt,
                kind=SearchEventKind.FAILED_OVER,
                detail=choice.failed_over,
            )
            transaction.on_commit(metrics.FAILOVERS.inc)
        dispatch_create(search=retried)
    return True


def search_cancel(*, search: Search, reason: str, acting_user: str) -> bool:
    """Cancel in the console first (the system of record), then, after commit, stop the engine's
    work: the durable execution, or the Celery task (a task that starts anyway finds the search
    cancelled and does nothing). Runs in the caller's transaction if there is one (a staff cancel's
    audit row commits with it); the engine is told only after the outermost commit."""
    attempt = search.attempt
    with transaction.atomic():
        done = search_mark_cancelled(search=search, reason=reason, acting_user=acting_user)
        if done:
            notifications_kick(search_id=search.pk)
        if done and search.engine == Engine.DURABLE:
            transaction.on_commit(lambda: durable_cancel_send(search_id=search.pk, attempt=attempt, reason=reason))
        elif done:
            transaction.on_commit(lambda: celery_revoke_send(search_id=search.pk, attempt=attempt))
    return done


# Sends dispatch records after commit, off the request thread (workflows/relay.py).
dispatch_relay = DispatchRelay(lambda dispatch_id: dispatch_send(dispatch_id=dispatch_id, quick=True))


def dispatch_create(*, search: Search) -> SearchDispatch:
    """Write the dispatch record inside the caller's transaction; send it after commit."""
    dispatch = SearchDispatch.objects.create(
        search=search, attempt=search.attempt, engine=search.engine, traceparent=tracing.current_traceparent()
    )
    transaction.on_commit(lambda: dispatch_schedule(dispatch_id=dispatch.pk))
    return dispatch


def dispatch_schedule(*, dispatch_id: int) -> None:
    """One quick try to send, off the caller's thread; the sweeper sends whatever that missed."""
    if settings.MATCHING_DISPATCH_RELAY == "inline":
        dispatch_send(dispatch_id=dispatch_id, quick=True)
    else:
        dispatch_relay.submit(dispatch_id)


def dispatch_reopen(*, search_id, attempt: int) -> int | None:
    """Mark an attempt's dispatch record unsent again (its message was lost), inside the caller's
    transaction, and send it after commit. Returns the record's id (None if it has none)."""
    dispatch_id = (
        SearchDispatch.objects.filter(search_id=search_id, attempt=attempt).values_list("pk", flat=True).first()
    )
    if dispatch_id is None:
        return None
    SearchDispatch.objects.filter(pk=dispatch_id).update(sent_at=None)
    transaction.on_commit(lambda: dispatch_schedule(dispatch_id=dispatch_id))
    return dispatch_id


def dispatch_send(*, dispatch_id: int, quick: bool = False) -> bool:
    """Hand one dispatch record to its engine. Safe to call twice: the engine's claim dedups."""
    dispatch = SearchDispatch.objects.select_related("search").get(pk=dispatch_id)
    if dispatch.sent_at is not None:
        return True
    # In the trace of the request that wrote the record, whichever thread or process sends it.
    parent = {"traceparent": dispatch.traceparent} if dispatch.traceparent else None
    attributes = {"snowbuddy.search_id": str(dispatch.search_id), "snowbuddy.attempt": dispatch.attempt}
    with tracing.span_in(f"dispatch send {dispatch.engine}", parent, attributes=attributes):
        return _dispatch_send(dispatch, quick=quick)


def _dispatch_send(dispatch: SearchDispatch, *, quick: bool) -> bool:
    search = dispatch.search
    if search.attempt != dispatch.attempt or search.is_terminal:
        SearchDispatch.objects.filter(pk=dispatch.pk, sent_at__isnull=True).update(sent_at=timezone.now())
        return True
    try:
        _send_to_engine(dispatch, quick=quick)
    except (DurableApiRejected, DurableApiConfigError) as exc:
        # The request itself is wrong; resending cannot help. Fail the search readably.
        SearchDispatch.objects.filter(pk=dispatch.pk).update(
            sent_at=timezone.now(), send_count=F("send_count") + 1, last_error=str(exc)[:2000]
        )
        metrics.outbox_send(
            outbox="dispatch", outcome="refused", search_id=search.pk, attempt=dispatch.attempt,
            engine=dispatch.engine, detail=str(exc),
        )  # fmt: skip
        search_fail(
            search_id=search.pk, attempt=dispatch.attempt, error=f"the durable engine refused the search: {exc}"
        )
        return False
    except (BrokerError, DurableApiUnavailable, ConnectionError, OSError) as exc:
        # Left unsent: the sweeper tries again. Nothing is lost. A durable start that got as far
        # as the network may have started: the next try asks for it first.
        uncertain = isinstance(exc, DurableApiUnavailable) and exc.maybe_delivered
        SearchDispatch.objects.filter(pk=dispatch.pk).update(
            send_count=F("send_count") + 1,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            **({"start_uncertain": True} if uncertain else {}),
        )
        metrics.outbox_send(
            outbox="dispatch", outcome="retry", search_id=search.pk, attempt=dispatch.attempt,
            engine=dispatch.engine, detail=f"{type(exc).__name__}: {exc}",
        )  # fmt: skip
        return False
    with transaction.atomic(durable=True):
        SearchDispatch.objects.filter(pk=dispatch.pk).update(
            sent_at=timezone.now(), send_count=F("send_count") + 1, last_error="", start_uncertain=False
        )
    metrics.outbox_send(
        outbox="dispatch", outcome="sent", search_id=search.pk, attempt=dispatch.attempt, engine=dispatch.engine
    )
    queue_lease = _queue_lease_seconds(dispatch.send_count + 1) if dispatch.engine == Engine.CELERY else None
    search_mark_dispatched(search_id=search.pk, attempt=dispatch.attempt, queue_lease_seconds=queue_lease)
    return True


def _queue_lease_seconds(sends: int) -> int:
    # Each re-send of a message that was never claimed waits twice as long: a long queue is not
    # flooded with copies of its own messages.
    return min(settings.MATCHING_QUEUE_LEASE_SECONDS * 2 ** max(sends - 1, 0), 3600)


def _send_to_engine(dispatch: SearchDispatch, *, quick: bool) -> None:
    search = dispatch.search
    if dispatch.engine == Engine.CELERY:
        sent = current_app.send_task(RUN_SEARCH_TASK, args=[str(search.pk), dispatch.attempt], retry=False)
        WorkflowExecution.objects.update_or_create(
            search=search,
            attempt=dispatch.attempt,
            defaults={"celery_task_id": sent.id},
            create_defaults={"engine": Engine.CELERY, "status": "dispatched", "celery_task_id": sent.id},
        )
        return
    if not settings.MATCHING_WORKFLOW_CALLBACK_URL:
        raise DurableApiConfigError("MATCHING_WORKFLOW_CALLBACK_URL is required for the durable engine")
    client = DurableApiClient.from_settings(quick=quick)
    started = client.find_started(str(search.pk), dispatch.attempt) if dispatch.start_uncertain else None
    if started is not None:
        search_event_record(
            search_id=search.pk,
            attempt=dispatch.attempt,
            kind=SearchEventKind.START_RESOLVED,
            detail=f"an uncertain start had run: execution {started.get('execution_name', '?')}; not started again",
        )
    else:
        started = client.start(
            search_id=str(search.pk),
            attempt=dispatch.attempt,
            seeker_id=search.seeker_id,
            preferences=search.preferences,
            callback_webhook=settings.MATCHING_WORKFLOW_CALLBACK_URL,
            timeout_seconds=max(int((search.deadline_at - timezone.now()).total_seconds()), 1),
        )
    WorkflowExecution.objects.update_or_create(
        search=search,
        attempt=dispatch.attempt,
        defaults={
            "engine": Engine.DURABLE,
            "execution_name": (started.get("execution_name") or "")[:64],
            "execution_arn": started.get("execution_arn") or "",
        },
    )


def dispatch_sweep(*, now=None, batch_size: int = 200) -> int:
    """Send dispatch records left behind (a crash between commit and send)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DISPATCH_GRACE_SECONDS)
    stale = SearchDispatch.objects.filter(sent_at__isnull=True, created_at__lte=cutoff).order_by("created_at")
    return sum(dispatch_send(dispatch_id=pk) for pk in list(stale.values_list("pk", flat=True)[:batch_size]))


def search_run_on_celery(
    *, search_id: str, attempt: int, worker: str = "celery", timings: dict[str, float] | None = None
) -> str:
    """Claim, match and finish one attempt under a renewed lease. Returns what happened, for the log.

    Candidates come from this process's warm index (matching/candidates.py). `timings`, when
    given, receives each stage's seconds: claim, candidates (index refresh), search, store."""
    stages = timings if timings is not None else {}
    began = time.perf_counter()
    search = search_claim(search_id=search_id, attempt=attempt, worker=worker)
    stages["claim"] = (lap := time.perf_counter()) - began
    if search is None:
        return "skipped: not claimable (finished, cancelled, superseded, or leased to a live worker)"
    generation = search.claim_generation
    with LeaseHeartbeat(search):
        if search.deadline_at <= timezone.now():
            search_time_out(search_id=search.pk, attempt=attempt, generation=generation)
            return "timed out before running"
        index = candidate_index().current()
        stages["candidates"] = (mark := time.perf_counter()) - lap
        request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
        matches = index.search(request)
        nicknames = profile_nicknames(user_ids=[m.user_id for m in matches])
        stages["search"] = (lap := time.perf_counter()) - mark
        if matches and vetting_wanted(search.preferences):
            metrics.search_stages(engine=Engine.CELERY, stages=stages)
            return vetting_start(search=search, matches=matches, nicknames=nicknames)
        succeeded = search_succeed(
            search_id=search.pk, attempt=attempt, matches=matches, nicknames=nicknames, generation=generation
        )
        stages["store"] = time.perf_counter() - lap
    metrics.search_stages(engine=Engine.CELERY, stages=stages)
    spent = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in stages.items())
    if succeeded:
        return f"succeeded with {len(matches)} results from {len(index):,} indexed profiles ({spent})"
    return "finished, but the attempt had moved on (cancelled, timed out, or its lease was taken over)"


def celery_revoke_send(*, search_id, attempt: int) -> None:
    """Revoke the queued Celery task of a cancelled attempt (best effort: the claim refuses it anyway)."""
    task_id = (
        WorkflowExecution.objects.filter(search_id=search_id, attempt=attempt)
        .values_list("celery_task_id", flat=True)
        .first()
    )
    if not task_id:
        return
    try:
        current_app.control.revoke(task_id)
        detail = f"celery task {task_id} revoked"
    except (BrokerError, ConnectionError, OSError) as exc:
        detail = f"could not revoke celery task {task_id}: {type(exc).__name__}"
    search_event_record(search_id=search_id, attempt=attempt, kind=SearchEventKind.REMOTE_CANCEL, detail=detail)


def durable_cancel_send(*, search_id, attempt: int, reason: str) -> None:
    """Stop the durable execution of a search the console has already cancelled."""
    try:
        DurableApiClient.from_settings().cancel(str(search_id), reason=reason)
        detail = "durable execution stopped"
    except DurableApiError as exc:
        logger.warning("could not stop the durable execution of %s: %s", search_id, exc)
        detail = f"could not stop the durable execution: {exc}"
    search_event_record(search_id=search_id, attempt=attempt, kind=SearchEventKind.REMOTE_CANCEL, detail=detail)


def workflow_callback_apply(*, webhook_id: str, body: dict) -> str:
    """Apply one verified workflow callback. Returns the outcome, which is also stored.

    Idempotent by `webhook-id`; an item `version` not newer than the last applied one, or
    anything after the search finished, changes nothing.
    """
    search_id, attempt, status, version = body["search_id"], body["attempt"], body["status"], body["version"]
    payload = body.get("payload") or {}
    with transaction.atomic(durable=True):
        search = Search.objects.select_for_update().filter(pk=search_id).first()
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    webhook_id=webhook_id,
                    search=search,
                    status=status,
                    version=version,
                    outcome=WebhookOutcome.RECEIVED,
                )
        except IntegrityError:
            metrics.CALLBACKS.labels(outcome=WebhookOutcome.DUPLICATE).inc()
            return WebhookOutcome.DUPLICATE
        outcome = _apply_callback(search, attempt=attempt, status=status, version=version, payload=payload)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(outcome=outcome)
        transaction.on_commit(metrics.CALLBACKS.labels(outcome=outcome).inc)
        if outcome == WebhookOutcome.APPLIED and status in TERMINAL_STATUSES:
            notifications_kick(search_id=search_id)
    return outcome


def _apply_callback(search: Search | None, *, attempt: int, status: str, version: int, payload: dict) -> str:
    if search is None:
        return WebhookOutcome.UNKNOWN_SEARCH
    if attempt != search.attempt:
        return WebhookOutcome.SUPERSEDED_ATTEMPT
    if search.engine != Engine.DURABLE:
        # A valid signature does not make the durable engine the owner of a Celery search.
        return WebhookOutcome.WRONG_ENGINE
    mirrored = WorkflowExecution.objects.select_for_update().filter(search=search, attempt=attempt).first()
    if version <= (mirrored.version if mirrored else 0):
        return WebhookOutcome.STALE_VERSION
    if search.is_terminal:
        # Nothing changes after a terminal state: not the search, not its mirror.
        return WebhookOutcome.IGNORED_TERMINAL
    execution, _ = WorkflowExecution.objects.select_for_update().get_or_create(
        search=search, attempt=attempt, defaults={"engine": search.engine}
    )
    now = timezone.now()
    execution.version, execution.status, execution.last_synced_at = version, status, now
    # The workflow reports errors as {code, message} (docs/durable-state.md); keep both.
    execution.error = item_error_text({"error": payload.get("error")})
    if status == SearchStatus.RUNNING and execution.started_at is None:
        execution.started_at = now
    if status in (SearchStatus.SUCCEEDED, SearchStatus.FAILED, SearchStatus.CANCELLED, SearchStatus.TIMED_OUT):
        execution.ended_at = now
    execution.save()
    matches = [Match.from_dict(m) for m in payload.get("results") or []] if status == SearchStatus.SUCCEEDED else []
    changed = search_record_engine_status(
        search_id=search.pk,
        attempt=attempt,
        status=status,
        matches=matches,
        nicknames={m["user_id"]: m.get("nickname", "") for m in payload.get("results") or []},
        error=execution.error or (f"the workflow reported {status}" if status != SearchStatus.SUCCEEDED else ""),
        actor="durable-callback",
    )
    return WebhookOutcome.APPLIED if changed else WebhookOutcome.NO_TRANSITION


class InterventionNotAllowed(Exception):
    """Only a search waiting on certification vetting can be answered by staff, and only with a
    decision that fits its pending request."""


def search_intervene(
    *,
    search: Search,
    decision: str,
    acting_user: str,
    note: str = "",
    approved_user_ids: list[str] | None = None,
    then: Callable[[], object] | None = None,
) -> dict:
    """Answer a pending GlobalCoach vetting request in the provider's place, on either engine.

    Durable: the Durable API completes the workflow's pending callback; the outcome then reaches
    the console through the signed webhook like any other. Celery: the answer finishes the search
    here, through the same service as GlobalCoach's own answer.

    `then` runs inside the transaction that records the answer (the staff action's audit row), so
    the console's side of the answer and the audit commit together or not at all. The Durable API's
    call is made before that transaction and cannot be part of it: if the transaction then fails,
    the workflow has its answer and the console learns the outcome from its callback, without an
    `intervened` event or audit row.
    """
    if decision not in ("approve", "reject"):
        raise ValueError("decision must be approve or reject")
    if search.status != SearchStatus.AWAITING_VETTING:
        raise InterventionNotAllowed(f"search {search.pk} is {search.status} on {search.engine}, not awaiting vetting")
    if search.engine == Engine.DURABLE:  # a remote call: outside the transaction below
        answer = DurableApiClient.from_settings().intervene(
            str(search.pk), decision=decision, note=note, approved_user_ids=approved_user_ids
        )
    with transaction.atomic():
        if search.engine != Engine.DURABLE:
            try:
                answer = vetting_intervene(
                    search=search,
                    decision=decision,
                    acting_user=acting_user,
                    note=note,
                    approved_user_ids=approved_user_ids,
                )
            except VettingDecisionInvalid as exc:
                raise InterventionNotAllowed(str(exc)) from None
        approved = "all" if approved_user_ids is None else ", ".join(approved_user_ids) or "none"
        search_event_record(
            search_id=search.pk,
            attempt=search.attempt,
            kind=SearchEventKind.INTERVENED,
            actor=acting_user,
            detail=f"{decision} (approved: {approved}) {note}".strip(),
        )
        if then is not None:
            then()
    return answer


# --- The staff console's actions: one call per search, each audited ---------------------------------


@dataclass(frozen=True)
class ActionResult:
    """What a staff action did to one search: `done`, `skipped` (its state moved on) or `failed`."""

    outcome: str
    message: str  # in English, as the audit trail keeps it
    # What the message says, for the console to word it in the staff member's language: a code and
    # the raw values it names (statuses and engines as stored). "" when the message is another system's.
    code: str = ""
    params: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == StaffActionOutcome.DONE


def _english_lower(label) -> str:
    """A choice's label as the English audit trail words it, whatever language the console is in."""
    with translation.override("en"):
        return str(label).lower()


def _status_words(status: str) -> str:
    return _english_lower(SearchStatus(status).label)


def _actor(user) -> str:
    return staff_actor(user.username)


def _audited(
    *, user, action: str, search: Search, reason: str, before: str, attempt: int, result: ActionResult, **params
) -> ActionResult:
    after = Search.objects.filter(pk=search.pk).values_list("status", flat=True).first() or ""
    staff_action_record(
        user=user,
        action=action,
        search=search,
        attempt=attempt,
        reason=reason,
        outcome=result.outcome,
        status_before=before,
        status_after=after,
        parameters=params,
        detail=result.message,
        detail_code={"code": result.code, "params": result.params} if result.code else {},
    )
    return result


def engine_unavailable_reason(*, engine: str, search: Search) -> str:
    """Why `search` cannot run on `engine` here ("" if it can)."""
    if engine == Engine.DURABLE:
        try:
            DurableApiConfig.from_settings()
        except DurableApiConfigError as exc:
            return f"the durable engine is not configured here ({exc})"
        if not settings.MATCHING_WORKFLOW_CALLBACK_URL:
            return "the durable engine is not configured here (MATCHING_WORKFLOW_CALLBACK_URL is not set)"
    # Both engines vet (issue 8): a vetted search may run on either.
    return ""


@transaction.atomic(durable=True)
def search_staff_retry(*, search: Search, user, reason: str, engine: str | None = None) -> ActionResult:
    """Staff retry: a new attempt on the same engine as the last one, or on the one named.

    The new attempt (its `retried` event and dispatch record) and the audit row commit together or
    not at all; the dispatch is sent to the engine only after that commit (the outbox)."""
    before, attempt = search.status, search.attempt
    target = engine or search.engine
    if not search.is_terminal:
        result = ActionResult(
            StaffActionOutcome.SKIPPED,
            f"it is {_status_words(search.status)}, not finished",
            "not_finished",
            {"status": search.status},
        )
    elif problem := engine_unavailable_reason(engine=target, search=search):
        result = ActionResult(StaffActionOutcome.FAILED, f"cannot run on {target}: {problem}")
    elif search_retry(search=search, acting_user=_actor(user), reason=reason, engine=target):
        result = ActionResult(
            StaffActionOutcome.DONE,
            f"attempt {attempt + 1} started on {target}",
            "attempt_started",
            {"attempt": attempt + 1, "engine": target},
        )
    else:
        search.refresh_from_db()
        result = ActionResult(
            StaffActionOutcome.SKIPPED,
            f"it moved on meanwhile (now attempt {search.attempt}, {search.status})",
            "moved_on",
            {"attempt": search.attempt, "status": search.status},
        )
    return _audited(
        user=user,
        action=StaffActionKind.RETRY,
        search=search,
        reason=reason,
        before=before,
        attempt=attempt,
        result=result,
        engine=target,
        rerun_of_attempt=attempt,
    )


@transaction.atomic(durable=True)
def search_staff_cancel(*, search: Search, user, reason: str) -> ActionResult:
    """Staff cancel. Racing a finishing engine, exactly one side wins; the result says which.

    The cancellation in the console and the audit row commit together or not at all. Stopping the
    engine's work (the Durable API's stop, the Celery revoke) is a remote call and cannot be part of
    that transaction: it is made after the commit, so it never stops work the console did not cancel."""
    before, attempt = search.status, search.attempt
    if search_cancel(search=search, reason=reason, acting_user=_actor(user)):
        if search.engine == Engine.DURABLE:
            result = ActionResult(
                StaffActionOutcome.DONE, "cancelled; the durable execution is being stopped", "cancelled_durable"
            )
        else:
            result = ActionResult(
                StaffActionOutcome.DONE, "cancelled; its Celery task is being revoked", "cancelled_celery"
            )
    else:
        search.refresh_from_db()
        if search.attempt != attempt:
            result = ActionResult(
                StaffActionOutcome.SKIPPED,
                f"attempt {attempt} was superseded by attempt {search.attempt}",
                "superseded",
                {"attempt": attempt, "new_attempt": search.attempt},
            )
        else:
            winner = search.events.filter(attempt=attempt, to_status=search.status).values_list("actor", flat=True)
            actor = winner.last()
            message = f"it had already {_status_words(search.status)}"
            message += f" ({actor} was first)" if actor else ""
            result = ActionResult(
                StaffActionOutcome.SKIPPED,
                message,
                "already_finished_by" if actor else "already_finished",
                {"status": search.status, "actor": actor or ""},
            )
    return _audited(
        user=user,
        action=StaffActionKind.CANCEL,
        search=search,
        reason=reason,
        before=before,
        attempt=attempt,
        result=result,
    )


def search_staff_intervene(
    *, search: Search, user, decision: str, note: str, approved_user_ids: list[str] | None = None
) -> ActionResult:
    """Staff answer a pending vetting request in GlobalCoach's place (approve all, some, or reject).

    An answer that is taken is audited inside the transaction that records it (on Celery, the one
    that finishes the search): both or neither. What cannot be atomic is the Durable API's call,
    made before that transaction (see search_intervene). An answer that is refused changes nothing
    in the console, and its audit row is written on its own."""
    before, attempt = search.status, search.attempt
    audited: list[ActionResult] = []

    def audit(result: ActionResult) -> None:
        audited.append(
            _audited(
                user=user,
                action=StaffActionKind.INTERVENE,
                search=search,
                reason=note,
                before=before,
                attempt=attempt,
                result=result,
                decision=decision,
                approved_user_ids=approved_user_ids,
            )
        )

    def answered() -> None:
        if decision == "reject":
            what, code = "rejected", "rejected"
        elif approved_user_ids is None:
            what, code = "approved all candidates", "approved_all"
        else:
            what, code = f"approved {len(approved_user_ids)} candidate(s)", "approved_some"
        durable = search.engine == Engine.DURABLE
        then = "the workflow finishes and reports back" if durable else "the search is finished"
        audit(
            ActionResult(
                StaffActionOutcome.DONE,
                f"{what}; {then}",
                f"{code}_{'durable' if durable else 'celery'}",
                {"count": len(approved_user_ids or [])},
            )
        )

    try:
        search_intervene(
            search=search,
            decision=decision,
            acting_user=_actor(user),
            note=note,
            approved_user_ids=approved_user_ids,
            then=answered,
        )
    except InterventionNotAllowed:
        audit(
            ActionResult(
                StaffActionOutcome.SKIPPED,
                f"it is {_status_words(search.status)} on {search.engine}, not awaiting vetting",
                "not_awaiting_vetting",
                {"status": search.status, "engine": search.engine},
            )
        )
    except DurableApiRejected as exc:
        code = exc.body.get("error") if isinstance(exc.body, dict) else ""
        if exc.status_code == 409:
            message = f"the vetting request was already answered ({code or 409})"
            audit(ActionResult(StaffActionOutcome.SKIPPED, message, "already_answered", {"code": code or 409}))
        else:
            audit(ActionResult(StaffActionOutcome.FAILED, str(exc)))
    except DurableApiError as exc:
        audit(ActionResult(StaffActionOutcome.FAILED, str(exc)))
    return audited[0]


def search_staff_resync(*, search: Search, user, reason: str) -> ActionResult:
    """Read the search's DynamoDB item (and execution history) now, and apply it to the mirror.

    Not one transaction with its audit row: the resync reads DynamoDB and the Durable API, and
    network reads happen outside transactions (search_mirror_resync). What it writes is a copy of
    the remote state by the version rule, the same the periodic sync would write; its audit row
    follows in a transaction of its own."""
    before, attempt = search.status, search.attempt
    try:
        result = ActionResult(StaffActionOutcome.DONE, search_mirror_resync(search=search))
    except MirrorNotApplicable as exc:
        result = ActionResult(StaffActionOutcome.SKIPPED, str(exc))
    except DynamoStateError as exc:
        result = ActionResult(StaffActionOutcome.FAILED, f"DynamoDB could not be read: {exc}")
    return _audited(
        user=user,
        action=StaffActionKind.RESYNC,
        search=search,
        reason=reason,
        before=before,
        attempt=attempt,
        result=result,
    )


def search_drift_acknowledge(*, search: Search, note: str, acting_user: str) -> bool:
    """Staff have seen a drift flag or a dead-lettered callback: mark the flagged attempts
    acknowledged and clear the search's attention markers. The drift check keeps an acknowledged
    attempt acknowledged while its verdict stays "flagged". Runs in the caller's transaction if
    there is one (a staff acknowledgement's audit row commits with it)."""
    with transaction.atomic():
        rows = WorkflowExecution.objects.filter(search_id=search.pk, drift_state=DriftState.FLAGGED).update(
            drift_state=DriftState.ACKNOWLEDGED
        )
        cleared = search_attention_mark(search_id=search.pk, attempt=search.attempt, drift=False, dead_letter=False)
        if rows or cleared:
            search_event_record(
                search_id=search.pk,
                attempt=search.attempt,
                kind=SearchEventKind.DRIFT_ACKNOWLEDGED,
                actor=acting_user,
                detail=note,
            )
    return bool(rows or cleared)


@transaction.atomic(durable=True)
def search_staff_acknowledge(*, search: Search, user, note: str) -> ActionResult:
    """Staff acknowledge a flag: the cleared markers, the `drift_acknowledged` event and the audit
    row commit together or not at all."""
    before, attempt = search.status, search.attempt
    if search_drift_acknowledge(search=search, note=note, acting_user=_actor(user)):
        result = ActionResult(StaffActionOutcome.DONE, "flag acknowledged", "acknowledged")
    else:
        result = ActionResult(StaffActionOutcome.SKIPPED, "nothing is flagged on it", "nothing_flagged")
    return _audited(
        user=user,
        action=StaffActionKind.ACKNOWLEDGE_DRIFT,
        search=search,
        reason=note,
        before=before,
        attempt=attempt,
        result=result,
    )


def search_staff_export_record(*, search: Search, user, reason: str, export_format: str) -> ActionResult:
    """An export reads only; it is audited like every other staff action."""
    result = ActionResult(
        StaffActionOutcome.DONE,
        f"{search.result_count} result(s) exported as {export_format}",
        "exported",
        {"count": search.result_count, "format": export_format},
    )
    return _audited(
        user=user,
        action=StaffActionKind.EXPORT,
        search=search,
        reason=reason,
        before=search.status,
        attempt=search.attempt,
        result=result,
        format=export_format,
    )


def routing_set(*, mode: str, user, reason: str) -> ActionResult:
    """Staff's routing switch: `celery` sends every new search to Celery; `environment` gives the
    choice back to the environment. Audited; every process sees it within ROUTING_CACHE_SECONDS."""
    if mode not in RoutingMode.values:
        raise ValueError(f"unknown routing mode {mode!r}")
    with transaction.atomic(durable=True):
        row, _ = EngineRouting.objects.select_for_update().get_or_create(pk=1)
        before = row.mode
        if before == mode:
            result = ActionResult(
                StaffActionOutcome.SKIPPED,
                f"routing is already {_english_lower(RoutingMode(mode).label)}",
                "routing_unchanged",
                {"mode": mode},
            )
        else:
            row.mode, row.changed_at, row.changed_by, row.reason = mode, timezone.now(), user.username, reason[:2000]
            row.save()
            result = ActionResult(
                StaffActionOutcome.DONE,
                f"new searches now go: {_english_lower(RoutingMode(mode).label)}",
                "routing_switched",
                {"mode": mode},
            )
        staff_action_record(
            user=user,
            action=StaffActionKind.ROUTING,
            reason=reason,
            outcome=result.outcome,
            status_before=before,
            status_after=mode,
            parameters={"mode": mode},
            detail=result.message,
            detail_code={"code": result.code, "params": result.params},
        )
    routing_forget()
    return result
