"""The mirror's history side: durable execution history copied into the timeline."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from matching.models import Engine
from workflows.durable_console.history import (
    DurableExecutionNotFound,
    DurableExecutionsConfigError,
    DurableExecutionsError,
    DurableExecutionsReader,
    HistoryEvent,
)
from workflows.mirror.timeline import HistoryReport, MirrorConfig, _insert_timeline, _key_digest
from workflows.models import (
    ExecutionTimelineEntry,
    TimelineKind,
    TimelineSource,
    WorkflowExecution,
)

logger = logging.getLogger(__name__)


_HISTORY_KINDS = (
    ("ChainedInvoke", TimelineKind.INVOKE),
    ("Invocation", TimelineKind.INVOCATION),
    ("Execution", TimelineKind.EXECUTION),
    ("Context", TimelineKind.CONTEXT),
    ("Callback", TimelineKind.CALLBACK),
    ("Step", TimelineKind.STEP),
    ("Wait", TimelineKind.WAIT),
)


def _history_kind(event_type: str) -> str:
    return next((kind for prefix, kind in _HISTORY_KINDS if event_type.startswith(prefix)), TimelineKind.EXECUTION)


def _history_entries(execution: WorkflowExecution, events: Iterable[HistoryEvent]) -> list[ExecutionTimelineEntry]:
    arn_digest = _key_digest(execution.execution_arn)[:12]
    return [
        ExecutionTimelineEntry(
            execution=execution,
            key=f"history:{arn_digest}:{event.event_id}",
            at=event.at,
            source=TimelineSource.HISTORY,
            kind=_history_kind(event.event_type),
            name=event.name[:200],
            event=event.event_type[:60],
            detail=event.detail or None,
        )
        for event in events
    ]


def execution_history_sync(*, execution: WorkflowExecution, reader: DurableExecutionsReader) -> tuple[int, bool]:
    """Copy one execution's history into its timeline. Returns (entries added, whether it has ended).

    Raises `DurableExecutionsError`; a missing execution (`DurableExecutionNotFound`) marks the
    history as read, since nothing more will come of it.
    """
    arn = execution.execution_arn
    try:
        events = list(reader.history(arn))  # network I/O before the transaction
    except DurableExecutionNotFound:
        WorkflowExecution.objects.filter(pk=execution.pk, execution_arn=arn).update(history_synced_at=timezone.now())
        raise
    ended = any(event.ends_execution for event in events)
    with transaction.atomic(durable=True):
        added = _insert_timeline(_history_entries(execution, events))
        WorkflowExecution.objects.filter(pk=execution.pk, execution_arn=arn).update(
            history_synced_at=timezone.now(), history_complete=ended
        )
    return added, ended


def workflow_history_sync(*, limit: int | None = None, reader: DurableExecutionsReader | None = None) -> HistoryReport:
    """Read the history of executions whose item changed since their history was last read."""
    report = HistoryReport()
    limit = MirrorConfig.from_settings().history_per_cycle if limit is None else limit
    if limit <= 0:
        return report
    due = list(
        WorkflowExecution.objects.filter(engine=Engine.DURABLE, history_complete=False, history_synced_at__isnull=True)
        .exclude(execution_arn="")
        .order_by("last_synced_at")[:limit]
    )
    if not due:
        return report
    try:
        reader = reader or DurableExecutionsReader.from_settings()
    except DurableExecutionsConfigError as exc:
        report.errors.append(str(exc))
        return report
    for execution in due:
        report.executions += 1
        try:
            added, ended = execution_history_sync(execution=execution, reader=reader)
        except DurableExecutionNotFound:
            report.not_found += 1
            continue
        except DurableExecutionsError as exc:
            # Lambda is unreachable or throttling: stop here, the next cycle picks up the rest.
            logger.warning("reading durable execution history failed: %s", exc)
            report.errors.append(str(exc))
            break
        report.events_added += added
        report.completed += int(ended)
    return report
