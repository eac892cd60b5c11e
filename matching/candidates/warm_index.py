"""The warm candidate index: each process searches every open profile in memory, in the engine's form.

Long on purpose: the warm index's process state, its refresh, reload and snapshot switch are one
concurrency unit (one lock, one state object); split, their invariants would span modules.

The database stays the source of truth; this is a cache with a bounded staleness.

- **One copy per host** (`MATCHING_INDEX_SNAPSHOT`): the index's base is a snapshot on local
  disk (matching.engine.snapshot) that every process maps read-only; a process that finds a
  current one fitting this database maps it and refreshes from its cursor, so it is ready in about
  a second. Each process keeps only its overlay (hidden base rows and a delta of changed profiles).
- **Cold load** (no usable snapshot): one `COPY` of the columns the engine needs, parsed into
  arrays by numpy (matching.candidates.cold_load), so the population never exists as Python objects. The
  process then writes the host's snapshot in the background (if no other process holds the
  writer lock) and maps it in place of its own arrays.
- **Refresh**: a search that finds the index older than `MATCHING_INDEX_STALENESS_MS` first reads
  the profiles changed since the last refresh (`updated_at` is stamped by the database on every
  write; a delete leaves a tombstone) and applies them to a `LiveProfileIndex`. Each refresh
  re-reads `MATCHING_INDEX_OVERLAP_SECONDS` below its cursor, so a write stamped before but
  committed after the previous refresh is still seen. Hence: a change committed at time T is in
  every search that starts after T + the staleness bound.
- **Reload**: a delta past `MATCHING_INDEX_DELTA_MAX` profiles, or a base older than
  `MATCHING_INDEX_RELOAD_SECONDS`, is replaced in a background thread while searches go on: by a
  newer host snapshot if another process wrote one, else by a load this process writes as the new
  snapshot; other processes switch to a new snapshot at their next refresh. A new resort map, or
  `profile_index_invalidate()` (after a bulk hard delete), makes the next search reload at once
  (and refuses older snapshots).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from matching import metrics
from matching.candidates.cold_load import copy_profiles_into
from matching.engine import LiveProfileIndex, Profile, ProfileIndexBuilder, SearchRequest
from matching.engine.snapshot import LockBusy, SnapshotRefused, SnapshotStore
from matching.models import SkierProfile
from matching.selectors import resort_regions

logger = logging.getLogger(__name__)

GENERATION_CACHE_KEY = "matching:profile-index:generation"
LOAD_CHUNK_ROWS = 50_000

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
    snapshot: str | None = None  # the host snapshot the base is mapped from (None: private arrays)
    snapshot_age_seconds: float | None = None  # since the base's data was read from the database
    staleness_seconds: float = 0.0  # since the newest data a search sees was read

    @property
    def overlay_profiles(self) -> int:
        """This process's private overlay: changed profiles held beside the (shared) base."""
        return self.delta_profiles + self.hidden_base_rows

    def line(self) -> str:
        source = f"snapshot {self.snapshot}" if self.snapshot else "private arrays"
        return (
            f"{self.profiles:,} profiles (base {self.base_profiles:,}, delta {self.delta_profiles:,}, "
            f"{self.hidden_base_rows:,} base rows superseded), {self.index_bytes / 1e6:.1f} MB, "
            f"loaded in {self.load_seconds:.2f} s from {source}"
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
    snapshot: str | None = None  # name of the host snapshot the base is mapped from
    base_taken_at: float = 0.0  # wall clock (epoch) at which the base's data was read
    database: str = ""  # identity of the database the base came from


class WarmProfileIndex:
    """One process's warm index. Thread-safe: refreshes take a lock, searches use a snapshot.

    With `snapshot_dir`, the base lives in a host snapshot (matching.engine.snapshot) shared by
    every process on the host: a process maps the current one if it fits this database, or loads
    from the database and writes one (whoever holds the host's writer lock). A new snapshot is
    made when this process's overlay passes `delta_max` or its base is older than
    `reload_seconds`; every process switches to it at its next refresh.
    """

    def __init__(
        self,
        *,
        staleness_seconds: float,
        overlap_seconds: float,
        reload_seconds: float,
        delta_max: int,
        chunk_rows: int = LOAD_CHUNK_ROWS,
        snapshot_dir: str | os.PathLike | None = None,
    ):
        self.staleness = staleness_seconds
        self.overlap = timedelta(seconds=overlap_seconds)
        self.reload_after = reload_seconds
        self.delta_max = delta_max
        self.chunk_rows = chunk_rows
        self.store = SnapshotStore(snapshot_dir) if snapshot_dir else None
        self._state: _State | None = None
        self._lock = threading.Lock()
        self._reloader: threading.Thread | None = None
        self._examined: str | None = None  # the last snapshot name opened or refused (not retried)

    @classmethod
    def from_settings(cls) -> WarmProfileIndex:
        return cls(
            staleness_seconds=settings.MATCHING_INDEX_STALENESS_MS / 1000,
            overlap_seconds=settings.MATCHING_INDEX_OVERLAP_SECONDS,
            reload_seconds=settings.MATCHING_INDEX_RELOAD_SECONDS,
            delta_max=settings.MATCHING_INDEX_DELTA_MAX,
            snapshot_dir=settings.MATCHING_INDEX_SNAPSHOT_DIR if settings.MATCHING_INDEX_SNAPSHOT else None,
        )

    # --- what searches call ---------------------------------------------------------------

    def current(self) -> LiveProfileIndex:
        """The index, refreshed first if it is older than the staleness bound."""
        state = self._state
        refreshed = False
        if state is None or time.monotonic() - state.as_of > self.staleness:
            with self._lock:
                state = self._state
                if state is None:
                    state = self._state = self._first_load()
                elif time.monotonic() - state.as_of > self.staleness:
                    state = self._state = self._refresh(state)
                    refreshed = True
        self._maybe_reload_in_background(state, refreshed=refreshed)
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
            snapshot=state.snapshot,
            snapshot_age_seconds=max(0.0, time.time() - state.base_taken_at) if state.snapshot else None,
            staleness_seconds=max(0.0, time.monotonic() - state.as_of),
        )

    def reload(self) -> None:
        """Rebuild from the database now (synchronously; a snapshot store gets a new snapshot)."""
        with self._lock:
            state = self._state = self._load()
        if self.store is not None:
            self._write_snapshot(state)

    # --- loading ----------------------------------------------------------------------------

    def _first_load(self) -> _State:
        """The host's current snapshot when it fits, else a load from the database (written as
        the host's snapshot in the background)."""
        if self.store is not None:
            state = self._open_snapshot()
            if state is not None:
                return self._refresh(state)
        state = self._load()
        if self.store is not None:
            threading.Thread(target=self._write_first_snapshot, name="profile-index-snapshot", daemon=True).start()
        return state

    def _snapshot_fits(self, meta: dict) -> str | None:
        """Why the snapshot `meta` describes cannot serve this process (None: it can)."""
        if meta.get("database") != _database_identity():
            return "made from another database"
        if meta.get("generation") != _generation():
            return "made before profile_index_invalidate()"
        if meta.get("resort_map") != resort_regions():
            return "made with another resort map"
        return None

    def _open_snapshot(self, *, newer_than: float = 0.0) -> _State | None:
        started = time.monotonic()
        self._examined = self.store.current_name()
        try:
            index, meta = self.store.open(accept=self._snapshot_fits)
        except SnapshotRefused as refused:
            logger.info("warm profile index: not using the host snapshot: %s", refused)
            return None
        if meta["taken_at"] <= newer_than:
            return None
        now = timezone.now()
        state = _State(
            live=LiveProfileIndex(index),
            as_of=-math.inf,  # refresh before the first search: the snapshot may be minutes old
            loaded_as_of=time.monotonic() - max(0.0, time.time() - meta["taken_at"]),
            cursor=datetime.fromisoformat(meta["cursor"]),
            applied={uid: datetime.fromisoformat(stamp) for uid, stamp in meta["applied"].items()},
            generation=meta["generation"],
            resort_map=meta["resort_map"],
            loaded_at=now,
            load_seconds=time.monotonic() - started,
            refreshed_at=now,
            snapshot=meta["name"],
            base_taken_at=meta["taken_at"],
            database=meta["database"],
        )
        metrics.index_loaded(profiles=len(state.live), load_seconds=state.load_seconds)
        logger.info("warm profile index mapped in pid %s from snapshot %s", os.getpid(), meta["name"])
        return state

    def _load(self) -> _State:
        started = time.monotonic()
        generation = _generation()
        regions = resort_regions()
        identity = _database_identity()
        as_of = time.monotonic()
        taken_at = time.time()
        db_now = _database_now()
        builder = ProfileIndexBuilder(regions)
        connection.ensure_connection()
        if connection.vendor == "postgresql":
            copy_profiles_into(builder, connection.connection)
        else:
            last_id = 0
            with connection.cursor() as cursor:
                while True:
                    last_id, rows = _read_chunk_generic(cursor, builder, last_id, self.chunk_rows)
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
            base_taken_at=taken_at,
            database=identity,
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

    def _snapshot_meta(self, state: _State) -> dict:
        return {
            "database": state.database,
            "generation": state.generation,
            "resort_map": state.resort_map,
            "cursor": state.cursor.isoformat(),
            "applied": {uid: stamp.isoformat() for uid, stamp in state.applied.items()},
            "taken_at": state.base_taken_at,
            "profiles": len(state.live.base),
        }

    def _write_first_snapshot(self) -> None:
        with self._lock:  # held by the search that is loading until it has stored the state
            state = self._state
        self._write_snapshot(state)
        del state
        _return_freed_memory()  # the private arrays, once mapped, and the write's scratch

    def _write_snapshot(self, state: _State | None) -> bool:
        """Write the freshly loaded base of `state` as the host's snapshot, then map it in place
        of this process's private arrays. False when another process holds the writer lock (it
        is writing one). Needs no database."""
        if self.store is None or state is None or state.snapshot is not None:
            return False
        try:
            with self.store.writer_lock():
                name = self.store.write(state.live.base, self._snapshot_meta(state))
                mapped, _ = self.store.open(accept=lambda _meta: None, verify=False)
        except LockBusy:
            return False
        except (OSError, SnapshotRefused):
            logger.exception("warm profile index: could not write the host snapshot")
            return False
        with self._lock:
            current = self._state
            # Same rows in the same order: the overlay's positions stay valid on the mapped copy.
            if current is not None and current.live.base is state.live.base:
                self._state = dataclasses.replace(current, live=current.live.with_base(mapped), snapshot=name)
        logger.info("warm profile index: wrote host snapshot %s (%s profiles)", name, f"{len(mapped):,}")
        return True

    def _refresh(self, state: _State) -> _State:
        if _generation() != state.generation or resort_regions() != state.resort_map:
            logger.info("warm profile index: profiles invalidated or resorts changed; reloading")
            return self._first_load()
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
        return dataclasses.replace(
            state,
            live=live,
            as_of=as_of,
            cursor=cursor_at,
            applied=applied,
            refreshed_at=timezone.now(),
            refreshes=state.refreshes + 1,
            changes_applied=state.changes_applied + len(upserts) + len(removals),
        )

    def _maybe_reload_in_background(self, state: _State, *, refreshed: bool) -> None:
        too_big = state.live.delta_size > self.delta_max
        too_old = self.reload_after > 0 and time.monotonic() - state.loaded_as_of > self.reload_after
        # Another process wrote a newer snapshot: switch at this refresh (checked once per refresh).
        switch = False
        if refreshed and self.store is not None:
            name = self.store.current_name()
            switch = name is not None and name != state.snapshot and name != self._examined
        if not (too_big or too_old or switch) or (self._reloader is not None and self._reloader.is_alive()):
            return
        self._reloader = threading.Thread(target=self._reload_in_background, name="profile-index-reload", daemon=True)
        self._reloader.start()

    def _reload_in_background(self) -> None:
        try:
            fresh = self._fresh_base()
            if fresh is None:
                return
            with self._lock:
                # Changes since the base was read are re-read by this refresh (cursor = read - overlap).
                self._state = self._refresh(fresh)
        except Exception:
            logger.exception("warm profile index: background reload failed; keeping the current index")
        finally:
            connection.close()  # this thread's own connection

    def _fresh_base(self) -> _State | None:
        """A newer base. Without a store, a load. With one: the host's snapshot when it is newer
        than ours and not past `reload_seconds`; else, if this process gets the writer lock, a
        load written as the new snapshot; else None (another process is writing one, or there
        is nothing newer: we look again at a later refresh)."""
        state = self._state
        if self.store is None or state is None:
            return self._load()
        newer = self._usable_newer_snapshot(state)
        if newer is not None:
            return newer
        if state.snapshot is None:
            # Our base is private (another process held the lock when we loaded) and newer than
            # the host's snapshot: make it the host's, and map it.
            self._write_snapshot(state)
            return None
        too_big = state.live.delta_size > self.delta_max
        too_old = self.reload_after > 0 and time.time() - state.base_taken_at > self.reload_after
        if not (too_big or too_old):
            return None
        try:
            with self.store.writer_lock():
                # Another process may have written one just before we got the lock.
                newer = self._usable_newer_snapshot(state)
                if newer is not None:
                    return newer
                fresh = self._load()
                name = self.store.write(fresh.live.base, self._snapshot_meta(fresh))
                mapped, _ = self.store.open(accept=lambda _meta: None, verify=False)
                logger.info("warm profile index: wrote host snapshot %s (%s profiles)", name, f"{len(mapped):,}")
                return dataclasses.replace(fresh, live=fresh.live.with_base(mapped), snapshot=name)
        except LockBusy:
            return None

    def _usable_newer_snapshot(self, state: _State) -> _State | None:
        newer = self._open_snapshot(newer_than=state.base_taken_at)
        if newer is None:
            return None
        if self.reload_after > 0 and time.time() - newer.base_taken_at > self.reload_after:
            return None
        return newer


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


_identity: tuple[int, str] | None = None


def _database_identity() -> str:
    """Which database the index comes from, so a host snapshot of another one is refused: the
    cluster's system identifier (when this role may read it), the database's name and its oid
    (a database dropped and created again under the same name gets a new oid)."""
    global _identity
    if _identity is not None and _identity[0] == os.getpid():
        return _identity[1]
    if connection.vendor != "postgresql":
        value = f"{connection.vendor}:{connection.settings_dict['NAME']}"
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), oid::text FROM pg_database WHERE datname = current_database()")
            name, oid = cursor.fetchone()
            system = ""
            try:
                with transaction.atomic():  # a savepoint: a refused read must not end the transaction
                    cursor.execute("SELECT system_identifier::text FROM pg_control_system()")
                    system = cursor.fetchone()[0]
            except DatabaseError:
                pass  # pg_control_system() needs pg_monitor or superuser; name and oid still tell
        value = f"postgresql:{system}:{name}:{oid}"
    _identity = (os.getpid(), value)
    return value


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


def index_health() -> dict:
    """What this host knows about the warm index, for /health and the dashboard: the host
    snapshot (name, age of its data, profiles) and this process's index (overlay size and
    staleness), when it has one. Never raises: it is read by health probes."""
    snapshot = None
    if settings.MATCHING_INDEX_SNAPSHOT:
        try:
            snapshot = SnapshotStore(settings.MATCHING_INDEX_SNAPSHOT_DIR).describe()
        except Exception:  # a probe reports what it can
            logger.warning("warm profile index: cannot read the host snapshot's manifest", exc_info=True)
    current = _process_index
    stats = current[1].stats() if current is not None and current[0] == os.getpid() else None
    process = None
    if stats is not None:
        process = {
            "profiles": stats.profiles,
            "snapshot": stats.snapshot,
            "overlay_profiles": stats.overlay_profiles,
            "staleness_seconds": round(stats.staleness_seconds, 3),
            "loaded_at": stats.loaded_at,
        }
    return {"snapshot": snapshot, "process": process}


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
