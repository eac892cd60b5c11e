"""The execution mirror's DynamoDB side: state items applied to the console, with their timeline."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from matching.engine import Match
from matching.models import TERMINAL_STATUSES, Engine, Search, SearchStatus
from matching.services.searches import search_attention_mark, search_record_engine_status
from workflows.durable.state import parse_iso, utc_now_iso
from workflows.durable_console.dynamo import WorkflowStateReader
from workflows.mirror.console_events import console_events_sync
from workflows.mirror.timeline import MirrorConfig, _advance_watermark, _insert_timeline, _key_digest, _watermark
from workflows.models import (
    ExecutionTimelineEntry,
    SyncWatermark,
    TimelineKind,
    TimelineSource,
    WorkflowExecution,
)

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


_STEP_KINDS = {
    "vetting": TimelineKind.CALLBACK,
    "deliver-callback": TimelineKind.WEBHOOK,
    "record-dead-letter": TimelineKind.WEBHOOK,
    "enqueue-dead-letter": TimelineKind.WEBHOOK,
    "start": TimelineKind.API,
    "cancel": TimelineKind.API,
}


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
