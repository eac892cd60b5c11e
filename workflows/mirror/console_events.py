"""The mirror's console side: new SearchEvents and WebhookDeliveries copied into their attempt's timeline."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from matching.models import TERMINAL_STATUSES, Engine, Search, SearchEvent, SearchStatus
from workflows.mirror.timeline import MirrorConfig, _insert_timeline, _key_digest, _watermark
from workflows.models import (
    ExecutionTimelineEntry,
    SearchDispatch,
    SyncWatermark,
    TimelineKind,
    TimelineSource,
    WebhookDelivery,
    WorkflowExecution,
)

_CONSOLE_BATCH = 5000


_WEBHOOK_ID = re.compile(r"^msg_(?P<name>[A-Za-z0-9_-]{1,64})_v\d+$")


def console_events_sync(
    *, restart: bool = False, lag_seconds: int | None = None, batch_size: int = _CONSOLE_BATCH
) -> int:
    """Copy new SearchEvents and WebhookDeliveries into their attempt's timeline. Returns entries added.

    Celery attempts have no DynamoDB item: their mirror row takes status, start, end and error
    from these events. Rows are read by id from a watermark; rows younger than `lag_seconds` (the
    sync skew) wait for the next run, since a transaction still open may yet commit a lower id.
    """
    lag = MirrorConfig.from_settings().skew_seconds if lag_seconds is None else lag_seconds
    before = timezone.now() - dt.timedelta(seconds=lag)
    added = 0
    for name, step in (("console:search-events", _search_events_batch), ("console:webhooks", _webhooks_batch)):
        position = 0 if restart else int(_watermark(name).position or 0)
        while True:
            last_id, count = step(position, before, batch_size)
            added += count
            if last_id is None:
                break
            position = last_id
            SyncWatermark.objects.filter(name=name).update(position=str(position), updated_at=timezone.now())
    return added


def _executions_for(pairs: set[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], WorkflowExecution]:
    """The mirror rows of (search, attempt) pairs, creating the missing ones."""
    search_ids = {sid for sid, _ in pairs}
    rows = {(e.search_id, e.attempt): e for e in WorkflowExecution.objects.filter(search_id__in=search_ids)}
    missing = pairs - rows.keys()
    if missing:
        engines = dict(Search.objects.filter(pk__in={sid for sid, _ in missing}).values_list("pk", "engine"))
        dispatches = SearchDispatch.objects.filter(search_id__in={sid for sid, _ in missing})
        dispatched = {
            (sid, attempt): engine for sid, attempt, engine in dispatches.values_list("search_id", "attempt", "engine")
        }
        WorkflowExecution.objects.bulk_create(
            [
                WorkflowExecution(search_id=sid, attempt=attempt, engine=dispatched.get((sid, attempt)) or engines[sid])
                for sid, attempt in missing
                if sid in engines
            ],
            ignore_conflicts=True,
        )
        rows = {(e.search_id, e.attempt): e for e in WorkflowExecution.objects.filter(search_id__in=search_ids)}
    return rows


def _settled(rows: Iterable[Any], time_field: str, before: dt.datetime) -> list[Any]:
    """Rows in id order up to (not including) the first one written after `before`."""
    settled = []
    for row in rows:
        if getattr(row, time_field) >= before:
            break
        settled.append(row)
    return settled


def _search_events_batch(after_id: int, before: dt.datetime, batch_size: int) -> tuple[int | None, int]:
    events = _settled(SearchEvent.objects.filter(pk__gt=after_id).order_by("pk")[:batch_size], "at", before)
    if not events:
        return None, 0
    now = timezone.now()
    with transaction.atomic(durable=True):
        rows = _executions_for({(e.search_id, e.attempt) for e in events})
        entries: list[ExecutionTimelineEntry] = []
        celery_rows: dict[int, WorkflowExecution] = {}
        for event in events:
            execution = rows.get((event.search_id, event.attempt))
            if execution is None:
                continue
            entries.append(
                ExecutionTimelineEntry(
                    execution=execution,
                    key=f"event:{event.pk}",
                    at=event.at,
                    source=TimelineSource.CONSOLE,
                    kind=TimelineKind.TRANSITION,
                    name=event.actor[:200],
                    event=event.kind[:60],
                    detail={"from": event.from_status, "to": event.to_status, "detail": event.detail},
                )
            )
            if execution.engine == Engine.CELERY and event.to_status:
                _celery_progress(execution, event)
                execution.last_synced_at = now
                celery_rows[execution.pk] = execution
        added = _insert_timeline(entries)
        if celery_rows:
            WorkflowExecution.objects.bulk_update(
                celery_rows.values(), ["status", "started_at", "ended_at", "error", "last_synced_at"], batch_size=1000
            )
    return events[-1].pk, added


def _celery_progress(execution: WorkflowExecution, event: SearchEvent) -> None:
    # Events arrive in id order, so the last one seen is the attempt's current status.
    execution.status = event.to_status
    if event.to_status == SearchStatus.RUNNING:
        execution.started_at = execution.started_at or event.at
    if event.to_status in TERMINAL_STATUSES:
        execution.ended_at = event.at
        if event.to_status != SearchStatus.SUCCEEDED:
            execution.error = event.detail[:2000]


def _webhooks_batch(after_id: int, before: dt.datetime, batch_size: int) -> tuple[int | None, int]:
    deliveries = _settled(
        WebhookDelivery.objects.filter(pk__gt=after_id).order_by("pk")[:batch_size], "received_at", before
    )
    if not deliveries:
        return None, 0
    with transaction.atomic(durable=True):
        search_ids = {d.search_id for d in deliveries if d.search_id}
        attempts = dict(Search.objects.filter(pk__in=search_ids).values_list("pk", "attempt"))
        rows = list(_executions_for({(sid, attempt) for sid, attempt in attempts.items()}).values())
        by_name = {(e.search_id, e.execution_name): e for e in rows if e.execution_name}
        by_attempt = {(e.search_id, e.attempt): e for e in rows}
        entries = []
        for delivery in deliveries:
            if delivery.search_id not in attempts:
                continue
            # `msg_<execution_name>_v<version>` names the attempt; any other id goes to the current one.
            match = _WEBHOOK_ID.match(delivery.webhook_id)
            execution = by_name.get((delivery.search_id, match.group("name"))) if match else None
            execution = execution or by_attempt.get((delivery.search_id, attempts[delivery.search_id]))
            if execution is None:
                continue
            entries.append(
                ExecutionTimelineEntry(
                    execution=execution,
                    key=f"webhook:{_key_digest(delivery.webhook_id)}",
                    at=delivery.received_at,
                    source=TimelineSource.WEBHOOK,
                    kind=TimelineKind.WEBHOOK,
                    name=delivery.status[:200],
                    event=delivery.outcome[:60],
                    detail={"webhook_id": delivery.webhook_id, "version": delivery.version},
                )
            )
        added = _insert_timeline(entries)
    return deliveries[-1].pk, added
