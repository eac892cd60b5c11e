"""Refreshing one search's mirror on demand (a stale detail page, a staff resync), single-flight."""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.cache import cache
from django.utils import timezone

from matching.models import Engine, Search
from workflows.durable_console.dynamo import DynamoConfig, DynamoStateError, WorkflowStateReader
from workflows.durable_console.history import (
    DurableExecutionsError,
    DurableExecutionsReader,
)
from workflows.mirror.history import execution_history_sync
from workflows.mirror.state import mirror_apply_items
from workflows.mirror.timeline import MirrorConfig
from workflows.models import (
    WorkflowExecution,
)

logger = logging.getLogger(__name__)


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

    code = "resync_celery_only"


@dataclass(frozen=True)
class ResyncReport:
    """What a resync changed: `message` in English (the audit trail keeps it), and the same as
    parts, each a code and the values it names, for the console to word in the staff member's
    language (matching.admin.words.RESYNC_PARTS)."""

    message: str
    parts: list[tuple[str, dict]] = field(default_factory=list)


def search_mirror_resync(*, search: Search) -> ResyncReport:
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
        return ResyncReport(
            "DynamoDB has no item for it (never started on the durable side, or deleted)", [("resync_no_item", {})]
        )
    before = search.status
    applied = mirror_apply_items(items=[item], actor="staff-resync")
    search.refresh_from_db()
    version, item_status = item.get("version"), item.get("status")
    if applied.applied:
        said = f"applied item v{version} ({item_status}), {applied.timeline_added} timeline entries"
        parts = [("resync_applied", {"version": version, "item_status": item_status, "count": applied.timeline_added})]
    else:
        said = f"already at item v{version} ({item_status})"
        parts = [("resync_already", {"version": version, "item_status": item_status})]
    if search.status != before:
        said += f"; the search went from {before} to {search.status}"
        parts.append(("resync_status_changed", {"before": before, "status": search.status}))
    execution = WorkflowExecution.objects.filter(search_id=search.pk, attempt=int(item["attempt"])).first()
    if execution is not None and execution.execution_arn:
        try:
            added, ended = execution_history_sync(execution=execution, reader=DurableExecutionsReader.from_settings())
            said += f"; history: {added} new event(s){' (complete)' if ended else ''}"
            parts.append(("resync_history_complete" if ended else "resync_history", {"count": added}))
        except DurableExecutionsError as exc:
            said += f"; history not read: {exc}"
            parts.append(("resync_history_unread", {"error": str(exc)}))
    return ResyncReport(said, parts)


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
