"""What the mirror's parts share: its configuration, the timeline insert (each entry once), the
entries' keys, and the sync watermarks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from workflows.models import (
    ExecutionTimelineEntry,
    SyncWatermark,
)


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
class HistoryReport:
    executions: int = 0
    events_added: int = 0
    completed: int = 0
    not_found: int = 0
    errors: list[str] = field(default_factory=list)


def _key_digest(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


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
