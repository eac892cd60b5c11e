"""The durable workflow's signed callbacks applied to the console (versions compared within the attempt)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from matching import metrics
from matching.engine import Match
from matching.models import (
    TERMINAL_STATUSES,
    Engine,
    Search,
    SearchStatus,
)
from matching.services.searches import (
    search_record_engine_status,
)
from workflows.mirror.state import item_error_text
from workflows.models import (
    WebhookDelivery,
    WebhookOutcome,
    WorkflowExecution,
)
from workflows.outbound.notifications import notifications_kick


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
