"""Reads of the engines' records for the staff console: each attempt with one merged timeline."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from matching.models import Search, SearchEvent, StaffAction
from workflows.models import (
    ExecutionTimelineEntry,
    SearchDispatch,
    TimelineKind,
    TimelineSource,
    WebhookDelivery,
    WorkflowExecution,
)

TIMELINE_LIMIT = 400  # lines per attempt on the page; the mirror keeps them all
_WEBHOOK_ID = re.compile(r"^msg_(?P<name>[A-Za-z0-9_-]{1,64})_v\d+$")

SOURCE_LABELS = {
    "item": "DynamoDB item",
    "history": "durable history",
    "console": "console",
    "webhook": "webhook",
    "dispatch": "dispatch",
    "staff": "staff",
}


@dataclass
class TimelineLine:
    at: dt.datetime
    source: str
    kind: str
    name: str
    event: str
    detail: str = ""
    since_previous_ms: float | None = None
    since_start_ms: float | None = None
    record: object | None = None  # the console's own row behind a dispatch or staff line (worded by the console)

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)


@dataclass
class AttemptView:
    attempt: int
    engine: str = ""
    execution: WorkflowExecution | None = None
    dispatch: SearchDispatch | None = None
    lines: list[TimelineLine] = field(default_factory=list)
    hidden: int = 0  # lines beyond TIMELINE_LIMIT

    @property
    def trace_id(self) -> str:
        """The OpenTelemetry trace of the request that dispatched this attempt ("" when tracing was off)."""
        return self.dispatch.trace_id if self.dispatch else ""

    @property
    def trace_url(self) -> str:
        template = settings.TRACE_URL_TEMPLATE
        return template.replace("{trace_id}", self.trace_id) if template and self.trace_id else ""

    @property
    def duration_ms(self) -> float | None:
        if len(self.lines) < 2:
            return None
        return (self.lines[-1].at - self.lines[0].at).total_seconds() * 1000


def _digest(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _detail_text(detail: Any) -> str:
    if detail in (None, "", {}, []):
        return ""
    if isinstance(detail, dict):
        return ", ".join(f"{k}: {v}" for k, v in detail.items() if v not in (None, "", [], {}))
    return str(detail)


def merge_timeline(lines: list[TimelineLine], *, limit: int = TIMELINE_LIMIT) -> tuple[list[TimelineLine], int]:
    """Order lines by time (stable for equal times) and fill in the durations between them."""
    ordered = sorted(lines, key=lambda line: line.at)
    start = ordered[0].at if ordered else None
    previous = None
    for line in ordered:
        line.since_start_ms = (line.at - start).total_seconds() * 1000 if start else None
        line.since_previous_ms = (line.at - previous).total_seconds() * 1000 if previous else None
        previous = line.at
    return ordered[:limit], max(len(ordered) - limit, 0)


def search_attempts(*, search: Search) -> list[AttemptView]:
    """Every attempt of a search, newest first, each with one timeline merged from the mirror's
    timeline entries, the console's events, received webhooks, the dispatch record and staff actions
    (lines the mirror already copied are not repeated)."""
    executions = {e.attempt: e for e in WorkflowExecution.objects.filter(search=search)}
    dispatches = {d.attempt: d for d in SearchDispatch.objects.filter(search=search)}
    attempts = {n: AttemptView(attempt=n) for n in range(1, search.attempt + 1)}
    for n, view in attempts.items():
        view.execution, view.dispatch = executions.get(n), dispatches.get(n)
        view.engine = (view.dispatch and view.dispatch.engine) or (view.execution and view.execution.engine) or ""
    if search.attempt in attempts and not attempts[search.attempt].engine:
        attempts[search.attempt].engine = search.engine
    raw: dict[int, list[TimelineLine]] = {n: [] for n in attempts}
    seen: set[str] = set()
    by_execution = {e.pk: e.attempt for e in executions.values()}
    entries = ExecutionTimelineEntry.objects.filter(execution_id__in=list(by_execution)).order_by("at", "id")
    for entry in entries[: TIMELINE_LIMIT * max(len(attempts), 1) * 2]:
        seen.add(f"{entry.execution_id}:{entry.key}")
        raw.setdefault(by_execution[entry.execution_id], []).append(
            TimelineLine(entry.at, entry.source, entry.kind, entry.name, entry.event, _detail_text(entry.detail))
        )
    execution_pk = {n: e.pk for n, e in executions.items()}
    for event in SearchEvent.objects.filter(search=search).order_by("at", "id"):
        if f"{execution_pk.get(event.attempt)}:event:{event.pk}" in seen:
            continue
        moved = f"{event.from_status or '·'} → {event.to_status}" if event.to_status else ""
        raw.setdefault(event.attempt, []).append(
            TimelineLine(
                event.at,
                TimelineSource.CONSOLE,
                TimelineKind.TRANSITION,
                event.actor,
                event.kind,
                " ".join(filter(None, [moved, event.detail])),
                record=event,
            )
        )
    names = {e.execution_name: e.attempt for e in executions.values() if e.execution_name}
    for delivery in WebhookDelivery.objects.filter(search=search).order_by("received_at", "id"):
        match = _WEBHOOK_ID.match(delivery.webhook_id)
        attempt = names.get(match.group("name")) if match else None
        attempt = attempt or search.attempt
        if f"{execution_pk.get(attempt)}:webhook:{_digest(delivery.webhook_id)}" in seen:
            continue
        raw.setdefault(attempt, []).append(
            TimelineLine(
                delivery.received_at,
                TimelineSource.WEBHOOK,
                TimelineKind.WEBHOOK,
                delivery.status,
                delivery.outcome,
                f"webhook_id: {delivery.webhook_id}, version: {delivery.version}",
            )
        )
    for n, dispatch in dispatches.items():
        raw.setdefault(n, []).append(
            TimelineLine(dispatch.created_at, "dispatch", "dispatch", dispatch.engine, "queued", record=dispatch)
        )
        if dispatch.sent_at:
            tries = f"after {dispatch.send_count} tr{'y' if dispatch.send_count == 1 else 'ies'}"
            raw[n].append(
                TimelineLine(dispatch.sent_at, "dispatch", "dispatch", dispatch.engine, "sent", tries, record=dispatch)
            )
    for action in StaffAction.objects.filter(search=search).order_by("at"):
        if action.attempt in attempts:
            raw[action.attempt].append(
                TimelineLine(
                    action.at,
                    "staff",
                    "staff",
                    action.username,
                    f"{action.action}: {action.outcome}",
                    f"{action.reason} — {action.detail}",
                    record=action,
                )
            )
    for n, lines in raw.items():
        if n in attempts:
            attempts[n].lines, attempts[n].hidden = merge_timeline(lines)
    return sorted(attempts.values(), key=lambda view: -view.attempt)
