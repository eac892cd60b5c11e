"""The execution mirror: DynamoDB state, durable execution history and console events, kept in the console.

Three pull passes, each idempotent and safe to run twice or concurrently:

- **state** (`workflow_state_sync`): items changed since a stored watermark, read from the GSI
  `sync-index` from `watermark - skew` (or the whole table with `full=True`), applied with the
  webhook's rule: an item is applied only if its `version` is newer than the mirror row's, and
  nothing changes a finished search. Status changes go through `search_record_engine_status`.
- **console events** (part of the same call): new `SearchEvent` and `WebhookDelivery` rows become
  timeline entries of their attempt; Celery attempts take their status from them.
- **history** (`workflow_history_sync`): `GetDurableExecutionHistory` of executions whose item
  changed since their history was last read, until the execution has ended.

Every timeline entry has a key unique within its execution, so repeated syncs add nothing twice.
See docs/mirror.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from matching.engine import Match
from matching.models import TERMINAL_STATUSES, Engine, Search, SearchEvent, SearchStatus
from matching.services import search_attention_mark, search_record_engine_status
from workflows.durable.state import parse_iso, utc_now_iso
from workflows.durable_history import (
    DurableExecutionNotFound,
    DurableExecutionsConfigError,
    DurableExecutionsError,
    DurableExecutionsReader,
    HistoryEvent,
)
from workflows.dynamo import DynamoConfig, DynamoStateError, WorkflowStateReader
from workflows.models import (
    ExecutionTimelineEntry,
    SearchDispatch,
    SyncWatermark,
    TimelineKind,
    TimelineSource,
    WebhookDelivery,
    WorkflowExecution,
)

logger = logging.getLogger(__name__)

ACTOR = "durable-sync"
# Statuses an item may report that the console applies (the console sets `dispatched` itself).
APPLIED_STATUSES = frozenset(
    {
        SearchStatus.RUNNING,
        SearchStatus.AWAITING_VETTING,
        SearchStatus.SUCCEEDED,
        SearchStatus.FAILED,
        SearchStatus.TIMED_OUT,
        SearchStatus.CANCELLED,
    }
)
_CONSOLE_BATCH = 5000
_WEBHOOK_ID = re.compile(r"^msg_(?P<name>[A-Za-z0-9_-]{1,64})_v\d+$")


@dataclass(frozen=True)
class MirrorConfig:
    skew_seconds: int = 5
    staleness_seconds: int = 5
    history_per_cycle: int = 50

    @classmethod
    def from_settings(cls) -> MirrorConfig:
        return cls(
            skew_seconds=int(settings.MATCHING_MIRROR_SYNC_SKEW_SECONDS),
            staleness_seconds=int(settings.MATCHING_MIRROR_STALENESS_SECONDS),
            history_per_cycle=int(settings.MATCHING_MIRROR_HISTORY_PER_CYCLE),
        )


@dataclass
class ApplyResult:
    applied: int = 0  # items newer than the mirror, written
    stale: int = 0  # items not newer than the mirror row: nothing but `last_synced_at` changes
    unknown: int = 0  # no such search in the console
    foreign_attempt: int = 0  # an attempt the console has not started (left to the reconciler)
    status_changes: int = 0  # searches moved to the item's status
    timeline_added: int = 0

    def add(self, other: ApplyResult) -> None:
        for name in ApplyResult.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SyncReport(ApplyResult):
    mode: str = "incremental"
    query_from: str = ""  # the `updated_at` the sync index was read from ("" for a full scan)
    watermark: str = ""  # the watermark stored at the end
    pages: int = 0
    fetched: int = 0
    console_entries: int = 0
    elapsed: float = 0.0
    started: float = field(default_factory=time.monotonic, repr=False)

    def line(self) -> str:
        rate = self.fetched / self.elapsed if self.elapsed else 0.0
        return (
            f"{self.mode}: {self.pages} pages, {self.fetched} items ({rate:,.0f}/s): {self.applied} applied, "
            f"{self.stale} not newer, {self.unknown} unknown, {self.status_changes} status changes, "
            f"{self.timeline_added} timeline entries; console events {self.console_entries}; "
            f"watermark {self.watermark or '-'} ({self.elapsed:.2f}s)"
        )


@dataclass
class HistoryReport:
    executions: int = 0
    events_added: int = 0
    completed: int = 0
    not_found: int = 0
    errors: list[str] = field(default_factory=list)


# --- applying items ----------------------------------------------------------------------------


def mirror_apply_item(*, item: dict[str, Any]) -> ApplyResult:
    """Apply one DynamoDB item (see `mirror_apply_items`)."""
    return mirror_apply_items(items=[item])


def mirror_apply_items(*, items: Sequence[dict[str, Any]], actor: str = ACTOR) -> ApplyResult:
    """Apply a page of DynamoDB items to the mirror, in one transaction.

    The version rule is the webhook's: an item is applied only if its `version` is newer than
    `WorkflowExecution.version` of its (search, attempt), so an out-of-date read never rolls the
    mirror back, and a finished search never changes. Searches and then execution rows are locked
    in primary-key order (the webhook's order), so the check and the write are one step.
    """
    result = ApplyResult()
    by_search: dict[uuid.UUID, dict[str, Any]] = {}
    for item in items:
        try:
            search_id = uuid.UUID(str(item["search_id"]))
            int(item["attempt"]), int(item["version"])
        except (KeyError, TypeError, ValueError):
            result.unknown += 1
            continue
        kept = by_search.get(search_id)
        if kept is None or int(item["version"]) > int(kept["version"]):
            by_search[search_id] = item
    if not by_search:
        return result
    now = timezone.now()
    with transaction.atomic(durable=True):
        searches = {
            s.pk: s
            for s in Search.objects.select_for_update()
            .filter(pk__in=list(by_search))
            .order_by("pk")
            .only("pk", "status", "attempt", "engine")
        }
        executions: dict[tuple[uuid.UUID, int], WorkflowExecution] = {
            (e.search_id, e.attempt): e
            for e in WorkflowExecution.objects.select_for_update().filter(search_id__in=list(searches)).order_by("pk")
        }
        to_create: list[WorkflowExecution] = []
        to_update: list[WorkflowExecution] = []
        confirmed: list[int] = []
        status_work: list[tuple[Search, dict[str, Any]]] = []
        timeline_work: list[tuple[uuid.UUID, dict[str, Any]]] = []
        for search_id, item in by_search.items():
            search = searches.get(search_id)
            if search is None:
                result.unknown += 1
                continue
            attempt, version = int(item["attempt"]), int(item["version"])
            if attempt > search.attempt:
                result.foreign_attempt += 1
                continue
            execution = executions.get((search_id, attempt))
            if execution is not None and version <= execution.version:
                result.stale += 1
                confirmed.append(execution.pk)
                continue
            if execution is None:
                execution = WorkflowExecution(search_id=search_id, attempt=attempt, engine=Engine.DURABLE)
                executions[(search_id, attempt)] = execution
                to_create.append(execution)
            else:
                to_update.append(execution)
            _copy_item(execution, item, now)
            result.applied += 1
            timeline_work.append((search_id, item))
            if (
                attempt == search.attempt
                and search.status not in TERMINAL_STATUSES
                and item.get("status") in APPLIED_STATUSES
                and item["status"] != search.status
            ):
                status_work.append((search, item))
        if to_create:
            WorkflowExecution.objects.bulk_create(to_create, batch_size=1000)
        if to_update:
            # An upsert on (search, attempt) rewrites the locked rows in one statement; bulk_update's
            # CASE expressions cost far more Python per row.
            WorkflowExecution.objects.bulk_create(
                to_update,
                batch_size=1000,
                update_conflicts=True,
                unique_fields=["search", "attempt"],
                update_fields=_ITEM_FIELDS,
            )
        if confirmed:
            WorkflowExecution.objects.filter(pk__in=confirmed).update(last_synced_at=now)
        entries = []
        for search_id, item in timeline_work:
            entries.extend(_item_timeline(item, lambda attempt, sid=search_id: executions.get((sid, attempt))))
        result.timeline_added = _insert_timeline(entries, new_executions={e.pk for e in to_create})
        for search_id, item in timeline_work:
            if (item.get("callback_delivery") or {}).get("state") == "dead_letter":
                # The workflow gave up posting its callback: staff should know (the console's "needs attention").
                search_attention_mark(search_id=search_id, attempt=int(item["attempt"]), dead_letter=True)
        for search, item in status_work:
            result.status_changes += mirror_apply_item_status(search=search, item=item, actor=actor)
    return result


_ITEM_FIELDS = [
    "engine",
    "execution_name",
    "execution_arn",
    "status",
    "version",
    "error",
    "started_at",
    "ended_at",
    "item_updated_at",
    "last_synced_at",
    "history_synced_at",
    "history_complete",
]


def _copy_item(execution: WorkflowExecution, item: dict[str, Any], now: dt.datetime) -> None:
    arn = item.get("execution_arn") or ""
    if arn and arn != execution.execution_arn:
        execution.history_complete = False
    execution.engine = Engine.DURABLE
    execution.execution_name = (item.get("execution_name") or execution.execution_name)[:64]
    execution.execution_arn = (arn or execution.execution_arn)[:400]
    execution.status = str(item.get("status") or "")[:20]
    execution.version = int(item["version"])
    execution.error = item_error_text(item)
    execution.started_at = _parse_time(item.get("started_at")) or execution.started_at
    if execution.status in TERMINAL_STATUSES:
        execution.ended_at = _parse_time(item.get("finished_at")) or execution.ended_at or now
    execution.item_updated_at = _parse_time(item.get("updated_at"))
    execution.last_synced_at = now
    execution.history_synced_at = None  # the execution moved on: its history is due again


def item_error_text(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        code, message = error.get("code") or "", error.get("message") or ""
        text = f"{code}: {message}" if code and message and message != code else code or message
    else:
        text = str(error or "")
    return text[:2000]


def mirror_apply_item_status(*, search: Search, item: dict[str, Any], actor: str = ACTOR) -> bool:
    """Move `search` to the status of its current attempt's item. Runs inside the caller's transaction."""
    status = item["status"]
    results = (item.get("results") or []) if status == SearchStatus.SUCCEEDED else []
    changed = search_record_engine_status(
        search_id=search.pk,
        attempt=search.attempt,
        status=status,
        matches=[Match.from_dict(m) for m in results],
        nicknames={m["user_id"]: m.get("nickname") or "" for m in results},
        error=item_error_text(item) or (f"the workflow reported {status}" if status in TERMINAL_STATUSES else ""),
        actor=actor,
    )
    if changed:
        search.status = status
    return changed


def _parse_time(value: Any) -> dt.datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


# --- timeline ------------------------------------------------------------------------------------

_STEP_KINDS = {
    "vetting": TimelineKind.CALLBACK,
    "deliver-callback": TimelineKind.WEBHOOK,
    "record-dead-letter": TimelineKind.WEBHOOK,
    "enqueue-dead-letter": TimelineKind.WEBHOOK,
    "start": TimelineKind.API,
    "cancel": TimelineKind.API,
}
_HISTORY_KINDS = (
    ("ChainedInvoke", TimelineKind.INVOKE),
    ("Invocation", TimelineKind.INVOCATION),
    ("Execution", TimelineKind.EXECUTION),
    ("Context", TimelineKind.CONTEXT),
    ("Callback", TimelineKind.CALLBACK),
    ("Step", TimelineKind.STEP),
    ("Wait", TimelineKind.WAIT),
)


def _key_digest(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _is_start_marker(entry: dict[str, Any]) -> bool:
    detail = entry.get("detail")
    return (
        entry.get("step") == "start"
        and entry.get("event") == SearchStatus.DISPATCHED
        and isinstance(detail, dict)
        and isinstance(detail.get("attempt"), int)
    )


def _timeline_by_attempt(timeline: Iterable[dict[str, Any]], item_attempt: int) -> dict[int, list[dict[str, Any]]]:
    """The item keeps its timeline across attempts; each attempt's part begins at its start entry."""
    entries = [e for e in timeline if isinstance(e, dict) and e.get("at")]
    markers = [e for e in entries if _is_start_marker(e)]
    if not markers:
        return {item_attempt: entries}
    # Entries before the first visible start belong to the attempt before it (the list is capped).
    current = markers[0]["detail"]["attempt"] - 1
    split: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        if _is_start_marker(entry):
            current = entry["detail"]["attempt"]
        if current >= 1:
            split[current].append(entry)
    return split


def _item_timeline(
    item: dict[str, Any], execution_for: Callable[[int], WorkflowExecution | None]
) -> list[ExecutionTimelineEntry]:
    attempt = int(item["attempt"])
    entries: list[ExecutionTimelineEntry] = []
    for entry_attempt, part in _timeline_by_attempt(item.get("timeline") or [], attempt).items():
        execution = execution_for(entry_attempt)
        if execution is None or execution.pk is None:
            continue
        for entry in part:
            at = _parse_time(entry.get("at"))
            if at is None:
                continue
            step, event, detail = str(entry.get("step") or ""), str(entry.get("event") or ""), entry.get("detail")
            entries.append(
                ExecutionTimelineEntry(
                    execution=execution,
                    key="item:" + _key_digest(entry.get("at"), step, event, detail),
                    at=at,
                    source=TimelineSource.ITEM,
                    kind=_STEP_KINDS.get(step, TimelineKind.STEP),
                    name=step[:200],
                    event=event[:60],
                    detail=detail,
                )
            )
    delivery = item.get("callback_delivery")
    execution = execution_for(attempt)
    if isinstance(delivery, dict) and delivery.get("state") in ("delivered", "dead_letter") and execution:
        at = _parse_time(delivery.get("delivered_at")) or _parse_time(item.get("updated_at"))
        if at is not None:
            entries.append(
                ExecutionTimelineEntry(
                    execution=execution,
                    key=f"item:callback:{delivery['state']}",
                    at=at,
                    source=TimelineSource.ITEM,
                    kind=TimelineKind.WEBHOOK,
                    name="callback",
                    event=delivery["state"],
                    detail={k: delivery.get(k) for k in ("attempts", "last_error") if delivery.get(k) is not None},
                )
            )
    return entries


def _insert_timeline(entries: list[ExecutionTimelineEntry], *, new_executions: set[int] = frozenset()) -> int:
    """Insert the entries not there yet; returns how many were new. Runs in the caller's transaction.

    `new_executions`: rows created in this transaction, which cannot have entries yet.
    """
    if not entries:
        return 0
    execution_ids = {e.execution_id for e in entries} - new_executions
    existing = set(
        ExecutionTimelineEntry.objects.filter(execution_id__in=execution_ids).values_list("execution_id", "key")
        if execution_ids
        else ()
    )
    fresh: dict[tuple[int, str], ExecutionTimelineEntry] = {}
    for entry in entries:
        identity = (entry.execution_id, entry.key)
        if identity not in existing:
            fresh.setdefault(identity, entry)
    # ignore_conflicts: a concurrent sync may insert the same entries; the unique key settles it.
    ExecutionTimelineEntry.objects.bulk_create(fresh.values(), batch_size=1000, ignore_conflicts=True)
    return len(fresh)


# --- the state pass ------------------------------------------------------------------------------


def _watermark(name: str) -> SyncWatermark:
    watermark, _ = SyncWatermark.objects.get_or_create(name=name)
    return watermark


def _advance_watermark(name: str, position: str, *, full_sync_at: dt.datetime | None = None) -> str:
    """Move an ISO watermark forward (never back). Returns the stored position."""
    with transaction.atomic(durable=True):
        watermark = SyncWatermark.objects.select_for_update().get(name=name)
        if position > watermark.position:
            watermark.position = position
        if full_sync_at is not None:
            watermark.last_full_sync_at = full_sync_at
        watermark.save()
    return watermark.position


def parse_since(value: str, *, now: dt.datetime | None = None) -> str:
    """`--since`: an ISO-8601 time (`2025-01-31T09:00:00Z`) or a duration back from now (`90s`, `15m`, `2h`, `1d`)."""
    value = value.strip()
    match = re.fullmatch(r"(\d+)\s*([smhd])", value)
    if match:
        seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return utc_now_iso((now or timezone.now()) - dt.timedelta(seconds=seconds))
    try:
        moment = parse_iso(value)
    except ValueError:
        raise ValueError(f"--since: expected an ISO time or a duration like 15m, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return utc_now_iso(moment)


def workflow_state_sync(
    *,
    full: bool = False,
    since: str | None = None,
    progress: Callable[[SyncReport], None] | None = None,
    reader: WorkflowStateReader | None = None,
    config: MirrorConfig | None = None,
) -> SyncReport:
    """Pull what changed in DynamoDB into the mirror, then the console's own new events.

    Incremental: the sync index from `watermark - skew` (or from `since`, an ISO time, as given),
    every page followed; the watermark becomes the newest `updated_at` applied, stored after each
    page, and never moves back. `full=True` scans the whole table; the watermark then becomes the
    time the scan started. Raises `DynamoStateError` if DynamoDB fails; pages already applied stay.
    """
    config = config or MirrorConfig.from_settings()
    reader = reader or WorkflowStateReader.from_settings()
    name = f"dynamodb:{reader.config.table_name}"
    stored = _watermark(name).position
    report = SyncReport(mode="full" if full else "incremental")
    scan_started = utc_now_iso()
    if full:
        pages = reader.scan()
    else:
        if since:
            report.query_from = since
        elif stored:
            report.query_from = utc_now_iso(parse_iso(stored) - dt.timedelta(seconds=config.skew_seconds))
        else:
            report.query_from = "0"  # no watermark yet: every item, oldest first
        pages = reader.changed_since(report.query_from)
    report.watermark = stored
    for page in pages:
        report.pages += 1
        report.fetched += len(page.items)
        report.add(mirror_apply_items(items=page.items))
        newest = max((str(i.get("updated_at") or "") for i in page.items), default="")
        if not full and newest > report.watermark:
            report.watermark = _advance_watermark(name, newest)
        report.elapsed = time.monotonic() - report.started
        if progress:
            progress(report)
    if full:
        report.watermark = _advance_watermark(name, scan_started, full_sync_at=timezone.now())
    # The watermark's `updated_at` says when a sync last completed, whether or not anything changed:
    # the mirror-lag gauge reads it (workflows/metrics_collector.py).
    SyncWatermark.objects.filter(name=name).update(updated_at=timezone.now())
    report.console_entries = console_events_sync()
    report.elapsed = time.monotonic() - report.started
    return report


# --- the console events pass ---------------------------------------------------------------------


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


# --- the history pass ------------------------------------------------------------------------------


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


# --- reads served from the mirror ----------------------------------------------------------------


def mirror_refresh_if_stale(*, search: Search) -> bool:
    """Before serving a durable, unfinished search: if its mirror is older than the staleness bound,
    read its one item from DynamoDB (short timeouts, one try) and apply it.

    Returns True when that changed the console's copy (`search` is then refreshed in place). Any
    DynamoDB failure is logged and the read is served from what the console has.
    """
    if search.engine != Engine.DURABLE or search.is_terminal:
        return False
    config = MirrorConfig.from_settings()
    now = timezone.now()
    synced_at = (
        WorkflowExecution.objects.filter(search_id=search.pk, attempt=search.attempt)
        .values_list("last_synced_at", flat=True)
        .first()
    )
    if synced_at is not None and (now - synced_at).total_seconds() < config.staleness_seconds:
        return False
    try:
        item = WorkflowStateReader(DynamoConfig.for_reads_on_request()).get(str(search.pk))
    except DynamoStateError as exc:
        logger.warning("serving search %s from the console: DynamoDB read failed: %s", search.pk, exc)
        return False
    if item is None:
        # Not started on the durable side yet: remember we looked, so the next reads do not ask again.
        WorkflowExecution.objects.update_or_create(
            search_id=search.pk,
            attempt=search.attempt,
            defaults={"last_synced_at": now},
            create_defaults={"engine": Engine.DURABLE, "last_synced_at": now},
        )
        return False
    result = mirror_apply_items(items=[item])
    if result.applied:
        search.refresh_from_db()
        return True
    return False


class MirrorNotApplicable(Exception):
    """The search has nothing in DynamoDB to resync from (it never ran on the durable engine)."""


def search_mirror_resync(*, search: Search) -> str:
    """Staff's "resync now": read the search's DynamoDB item at once (strongly consistent) and apply it
    with the version rule, then copy its execution's history. Returns what changed, in words.

    Raises `MirrorNotApplicable` for a search that never ran on the durable engine, and
    `DynamoStateError` when DynamoDB cannot be read. Network reads happen outside transactions.
    """
    durable_attempts = WorkflowExecution.objects.filter(search_id=search.pk, engine=Engine.DURABLE).exists()
    if search.engine != Engine.DURABLE and not durable_attempts:
        raise MirrorNotApplicable("it ran on Celery only: its timeline comes from the console's own events")
    item = WorkflowStateReader(DynamoConfig.from_settings()).get(str(search.pk))
    if item is None:
        WorkflowExecution.objects.filter(search_id=search.pk, attempt=search.attempt).update(
            last_synced_at=timezone.now()
        )
        return "DynamoDB has no item for it (never started on the durable side, or deleted)"
    before = search.status
    applied = mirror_apply_items(items=[item], actor="staff-resync")
    search.refresh_from_db()
    if applied.applied:
        said = f"applied item v{item.get('version')} ({item.get('status')}), {applied.timeline_added} timeline entries"
    else:
        said = f"already at item v{item.get('version')} ({item.get('status')})"
    if search.status != before:
        said += f"; the search went from {before} to {search.status}"
    execution = WorkflowExecution.objects.filter(search_id=search.pk, attempt=int(item["attempt"])).first()
    if execution is not None and execution.execution_arn:
        try:
            added, ended = execution_history_sync(execution=execution, reader=DurableExecutionsReader.from_settings())
            said += f"; history: {added} new event(s){' (complete)' if ended else ''}"
        except DurableExecutionsError as exc:
            said += f"; history not read: {exc}"
    return said


# --- single flight ---------------------------------------------------------------------------------


@contextmanager
def single_flight(name: str, *, timeout: int):
    """Yield True if this process holds the named lock (in the shared cache), False if another does.

    Periodic passes use it so a slow run and the next beat tick do not pile up; correctness never
    depends on it (every pass is idempotent).
    """
    key = f"workflows:single-flight:{name}"
    token = uuid.uuid4().hex
    acquired = cache.add(key, token, timeout=timeout)
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)
