"""The warm candidate index: each process keeps every open profile in memory, in the engine's form.

The database stays the source of truth; this is a cache with a bounded staleness.

- **Cold load**: the first search in a process reads every open, undeleted profile with one lean
  query per chunk of 50,000: PostgreSQL aggregates the chunk into one value per column (numeric
  columns as arrays, each set-valued column as its per-profile counts plus one flat JSON list of
  all its values), so Python makes no object per profile — no ORM row, no dict, no list — and
  `ProfileIndexBuilder` interns each column as it arrives. The population never exists as
  Python objects.
- **Refresh**: a search that finds the index older than `MATCHING_INDEX_STALENESS_MS` first reads
  the profiles changed since the last refresh (`updated_at` is stamped by the database on every
  write; a delete leaves a tombstone) and applies them to a `LiveProfileIndex`. Each refresh
  re-reads `MATCHING_INDEX_OVERLAP_SECONDS` below its cursor, so a write stamped before but
  committed after the previous refresh is still seen. Hence: a change committed at time T is in
  every search that starts after T + the staleness bound.
- **Reload**: a delta past `MATCHING_INDEX_DELTA_MAX` profiles, or an index older than
  `MATCHING_INDEX_RELOAD_SECONDS`, is rebuilt from scratch in a background thread while searches
  go on; a new resort map, or `profile_index_invalidate()` (after a bulk hard delete), makes the
  next search reload at once. Losing the index (a restart) costs one cold load.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from matching import metrics
from matching.engine import LiveProfileIndex, Profile, ProfileIndexBuilder, SearchRequest
from matching.models import SkierProfile
from matching.selectors import resort_regions

logger = logging.getLogger(__name__)

GENERATION_CACHE_KEY = "matching:profile-index:generation"
LOAD_CHUNK_ROWS = 50_000

# One row per chunk of profiles (keyset-paged by id), one value per column. A set-valued column
# comes as its per-profile counts and one JSON list of all its values in profile order: jsonb's
# text form is '["a", "b"]', so its inside joined by ',' is a flat JSON list once bracketed.
_SET_COLUMNS = ("resorts", "regions", "available_dates", "certifications")
_LOAD_SQL_POSTGRESQL = f"""
    SELECT max(id), count(*), json_agg(user_id ORDER BY id)::text, array_agg(skill_level ORDER BY id),
           array_agg(role ORDER BY id), array_agg(knowledge_score ORDER BY id),
           {
    ", ".join(
        f"array_agg(jsonb_array_length({c}) ORDER BY id), "
        f"string_agg(NULLIF(substr({c}::text, 2, length({c}::text) - 2), ''), ',' ORDER BY id)"
        for c in _SET_COLUMNS
    )
}
    FROM (SELECT id, user_id, skill_level, role, knowledge_score, {", ".join(_SET_COLUMNS)}
          FROM matching_skierprofile
          WHERE id > %s AND open_to_matching AND deleted_at IS NULL
          ORDER BY id LIMIT %s) AS chunk
"""  # noqa: S608 - no user input: column names are constants
# Other databases (SQLite for local runs): the chunk as one JSON array of rows.
_LOAD_SQL_GENERIC = """
    SELECT json_group_array(json_array(id, user_id, skill_level, role, knowledge_score,
                                       json(resorts), json(regions), json(available_dates),
                                       json(certifications)))
    FROM (SELECT id, user_id, skill_level, role, knowledge_score, resorts, regions, available_dates,
                 certifications
          FROM matching_skierprofile
          WHERE id > %s AND open_to_matching AND deleted_at IS NULL
          ORDER BY id LIMIT %s) AS chunk
"""
_CHANGE_FIELDS = (
    "user_id",
    "skill_level",
    "role",
    "open_to_matching",
    "deleted_at",
    "knowledge_score",
    "resorts",
    "regions",
    "available_dates",
    "certifications",
    "updated_at",
)


@dataclass(frozen=True)
class IndexStats:
    profiles: int  # what a search can see
    base_profiles: int
    delta_profiles: int
    hidden_base_rows: int
    index_bytes: int
    loaded_at: datetime  # wall clock of the last (re)load
    load_seconds: float
    refreshed_at: datetime  # wall clock of the last refresh
    refreshes: int
    changes_applied: int

    def line(self) -> str:
        return (
            f"{self.profiles:,} profiles (base {self.base_profiles:,}, delta {self.delta_profiles:,}, "
            f"{self.hidden_base_rows:,} base rows superseded), {self.index_bytes / 1e6:.1f} MB, "
            f"loaded in {self.load_seconds:.2f} s"
        )


@dataclass(frozen=True)
class _State:
    live: LiveProfileIndex
    as_of: float  # monotonic time just before the newest data was read
    loaded_as_of: float  # monotonic time of the load the base came from
    cursor: datetime  # re-read changes stamped after this (database clock)
    applied: dict[str, datetime]  # user id → stamp applied, for stamps above `cursor`
    generation: str | None
    resort_map: dict[str, str]
    loaded_at: datetime
    load_seconds: float
    refreshed_at: datetime
    refreshes: int = 0
    changes_applied: int = 0


class WarmProfileIndex:
    """One process's warm index. Thread-safe: refreshes take a lock, searches use a snapshot."""

    def __init__(
        self,
        *,
        staleness_seconds: float,
        overlap_seconds: float,
        reload_seconds: float,
        delta_max: int,
        chunk_rows: int = LOAD_CHUNK_ROWS,
    ):
        self.staleness = staleness_seconds
        self.overlap = timedelta(seconds=overlap_seconds)
        self.reload_after = reload_seconds
        self.delta_max = delta_max
        self.chunk_rows = chunk_rows
        self._state: _State | None = None
        self._lock = threading.Lock()
        self._reloader: threading.Thread | None = None

    @classmethod
    def from_settings(cls) -> WarmProfileIndex:
        return cls(
            staleness_seconds=settings.MATCHING_INDEX_STALENESS_MS / 1000,
            overlap_seconds=settings.MATCHING_INDEX_OVERLAP_SECONDS,
            reload_seconds=settings.MATCHING_INDEX_RELOAD_SECONDS,
            delta_max=settings.MATCHING_INDEX_DELTA_MAX,
        )

    # --- what searches call ---------------------------------------------------------------

    def current(self) -> LiveProfileIndex:
        """The index, refreshed first if it is older than the staleness bound."""
        state = self._state
        if state is None or time.monotonic() - state.as_of > self.staleness:
            with self._lock:
                state = self._state
                if state is None:
                    state = self._state = self._load()
                elif time.monotonic() - state.as_of > self.staleness:
                    state = self._state = self._refresh(state)
        self._maybe_reload_in_background(state)
        return state.live

    def stats(self) -> IndexStats | None:
        state = self._state
        if state is None:
            return None
        live = state.live
        return IndexStats(
            profiles=len(live),
            base_profiles=len(live.base),
            delta_profiles=live.delta_size,
            hidden_base_rows=live.hidden_count,
            index_bytes=live.nbytes(),
            loaded_at=state.loaded_at,
            load_seconds=state.load_seconds,
            refreshed_at=state.refreshed_at,
            refreshes=state.refreshes,
            changes_applied=state.changes_applied,
        )

    def reload(self) -> None:
        """Rebuild from the database now (synchronously)."""
        with self._lock:
            self._state = self._load()

    # --- loading ----------------------------------------------------------------------------

    def _load(self) -> _State:
        started = time.monotonic()
        generation = _generation()
        regions = resort_regions()
        as_of = time.monotonic()
        db_now = _database_now()
        builder = ProfileIndexBuilder(regions)
        read_chunk = _read_chunk_postgresql if connection.vendor == "postgresql" else _read_chunk_generic
        last_id = 0
        with connection.cursor() as cursor:
            while True:
                last_id, rows = read_chunk(cursor, builder, last_id, self.chunk_rows)
                if rows < self.chunk_rows:
                    break
        live = LiveProfileIndex(builder.build())
        del builder
        _return_freed_memory()
        cursor_at = db_now - self.overlap
        # Rows stamped inside the overlap are in the base already: remember them, so the first
        # refresh does not move them to the delta for nothing.
        applied = dict(SkierProfile.objects.filter(updated_at__gt=cursor_at).values_list("user_id", "updated_at"))
        now = timezone.now()
        state = _State(
            live=live,
            as_of=as_of,
            loaded_as_of=as_of,
            cursor=cursor_at,
            applied=applied,
            generation=generation,
            resort_map=regions,
            loaded_at=now,
            load_seconds=time.monotonic() - started,
            refreshed_at=now,
        )
        metrics.index_loaded(profiles=len(live), load_seconds=state.load_seconds)
        logger.info(
            "warm profile index loaded in pid %s: %s",
            os.getpid(),
            IndexStats(
                profiles=len(live),
                base_profiles=len(live.base),
                delta_profiles=0,
                hidden_base_rows=0,
                index_bytes=live.nbytes(),
                loaded_at=now,
                load_seconds=state.load_seconds,
                refreshed_at=now,
                refreshes=0,
                changes_applied=0,
            ).line(),
        )
        return state

    def _refresh(self, state: _State) -> _State:
        if _generation() != state.generation or resort_regions() != state.resort_map:
            logger.info("warm profile index: profiles invalidated or resorts changed; reloading")
            return self._load()
        as_of = time.monotonic()
        db_now = _database_now()
        rows = (
            SkierProfile.objects.filter(updated_at__gt=state.cursor)
            .order_by("updated_at", "id")
            .values_list(*_CHANGE_FIELDS)
        )
        latest: dict[str, tuple] = {}
        for row in rows.iterator(chunk_size=5000):
            latest[row[0]] = row  # ordered by stamp: the last one is the current row
        applied = dict(state.applied)
        upserts: list[Profile] = []
        removals: list[str] = []
        for user_id, row in latest.items():
            stamp = row[-1]
            if applied.get(user_id) == stamp:
                continue
            applied[user_id] = stamp
            (_, skill, role, is_open, deleted_at, knowledge, resorts, regions, dates, certifications, _) = row
            if deleted_at is not None or not is_open:
                removals.append(user_id)
                continue
            upserts.append(
                Profile(
                    user_id=user_id,
                    nickname="",  # results read nicknames from the database (profile_nicknames)
                    skill_level=skill,
                    role=role,
                    resorts=tuple(resorts),
                    regions=tuple(regions),
                    available_dates=tuple(dates),
                    knowledge_score=knowledge,
                    certifications=tuple(certifications),
                )
            )
        cursor_at = max(state.cursor, db_now - self.overlap)
        applied = {uid: stamp for uid, stamp in applied.items() if stamp > cursor_at}
        live = state.live.apply(upserts=upserts, removals=removals) if (upserts or removals) else state.live
        metrics.index_refreshed(profiles=len(live))
        return _State(
            live=live,
            as_of=as_of,
            loaded_as_of=state.loaded_as_of,
            cursor=cursor_at,
            applied=applied,
            generation=state.generation,
            resort_map=state.resort_map,
            loaded_at=state.loaded_at,
            load_seconds=state.load_seconds,
            refreshed_at=timezone.now(),
            refreshes=state.refreshes + 1,
            changes_applied=state.changes_applied + len(upserts) + len(removals),
        )

    def _maybe_reload_in_background(self, state: _State) -> None:
        too_big = state.live.delta_size > self.delta_max
        too_old = self.reload_after > 0 and time.monotonic() - state.loaded_as_of > self.reload_after
        if not (too_big or too_old) or (self._reloader is not None and self._reloader.is_alive()):
            return
        self._reloader = threading.Thread(target=self._reload_in_background, name="profile-index-reload", daemon=True)
        self._reloader.start()

    def _reload_in_background(self) -> None:
        try:
            fresh = self._load()  # no lock: searches and refreshes go on meanwhile
            with self._lock:
                # Changes since the load began are re-read by this refresh (cursor = load - overlap).
                self._state = self._refresh(fresh)
        except Exception:
            logger.exception("warm profile index: background reload failed; keeping the current index")
        finally:
            connection.close()  # this thread's own connection


def _read_chunk_postgresql(cursor, builder: ProfileIndexBuilder, after_id: int, size: int) -> tuple[int, int]:
    cursor.execute(_LOAD_SQL_POSTGRESQL, [after_id, size])
    last_id, count, user_ids, skill, roles, knowledge, *sets = cursor.fetchone()
    if not count:
        return after_id, 0
    flat = {}
    for name, lengths, values in zip(_SET_COLUMNS, sets[0::2], sets[1::2], strict=True):
        flat[name] = (np.array(lengths, dtype=np.int32), json.loads(f"[{values}]") if values else [])
    builder.add_flat(
        user_ids=np.array([uid.encode() for uid in json.loads(user_ids)], dtype=np.bytes_),
        skill_levels=skill,
        roles=roles,
        knowledge_scores=knowledge,
        **flat,
    )
    return last_id, count


def _read_chunk_generic(cursor, builder: ProfileIndexBuilder, after_id: int, size: int) -> tuple[int, int]:
    cursor.execute(_LOAD_SQL_GENERIC, [after_id, size])
    payload = cursor.fetchone()[0]
    rows = json.loads(payload) if isinstance(payload, str | bytes) else payload
    if not rows:
        return after_id, 0
    ids, user_ids, skill, roles, knowledge, resorts, regions, dates, certifications = zip(*rows, strict=True)
    builder.add(
        user_ids=user_ids,
        skill_levels=skill,
        roles=roles,
        knowledge_scores=knowledge,
        resorts=resorts,
        regions=regions,
        available_dates=dates,
        certifications=certifications,
    )
    return ids[-1], len(ids)


def _return_freed_memory() -> None:
    """Hand the load's freed scratch memory back to the OS. glibc keeps freed heap pages (the
    per-chunk buffers of a load) for reuse; without this a process's RSS would stay near the
    load's peak instead of the index's size. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _database_now() -> datetime:
    """The database clock, which stamps `updated_at` (SQLite runs on this host's clock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT STATEMENT_TIMESTAMP()")
            return cursor.fetchone()[0]
    return timezone.now()


def _generation() -> str | None:
    try:
        value = cache.get(GENERATION_CACHE_KEY)
        if value is None:
            cache.add(GENERATION_CACHE_KEY, secrets.token_hex(8), timeout=None)
            value = cache.get(GENERATION_CACHE_KEY)
        return value
    except Exception:  # the cache is an optimisation here; a search must not fail on it
        logger.warning("warm profile index: cannot read the index generation from the cache", exc_info=True)
        return None


def profile_index_invalidate() -> None:
    """Make every process's warm index reload at its next refresh. Needed only after writes that
    bypass the profile services' tombstones (a bulk hard delete, a restored backup)."""
    cache.set(GENERATION_CACHE_KEY, secrets.token_hex(8), timeout=None)


# --- the process's index ------------------------------------------------------------------------

_process_index: tuple[int, WarmProfileIndex] | None = None
_process_lock = threading.Lock()


def candidate_index() -> WarmProfileIndex:
    """This process's warm index (a forked child gets its own, never its parent's)."""
    global _process_index
    current = _process_index
    if current is None or current[0] != os.getpid():
        with _process_lock:
            current = _process_index
            if current is None or current[0] != os.getpid():
                current = _process_index = (os.getpid(), WarmProfileIndex.from_settings())
    return current[1]


def candidate_index_preload() -> None:
    """Start loading this process's index in a thread (a search arriving meanwhile waits for it
    instead of loading a second copy). Called as each Celery worker process and, when the
    durable engine is configured, each gunicorn worker starts (`MATCHING_INDEX_PRELOAD`)."""
    threading.Thread(target=_preload, name="profile-index-preload", daemon=True).start()


def _preload() -> None:
    try:
        candidate_index().current()
    except Exception:  # the first search loads it instead; a process must start regardless
        logger.exception("could not preload the warm candidate index")
    finally:
        connection.close()


def candidate_index_reset() -> None:
    """Forget this process's index (tests; the next search loads afresh)."""
    global _process_index
    with _process_lock:
        _process_index = None


def profile_nicknames(*, user_ids: Sequence[str] | Iterable[str]) -> dict[str, str]:
    """Nicknames to show with results (the index holds no nicknames: they cost memory, not speed)."""
    ids = list(user_ids)
    if not ids:
        return {}
    return dict(SkierProfile.objects.filter(user_id__in=ids).values_list("user_id", "nickname"))


@dataclass(frozen=True)
class Ranking:
    matches: list  # list[Match], best first
    candidate_count: int  # profiles that passed every filter and the threshold, before the cap
    indexed_profiles: int
    nicknames: dict[str, str]


def rank_candidates(*, seeker_id: str, preferences: dict) -> Ranking:
    """One search's ranking from this process's warm index (raises ValueError on bad preferences)."""
    request = SearchRequest.from_preferences(seeker_id, preferences)
    index = candidate_index().current()
    matches, count = index.search_counted(request)
    return Ranking(
        matches=matches,
        candidate_count=count,
        indexed_profiles=len(index),
        nicknames=profile_nicknames(user_ids=[m.user_id for m in matches]),
    )
