"""Submit, retry and cancel a search: the dispatch outbox row is written in the search's own
transaction, then handed to the relay, which starts the attempt on its engine."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from matching import metrics
from matching.models import (
    TERMINAL_STATUSES,
    ApiClientKey,
    Engine,
    Search,
    SearchEventKind,
)
from matching.services.idempotency import idempotency_key_attach, idempotency_key_take
from matching.services.searches import (
    search_create,
    search_event_record,
    search_fail,
    search_mark_cancelled,
    search_mark_dispatched,
    search_new_attempt,
)
from workflows.dispatch.engine_choice import EngineChoice, engine_for_new_search
from workflows.dispatch.relay import DispatchRelay
from workflows.durable import tracing
from workflows.durable_console.client import (
    DurableApiClient,
    DurableApiConfigError,
    DurableApiError,
    DurableApiRejected,
    DurableApiUnavailable,
)
from workflows.models import (
    SearchDispatch,
    WorkflowExecution,
)
from workflows.outbound.notifications import notifications_kick
from workflows.tracing import statements_counted

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
    raises matching.services.idempotency.IdempotencyKeyReused.
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


# Sends dispatch records after commit, off the request thread (workflows/dispatch/relay.py).
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
    # In the trace of the request that wrote the record, whichever thread or process sends it. Its
    # SQL (marking the record sent, the search's event) is counted on the span, not a span each: on
    # the path from submit to finish, beside the worker (docs/observability.md, "Overhead").
    parent = {"traceparent": dispatch.traceparent} if dispatch.traceparent else None
    attributes = {"snowbuddy.search_id": str(dispatch.search_id), "snowbuddy.attempt": dispatch.attempt}
    with (
        tracing.span_in(f"dispatch send {dispatch.engine}", parent, attributes=attributes),
        statements_counted(connection),
    ):
        return _dispatch_send(dispatch, quick=quick)


def _error_code(exc: Exception) -> dict:
    """A Durable API failure's code and values beside its English (the console words them); {} else."""
    code = getattr(exc, "code", "") if isinstance(exc, DurableApiError) else ""
    return {"code": code, "params": exc.params} if code else {}


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
            sent_at=timezone.now(),
            send_count=F("send_count") + 1,
            last_error=str(exc)[:2000],
            last_error_code=_error_code(exc),
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
            last_error_code=_error_code(exc),
            **({"start_uncertain": True} if uncertain else {}),
        )
        metrics.outbox_send(
            outbox="dispatch", outcome="retry", search_id=search.pk, attempt=dispatch.attempt,
            engine=dispatch.engine, detail=f"{type(exc).__name__}: {exc}",
        )  # fmt: skip
        return False
    with transaction.atomic(durable=True):
        SearchDispatch.objects.filter(pk=dispatch.pk).update(
            sent_at=timezone.now(),
            send_count=F("send_count") + 1,
            last_error="",
            last_error_code={},
            start_uncertain=False,
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
