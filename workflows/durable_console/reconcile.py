"""Drift reconciliation: compare the console, the DynamoDB item and the durable execution of each
unfinished search; repair what is certain, flag what is not (with the reason on the mirror row).

Durable engine (the item is the workflow's record; the execution says whether it can still act):
- the item is newer than the mirror → apply it (the webhook's version rule); a terminal item
  finishes the search (*repaired*);
- the mirror has the item's version but the search is not at the item's status → apply the
  status (*repaired*);
- the item is still active but the execution has ended STOPPED / FAILED / TIMED_OUT (stopped
  outside the console, crashed, hit its execution timeout) → the execution can never write the
  item again, so the search becomes cancelled / failed / timed_out (*repaired*); the item is
  re-read first, and its own terminal status wins if it has one by then;
- *flagged* (nothing changed, reason shown to staff): the execution SUCCEEDED while the item is
  active (its results never reached DynamoDB), the execution does not exist, no item or no
  execution ARN past the start grace period, the item holds another attempt, DynamoDB or Lambda
  could not be read.

Celery engine: nothing to compare; the database is its only record. A search in `dispatched` or
`running` is the lease's business (workflows/celery_engine/recovery.py re-sends an attempt whose lease expired,
within seconds), `pending` the dispatch sweeper's and overdue searches the expiry task's; the drift
pass only records what the lease says, for staff.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from matching.models import ACTIVE_STATUSES, Engine, Search, SearchEventKind, SearchStatus
from matching.services.searches import search_attention_mark, search_event_record, search_record_engine_status
from workflows.durable_console import history as durable_history
from workflows.durable_console.dynamo import DynamoStateError, WorkflowStateReader
from workflows.durable_console.history import (
    DurableExecution,
    DurableExecutionNotFound,
    DurableExecutionsError,
    DurableExecutionsReader,
)
from workflows.mirror.state import APPLIED_STATUSES, mirror_apply_item_status, mirror_apply_items
from workflows.models import DriftState, WorkflowExecution

logger = logging.getLogger(__name__)

RECONCILER = "reconciler"
_NOT_READ: Any = object()

# What an execution that ended without writing the item means for the search.
_ENDED_EXECUTION = {
    durable_history.STOPPED: (SearchStatus.CANCELLED, "the durable execution was stopped outside the console"),
    durable_history.FAILED: (SearchStatus.FAILED, "the durable execution failed"),
    durable_history.TIMED_OUT: (SearchStatus.TIMED_OUT, "the durable execution timed out"),
}


@dataclass(frozen=True)
class ReconcileConfig:
    durable_start_grace_seconds: int = 300
    batch: int = 200
    min_age_seconds: int = 60

    @classmethod
    def from_settings(cls) -> ReconcileConfig:
        return cls(
            durable_start_grace_seconds=int(settings.MATCHING_DURABLE_START_GRACE_SECONDS),
            batch=int(settings.MATCHING_RECONCILE_BATCH),
            min_age_seconds=int(settings.MATCHING_RECONCILE_MIN_AGE_SECONDS),
        )


class Outcome(StrEnum):
    OK = "ok"
    REPAIRED = "repaired"
    FLAGGED = "flagged"
    REDISPATCHED = "redispatched"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ReconcileResult:
    search_id: Any
    outcome: Outcome
    reason: str


@dataclass
class DriftReport:
    checked: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    results: list[ReconcileResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, result: ReconcileResult) -> None:
        self.checked += 1
        self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1
        self.results.append(result)

    def line(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "nothing to do"
        errors = f"; errors: {'; '.join(self.errors)}" if self.errors else ""
        return f"checked {self.checked}: {counts}{errors}"


_DRIFT_STATE = {
    Outcome.OK: DriftState.OK,
    Outcome.REPAIRED: DriftState.REPAIRED,
    Outcome.REDISPATCHED: DriftState.REPAIRED,
    Outcome.FAILED: DriftState.REPAIRED,
    Outcome.FLAGGED: DriftState.FLAGGED,
}


def _conclude(
    search: Search, attempt: int, outcome: Outcome, reason: str, code: str = "", params: dict | None = None
) -> ReconcileResult:
    """Record the verdict on the attempt's mirror row; a new flag is also a SearchEvent.

    `reason` is the English the audit trail and the log keep; `code` and `params` say the same for
    the console to word in the staff member's language (matching.admin.words.DRIFT_REASONS), stored
    beside it as `drift_reason_code` (no code: the English is shown as it is)."""
    now = timezone.now()
    state = _DRIFT_STATE[outcome]
    with transaction.atomic(durable=True):
        execution, _ = WorkflowExecution.objects.select_for_update().get_or_create(
            search_id=search.pk, attempt=attempt, defaults={"engine": search.engine}
        )
        if state == DriftState.FLAGGED and execution.drift_state == DriftState.ACKNOWLEDGED:
            state = DriftState.ACKNOWLEDGED  # staff have seen this attempt's drift; do not raise it again
        newly_flagged = state == DriftState.FLAGGED and execution.drift_state != DriftState.FLAGGED
        WorkflowExecution.objects.filter(pk=execution.pk).update(
            drift_state=state,
            drift_reason=reason[:2000],
            drift_reason_code={"code": code, "params": params or {}} if code else {},
            drift_checked_at=now,
        )
        search_attention_mark(search_id=search.pk, attempt=attempt, drift=state == DriftState.FLAGGED)
        if newly_flagged:
            search_event_record(
                search_id=search.pk,
                attempt=attempt,
                kind=SearchEventKind.DRIFT_FLAGGED,
                actor=RECONCILER,
                detail=reason,
            )
    if outcome == Outcome.FLAGGED:
        logger.warning("search %s attempt %s flagged: %s", search.pk, attempt, reason)
    return ReconcileResult(search.pk, outcome, reason)


def search_reconcile(
    *,
    search: Search,
    config: ReconcileConfig | None = None,
    state_reader: WorkflowStateReader | None = None,
    executions_reader: DurableExecutionsReader | None = None,
    item: Any = _NOT_READ,
) -> ReconcileResult:
    """Check one search for drift, repair it if certain, else flag it. Network I/O happens outside
    transactions; every change goes through the search services (conditional updates), so a
    callback or a cancel racing this check wins or loses cleanly.

    `item` lets a batch pass the DynamoDB item it already read (None: no item).
    """
    config = config or ReconcileConfig.from_settings()
    search.refresh_from_db()
    if search.is_terminal:
        return ReconcileResult(search.pk, Outcome.SKIPPED, f"the search is {search.status}")
    if search.engine == Engine.CELERY:
        return _reconcile_celery(search, config)
    return _reconcile_durable(search, config, state_reader, executions_reader, item)


# --- Celery --------------------------------------------------------------------------------------


def _reconcile_celery(search: Search, config: ReconcileConfig) -> ReconcileResult:
    attempt, status = search.attempt, search.status

    def ok(reason: str, code: str, **params: Any) -> ReconcileResult:
        return _conclude(search, attempt, Outcome.OK, reason, code, {"status": status, **params})

    if status == SearchStatus.AWAITING_VETTING:
        return ok(f"{status}: waiting on GlobalCoach until its deadline", "celery_awaiting_vetting")
    if status not in (SearchStatus.DISPATCHED, SearchStatus.RUNNING):
        return ok(f"{status}: left to the dispatch sweeper", "celery_sweeper")
    if search.lease_expires_at is None:
        return ok(f"{status}: being sent again by the lease sweeper", "celery_lease_resend")
    left = int((search.lease_expires_at - timezone.now()).total_seconds())
    holder = search.lease_owner or "the queue"  # the code's holder is the owner: "" is worded "the queue"
    if left >= 0:
        return ok(
            f"{status}: leased to {holder} for {left}s more", "celery_leased", holder=search.lease_owner, seconds=left
        )
    return ok(
        f"{status}: lease of {holder} expired {-left}s ago; re-sent shortly",
        "celery_lease_expired",
        holder=search.lease_owner,
        seconds=-left,
    )


# --- durable -------------------------------------------------------------------------------------


def _reconcile_durable(
    search: Search,
    config: ReconcileConfig,
    state_reader: WorkflowStateReader | None,
    executions_reader: DurableExecutionsReader | None,
    item: Any,
) -> ReconcileResult:
    attempt, before = search.attempt, search.status
    idle = int((timezone.now() - search.updated_at).total_seconds())
    in_grace = idle < config.durable_start_grace_seconds
    if item is _NOT_READ:
        try:
            state_reader = state_reader or WorkflowStateReader.from_settings()
            item = state_reader.get(str(search.pk))
        except DynamoStateError as exc:
            return _conclude(
                search,
                attempt,
                Outcome.FLAGGED,
                f"could not read the DynamoDB item: {exc}",
                "dynamo_unreadable",
                {"error": str(exc)},
            )
    mirror = WorkflowExecution.objects.filter(search_id=search.pk, attempt=attempt).first()
    arn = mirror.execution_arn if mirror else ""

    if item is not None:
        item_attempt, item_status = int(item.get("attempt") or 0), str(item.get("status") or "")
        if item_attempt > attempt:
            return _conclude(
                search,
                attempt,
                Outcome.FLAGGED,
                f"DynamoDB holds attempt {item_attempt}, newer than the console's attempt {attempt}",
                "item_newer_attempt",
                {"item_attempt": item_attempt, "attempt": attempt},
            )
        if item_attempt < attempt:
            if in_grace:
                return _conclude(
                    search,
                    attempt,
                    Outcome.OK,
                    f"attempt {attempt} is being started",
                    "attempt_starting",
                    {"attempt": attempt},
                )
            return _conclude(
                search,
                attempt,
                Outcome.FLAGGED,
                f"DynamoDB still holds attempt {item_attempt} ({item_status}): attempt {attempt} was never "
                f"started on the durable engine",
                "attempt_never_started",
                {"item_attempt": item_attempt, "item_status": item_status, "attempt": attempt},
            )
        repaired, params = _apply_item(search, item)
        if repaired:
            return _conclude(search, attempt, Outcome.REPAIRED, repaired, "repaired_from_item", params)
        arn = item.get("execution_arn") or arn

    if not arn:
        if in_grace:
            return _conclude(
                search,
                attempt,
                Outcome.OK,
                f"{before}: the durable execution is being started",
                "execution_starting",
                {"before": before},
            )
        if item is None:
            return _conclude(
                search,
                attempt,
                Outcome.FLAGGED,
                f"{before} for {idle}s with no DynamoDB item",
                "no_item",
                {"before": before, "seconds": idle},
            )
        dispatch = (item.get("dispatch") or {}).get("state", "unknown")
        return _conclude(
            search,
            attempt,
            Outcome.FLAGGED,
            f"{before} for {idle}s with an item with no execution ARN (dispatch {dispatch})",
            "no_execution_arn",
            {"before": before, "seconds": idle, "dispatch": str(dispatch)},
        )

    try:
        executions_reader = executions_reader or DurableExecutionsReader.from_settings()
        execution = executions_reader.get(arn)
    except DurableExecutionNotFound:
        return _conclude(
            search,
            attempt,
            Outcome.FLAGGED,
            f"the durable execution does not exist (expired, deleted or never started) while the console "
            f"says {search.status}",
            "execution_missing",
            {"status": search.status},
        )
    except DurableExecutionsError as exc:
        return _conclude(
            search,
            attempt,
            Outcome.FLAGGED,
            f"could not read the durable execution: {exc}",
            "execution_unreadable",
            {"error": str(exc)},
        )

    item_says = "no DynamoDB item" if item is None else f"item {item.get('status')} v{item.get('version')}"
    # The item as the sentences name it (None: no item); the console words it (matching.admin.words).
    item_named = None if item is None else {"status": str(item.get("status")), "version": item.get("version")}
    if execution.status in durable_history.LIVE_STATUSES:
        if item is None:
            return _conclude(
                search,
                attempt,
                Outcome.FLAGGED,
                f"the durable execution is {execution.status} but it has no item",
                "live_without_item",
                {"execution_status": execution.status},
            )
        return _conclude(
            search,
            attempt,
            Outcome.OK,
            f"execution {execution.status}, {item_says}",
            "live",
            {"execution_status": execution.status, "item": item_named},
        )
    if execution.status in _ENDED_EXECUTION:
        return _repair_from_execution(search, execution, state_reader, item_says, item_named)
    if execution.status == durable_history.SUCCEEDED:
        return _conclude(
            search,
            attempt,
            Outcome.FLAGGED,
            f"the durable execution succeeded but {item_says} is not finished: its results never reached DynamoDB",
            "succeeded_unfinished",
            {"item": item_named},
        )
    return _conclude(
        search,
        attempt,
        Outcome.FLAGGED,
        f"the durable execution is {execution.status}; {item_says}",
        "execution_other",
        {"execution_status": execution.status, "item": item_named},
    )


def _apply_item(search: Search, item: dict[str, Any]) -> tuple[str, dict]:
    """Bring the search to the item's state. Returns what was repaired ("" if nothing) and the
    values that sentence names."""
    before = search.status
    mirror_apply_items(items=[item], actor=RECONCILER)
    search.refresh_from_db()
    status = item.get("status")
    if search.status == before and not search.is_terminal and status in APPLIED_STATUSES and status != before:
        # The mirror already had this version, yet the search is elsewhere: apply the status itself.
        with transaction.atomic(durable=True):
            mirror_apply_item_status(search=search, item=item, actor=RECONCILER)
        search.refresh_from_db()
    if search.status == before:
        return "", {}
    params = {"before": before, "version": item.get("version"), "status": search.status}
    return f"the console said {before}; the DynamoDB item (v{item.get('version')}) says {search.status}", params


def _repair_from_execution(
    search: Search,
    execution: DurableExecution,
    state_reader: WorkflowStateReader | None,
    item_says: str,
    item_named: dict | None,
) -> ReconcileResult:
    attempt, before = search.attempt, search.status
    # The item may have caught up since it was read (the workflow's last write, or a cancel): prefer it.
    try:
        fresh = (state_reader or WorkflowStateReader.from_settings()).get(str(search.pk))
    except DynamoStateError:
        fresh = None
    if fresh is not None and int(fresh.get("attempt") or 0) == attempt and fresh.get("status") not in ACTIVE_STATUSES:
        repaired, params = _apply_item(search, fresh)
        if repaired:
            return _conclude(search, attempt, Outcome.REPAIRED, repaired, "repaired_from_item", params)
    status, why = _ENDED_EXECUTION[execution.status]
    error = f"{why}: {execution.error_text}" if execution.error_text else why
    ended_at = execution.ended_at or timezone.now()
    with transaction.atomic(durable=True):
        changed = search_record_engine_status(
            search_id=search.pk, attempt=attempt, status=status, error=error, actor=RECONCILER
        )
        if changed:
            WorkflowExecution.objects.filter(search_id=search.pk, attempt=attempt).update(
                status=status, ended_at=ended_at, error=error[:2000], execution_arn=execution.arn[:400]
            )
    if not changed:
        search.refresh_from_db()
        return _conclude(
            search,
            attempt,
            Outcome.OK,
            f"finished ({search.status}) while being checked",
            "finished_meanwhile",
            {"status": search.status},
        )
    return _conclude(
        search,
        attempt,
        Outcome.REPAIRED,
        f"the console said {before} ({item_says}) but the durable execution is {execution.status}: now {status}",
        "repaired_from_execution",
        {"before": before, "item": item_named, "execution_status": execution.status, "status": status},
    )


# --- the periodic pass ---------------------------------------------------------------------------


def searches_reconcile_drift(*, limit: int | None = None, config: ReconcileConfig | None = None) -> DriftReport:
    """Check the unfinished searches least recently checked (at most `limit`), skipping those that
    changed in the last `min_age_seconds`. DynamoDB items are read in batches of 100."""
    config = config or ReconcileConfig.from_settings()
    limit = config.batch if limit is None else limit
    report = DriftReport()
    last_checked = WorkflowExecution.objects.filter(search_id=OuterRef("pk"), attempt=OuterRef("attempt")).values(
        "drift_checked_at"
    )[:1]
    due = list(
        Search.objects.filter(
            status__in=ACTIVE_STATUSES,
            updated_at__lt=timezone.now() - dt.timedelta(seconds=config.min_age_seconds),
        )
        .annotate(last_checked=Subquery(last_checked))
        .order_by(F("last_checked").asc(nulls_first=True), "updated_at")[:limit]
    )
    durable = [s for s in due if s.engine == Engine.DURABLE]
    items: dict[str, dict[str, Any]] = {}
    state_reader = None
    if durable:
        try:
            state_reader = WorkflowStateReader.from_settings()
            items = state_reader.batch_get([str(s.pk) for s in durable])
        except DynamoStateError as exc:
            # Without the items nothing durable can be judged; flags now would only be noise.
            logger.warning("drift check skipped %d durable searches: %s", len(durable), exc)
            report.errors.append(f"DynamoDB: {exc}")
            due = [s for s in due if s.engine != Engine.DURABLE]
    executions_reader = None
    for search in due:
        try:
            if search.engine == Engine.DURABLE:
                if executions_reader is None:
                    try:
                        executions_reader = DurableExecutionsReader.from_settings()
                    except DurableExecutionsError:
                        executions_reader = None
                result = search_reconcile(
                    search=search,
                    config=config,
                    state_reader=state_reader,
                    executions_reader=executions_reader,
                    item=items.get(str(search.pk)),
                )
            else:
                result = search_reconcile(search=search, config=config)
        except Search.DoesNotExist:
            continue
        report.add(result)
    return report
