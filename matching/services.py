"""Every write to the matching domain. The API, admin, tasks and webhooks call these.

Lifecycle transitions are conditional updates (`UPDATE … WHERE status IN (…) AND attempt = …`)
so two actors racing (a worker finishing and a cancel) produce exactly one winner.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from matching import metrics
from matching.engine import PROFILE_FIELDS, Breakdown, Match
from matching.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ApiClientKey,
    Engine,
    MatchRequest,
    MatchRequestStatus,
    Resort,
    Search,
    SearchEvent,
    SearchEventKind,
    SearchNotification,
    SearchResult,
    SearchStatus,
    SearchVetting,
    SkierProfile,
    StaffAction,
    StaffPreference,
    SubmitIdempotencyKey,
    UserEvent,
    UserEventType,
)
from matching.profile_input import ProfileWrite, ResortWrite
from matching.regions import region_mask
from matching.selectors import api_key_live_q, forget_resort_regions, resort_regions

logger = logging.getLogger(__name__)
# One line per lifecycle transition (docs/observability.md "Logs"), after its transaction commits.
lifecycle_log = logging.getLogger("matching.lifecycle")

SYSTEM = "system"


# --- API keys ------------------------------------------------------------------------------


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no password stretching).
    return hashlib.sha256(raw_key.encode()).hexdigest()


# A client (a key's name) may hold two live keys at once: the old one and its replacement, while
# the client's configuration moves from one to the other. A third would mean a rotation was never
# finished, so it is refused.
MAX_ACTIVE_KEYS_PER_CLIENT = 2


class TooManyActiveKeys(ValueError):
    """The client already has MAX_ACTIVE_KEYS_PER_CLIENT keys in use; the message says what to do."""


def api_key_create(
    *, name: str, is_trusted_service: bool = False, expires_at: datetime | None = None, note: str = ""
) -> tuple[ApiClientKey, str]:
    """Create a key and return it with its raw value, which is never stored or shown again."""
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValueError(f"The expiry {timezone.localtime(expires_at, UTC):%Y-%m-%d %H:%M} UTC is in the past.")
    with transaction.atomic():
        # Locking the client's live keys serialises two rotations of the same client.
        live = list(
            ApiClientKey.objects.select_for_update()
            .filter(api_key_live_q(now), name=name)
            .order_by("created_at")
            .values_list("prefix", flat=True)
        )
        if len(live) >= MAX_ACTIVE_KEYS_PER_CLIENT:
            raise TooManyActiveKeys(
                f"{name} already has {len(live)} keys in use ({', '.join(live)}): revoke the old one "
                "once the client has moved to the new one, then create another."
            )
        prefix = secrets.token_hex(4)
        raw_key = f"sbk_{prefix}_{secrets.token_urlsafe(32)}"
        key = ApiClientKey.objects.create(
            name=name,
            prefix=prefix,
            key_hash=hash_api_key(raw_key),
            is_trusted_service=is_trusted_service,
            expires_at=expires_at,
            note=note,
        )
    return key, raw_key


IMPORTED_KEY_MIN_LENGTH = 16
IMPORTED_KEY_MAX_LENGTH = 512


class ApiKeyImportRefused(ValueError):
    """The key cannot be imported; the message says why (never the key)."""


def api_key_import(
    *, name: str, raw_key: str, is_trusted_service: bool = False, expires_at: datetime | None = None, note: str = ""
) -> ApiClientKey:
    """Store the hash of a key a caller already holds (SnowTrace's shared SNOWBUDDY_API_KEY), so no
    caller changes on the day of the switch. The key keeps SnowTrace's format; authentication finds
    it by its digest. `prefix` is a random label for the audit and the admin, not part of the key."""
    raw_key = raw_key.strip()
    if not IMPORTED_KEY_MIN_LENGTH <= len(raw_key) <= IMPORTED_KEY_MAX_LENGTH:
        raise ApiKeyImportRefused(
            f"The key must be {IMPORTED_KEY_MIN_LENGTH}-{IMPORTED_KEY_MAX_LENGTH} characters; "
            "a shorter one is too easy to guess to keep."
        )
    if not raw_key.isprintable() or any(c.isspace() for c in raw_key) or not raw_key.isascii():
        raise ApiKeyImportRefused("The key must be printable ASCII without spaces (it travels in a header).")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyImportRefused(
            f"The expiry {timezone.localtime(expires_at, UTC):%Y-%m-%d %H:%M} UTC is in the past."
        )
    digest = hash_api_key(raw_key)
    if ApiClientKey.objects.filter(key_hash=digest).exists():
        raise ApiKeyImportRefused("This key is already stored (perhaps revoked): nothing was imported.")
    return ApiClientKey.objects.create(
        name=name,
        prefix=f"imp_{secrets.token_hex(4)}",
        key_hash=digest,
        is_trusted_service=is_trusted_service,
        imported=True,
        expires_at=expires_at,
        note=note,
    )


def api_key_revoke(*, key: ApiClientKey) -> bool:
    return bool(ApiClientKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()))


# --- Profiles ------------------------------------------------------------------------------
# Every profile write stamps `updated_at` with the database clock (Now()): the warm candidate
# index (matching/candidates.py) follows changes by that stamp. A write that changes nothing
# stamps nothing, so a full sync of unchanged users costs the indexes nothing.

PROFILE_COLUMNS = tuple(name for name in PROFILE_FIELDS if name != "user_id")  # the columns a write may change


@dataclass(frozen=True)
class ProfileOutcome:
    user_id: str
    status: str  # created | updated | unchanged


def profiles_upsert_many(*, profiles: Sequence[ProfileWrite]) -> list[ProfileOutcome]:
    """Create or update many profiles in one transaction (a savepoint when nested), one outcome each.

    Fields a write does not carry (KEEP) keep their stored values. The region mask is derived
    here. Rows are locked in user id order before they are compared, so concurrent batches
    touching the same users serialise instead of deadlocking; a profile that compares equal is
    not written at all. Writing a deleted profile's user id brings the profile back.
    """
    user_ids = [p.user_id for p in profiles]
    if len(set(user_ids)) != len(user_ids):
        raise ValueError("profiles_upsert_many: each user id at most once per call")
    if not profiles:
        return []
    mapping = resort_regions()
    outcomes: list[ProfileOutcome] = []
    groups: dict[tuple[str, ...], list[SkierProfile]] = {}
    with transaction.atomic():
        existing = {
            row[0]: row
            for row in SkierProfile.objects.select_for_update()
            .filter(user_id__in=user_ids)
            .order_by("user_id")
            .values_list("user_id", *PROFILE_COLUMNS, "region_mask", "deleted_at")
        }
        for profile in profiles:
            columns = profile.carried()
            columns["region_mask"] = _region_mask(columns["resorts"], columns["regions"], mapping)
            old = existing.get(profile.user_id)
            live = old is not None and old[-1] is None
            if live and all(old[_PROFILE_COLUMN_POSITION[name]] == value for name, value in columns.items()):
                outcomes.append(ProfileOutcome(profile.user_id, "unchanged"))
                continue
            outcomes.append(ProfileOutcome(profile.user_id, "updated" if live else "created"))
            row = SkierProfile(user_id=profile.user_id, updated_at=Now(), deleted_at=None, **columns)
            groups.setdefault(tuple(columns), []).append(row)
        for carried, rows in groups.items():
            SkierProfile.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["user_id"],
                update_fields=[*carried, "updated_at", "deleted_at"],
            )
    return outcomes


_PROFILE_COLUMN_POSITION = {name: i for i, name in enumerate(("user_id", *PROFILE_COLUMNS, "region_mask"))}


def profile_upsert(
    *,
    user_id: str,
    nickname: str,
    skill_level: int,
    role: str,
    resorts: Sequence[str] = (),
    regions: Sequence[str] = (),
    available_dates: Sequence[str] = (),
    open_to_matching: bool = True,
    knowledge_score: int | None = None,
    certifications: Sequence[str] = (),
    languages: Sequence[str] = (),
) -> SkierProfile:
    """One profile, every field replaced (see `profiles_upsert_many`). Values are trusted: the
    REST API and the sync validate theirs through matching.profile_input first."""
    profiles_upsert_many(
        profiles=[
            ProfileWrite(
                user_id=user_id,
                nickname=nickname,
                skill_level=skill_level,
                role=role,
                resorts=tuple(resorts),
                regions=tuple(regions),
                available_dates=tuple(available_dates),
                open_to_matching=open_to_matching,
                knowledge_score=knowledge_score,
                certifications=tuple(certifications),
                languages=tuple(languages),
            )
        ]
    )
    return SkierProfile.objects.get(user_id=user_id)


def profile_close(*, user_id: str) -> str | None:
    """Take a profile out of matching (`open_to_matching` false). Returns "closed", "unchanged"
    (already closed), or None for a user id the console does not hold."""
    with transaction.atomic(durable=True):
        live = SkierProfile.objects.filter(user_id=user_id, deleted_at__isnull=True)
        if live.filter(open_to_matching=True).update(open_to_matching=False, updated_at=Now()):
            return "closed"
        return "unchanged" if live.exists() else None


def profile_delete(*, user_id: str) -> str | None:
    """Delete a profile: a tombstone keeps the user id and the time (so every warm index sees
    the delete), everything personal is cleared. Returns "deleted", "unchanged" (already
    deleted) or None for a user id the console never held."""
    with transaction.atomic(durable=True):
        deleted = SkierProfile.objects.filter(user_id=user_id, deleted_at__isnull=True).update(
            deleted_at=Now(),
            updated_at=Now(),
            open_to_matching=False,
            nickname="",
            resorts=[],
            regions=[],
            available_dates=[],
            knowledge_score=None,
            certifications=[],
            languages=[],
            region_mask=0,
        )
        if deleted:
            return "deleted"
        return "unchanged" if SkierProfile.objects.filter(user_id=user_id).exists() else None


def profiles_purge_tombstones(*, older_than: datetime) -> int:
    """Remove tombstones of profiles deleted before `older_than`. Warm indexes reload long
    before that (MATCHING_INDEX_RELOAD_SECONDS), so none of them still needs to see the delete."""
    with transaction.atomic(durable=True):
        count, _ = SkierProfile.objects.filter(deleted_at__lt=older_than).delete()
    return count


def profile_fields(*, resorts: Sequence[str], regions: Sequence[str], **fields) -> dict:
    """Column values for a profile, with the derived region mask the prefilter relies on."""
    mask = _region_mask(resorts, regions, resort_regions())
    return {**fields, "resorts": list(resorts), "regions": list(regions), "region_mask": mask}


def _region_mask(resorts: Sequence[str], regions: Sequence[str], mapping: dict[str, str]) -> int:
    return region_mask(set(regions) | {mapping[r] for r in resorts if r in mapping})


def resorts_upsert_many(*, resorts: Sequence[ResortWrite]) -> dict[str, int]:
    """Create or update resorts; counts by outcome. A resort that moved region re-derives the
    region mask of every profile naming it (the mask is what the database prefilter reads)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    moved: list[str] = []
    with transaction.atomic(durable=True):
        existing = {r.pk: r for r in Resort.objects.select_for_update().filter(pk__in=[r.resort_id for r in resorts])}
        for item in resorts:
            values = {
                "name": item.name,
                "name_en": item.name_en,
                "name_ja": item.name_ja,
                "region": item.region,
                "country": item.country,
            }
            old = existing.get(item.resort_id)
            if old is None:
                Resort.objects.create(pk=item.resort_id, **values)
                counts["created"] += 1
            elif any(getattr(old, k) != v for k, v in values.items()):
                if old.region != item.region:
                    moved.append(item.resort_id)
                Resort.objects.filter(pk=item.resort_id).update(**values)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        transaction.on_commit(forget_resort_regions)
    if moved:
        forget_resort_regions()
        _rederive_region_masks(moved)
    return counts


def _rederive_region_masks(resort_ids: Sequence[str]) -> None:
    mapping = resort_regions()
    naming = Q()
    for resort_id in resort_ids:
        naming |= Q(resorts__icontains=f'"{resort_id}"')  # the JSON list's text, on every database
    with transaction.atomic(durable=True):
        for pk, resorts, regions in SkierProfile.objects.filter(naming).values_list("pk", "resorts", "regions"):
            SkierProfile.objects.filter(pk=pk).update(region_mask=_region_mask(resorts, regions, mapping))


# --- Searches ------------------------------------------------------------------------------


def search_event_record(
    *,
    search_id,
    attempt: int,
    kind: SearchEventKind,
    actor: str = SYSTEM,
    detail: str = "",
    from_status: str = "",
    to_status: str = "",
) -> SearchEvent:
    """Append one line to a search's audit trail (the only writer of SearchEvent rows; the detail
    is cut to 2000 characters). Runs inside the caller's transaction."""
    return SearchEvent.objects.create(
        search_id=search_id,
        attempt=attempt,
        kind=SearchEventKind(kind),
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        detail=detail[:2000],
    )


def _record(
    search_id,
    attempt: int,
    kind: str,
    *,
    frm: str = "",
    to: str = "",
    actor: str = SYSTEM,
    detail: str = "",
    engine: str = "",
) -> None:
    search_event_record(
        search_id=search_id, attempt=attempt, kind=kind, from_status=frm, to_status=to, actor=actor, detail=detail
    )
    # Logged once the transition is durable: a rolled-back transition is no line in the log.
    transaction.on_commit(partial(_log_transition, str(search_id), attempt, kind, frm, to, actor, engine, detail))


def _log_transition(
    search_id: str, attempt: int, kind: str, frm: str, to: str, actor: str, engine: str, detail: str
) -> None:
    lifecycle_log.info(
        "search %s attempt %s: %s (%s → %s) by %s",
        search_id,
        attempt,
        kind,
        frm or "·",
        to or "·",
        actor,
        extra={
            "search_id": search_id,
            "attempt": attempt,
            "engine": engine,
            "event": kind,
            "from_status": frm,
            "to_status": to,
            "actor": actor,
            "detail": detail[:300],
        },
    )


def _attempt_started_at(search_id, attempt: int, created_at: datetime) -> datetime:
    """When this attempt was submitted: the search's creation, or the retry that began the attempt."""
    if attempt == 1:
        return created_at
    retried = (
        SearchEvent.objects.filter(search_id=search_id, attempt=attempt, kind=SearchEventKind.RETRIED)
        .order_by("-id")
        .values_list("at", flat=True)
        .first()
    )
    return retried or created_at


def _transition(
    search_id,
    *,
    attempt: int,
    allowed_from: Iterable[str],
    to: str,
    kind: str,
    actor: str = SYSTEM,
    detail: str = "",
    generation: int | None = None,
    **fields,
) -> bool:
    """Move one search to `to` if it is still in one of `allowed_from` for this attempt (and, given a
    `generation`, only while that claim generation still holds the lease)."""
    with transaction.atomic():
        # Lock the row so the status we record as `from` is the one we replace.
        rows = Search.objects.select_for_update().filter(pk=search_id, attempt=attempt, status__in=list(allowed_from))
        if generation is not None:
            rows = rows.filter(claim_generation=generation)
        row = rows.values_list("status", "engine", "created_at", "preferences").first()
        if row is None:
            return False
        current, engine, created_at, preferences = row
        if to in TERMINAL_STATUSES:
            fields.setdefault("lease_expires_at", None)
        now = timezone.now()
        Search.objects.filter(pk=search_id).update(status=to, updated_at=now, **fields)
        _record(search_id, attempt, kind, frm=current, to=to, actor=actor, detail=detail, engine=engine)
        if to in TERMINAL_STATUSES:
            if settings.MATCHING_NOTIFICATION_WEBHOOK_URL:
                SearchNotification.objects.get_or_create(
                    search_id=search_id, attempt=attempt, defaults={"status": to, "next_attempt_at": now}
                )
            seconds = (now - _attempt_started_at(search_id, attempt, created_at)).total_seconds()
            shape = metrics.search_shape(preferences)
            transaction.on_commit(
                partial(metrics.search_finished, engine=engine, shape=shape, status=str(to), seconds=seconds)
            )
    return True


def search_create(
    *,
    seeker_id: str,
    preferences: dict,
    engine: str,
    acting_user: str | None = None,
    api_key: ApiClientKey | None = None,
    input_warnings: list[dict] | None = None,
) -> Search:
    """Store a validated search as attempt 1. Runs inside the caller's transaction, which also
    writes the engine's dispatch record (workflows.services.search_submit).

    `api_key` is the key the request came with: stored on the search, and named (prefix and name,
    never the secret) in the actor and detail of the `submitted` event. `input_warnings` (what an
    original-shape body had that the console did not use) go into that event's detail as
    `input_warnings=<JSON>`: the same row, no extra write on the submit's path."""
    deadline = timezone.now() + timedelta(seconds=settings.MATCHING_WORKFLOW_TIMEOUT_SECONDS)
    search = Search.objects.create(
        seeker_id=seeker_id, preferences=preferences, engine=engine, deadline_at=deadline, api_key=api_key
    )
    actor = acting_user or f"user:{seeker_id}"
    detail = f"engine={engine}"
    if api_key is not None:
        actor = f"{actor} via key:{api_key.prefix}"
        detail = f"{detail} api_key={api_key.prefix} ({api_key.name})"
    if input_warnings:
        detail = f"{detail}\ninput_warnings={json.dumps(input_warnings, ensure_ascii=False)}"[:4000]
    _record(
        search.pk,
        1,
        SearchEventKind.SUBMITTED,
        to=SearchStatus.PENDING,
        actor=actor[:150],
        detail=detail,
        engine=engine,
    )
    transaction.on_commit(metrics.SEARCHES_SUBMITTED.labels(engine=engine).inc)
    return search


def search_new_attempt(
    *,
    search: Search,
    engine: str,
    acting_user: str,
    reason: str,
    allowed_from: Iterable[str] = TERMINAL_STATUSES,
) -> Search | None:
    """Start attempt + 1 of a search with a fresh deadline, if its current attempt is still in one
    of `allowed_from`. Runs inside the caller's transaction; returns the updated search or None.

    Results of earlier attempts are kept; reads show the current one.
    """
    previous = (
        Search.objects.select_for_update()
        .filter(pk=search.pk, attempt=search.attempt, status__in=list(allowed_from))
        .values_list("status", flat=True)
        .first()
    )
    if previous is None:
        return None
    new_attempt = search.attempt + 1
    Search.objects.filter(pk=search.pk).update(
        attempt=new_attempt,
        status=SearchStatus.PENDING,
        engine=engine,
        deadline_at=timezone.now() + timedelta(seconds=settings.MATCHING_WORKFLOW_TIMEOUT_SECONDS),
        started_at=None,
        finished_at=None,
        error="",
        result_count=0,
        updated_at=timezone.now(),
        # Attention markers belong to the attempt that raised them.
        drift_flagged=False,
        callback_dead_lettered=False,
        lease_expires_at=None,
        lease_owner="",
    )
    _record(
        search.pk,
        new_attempt,
        SearchEventKind.RETRIED,
        frm=previous,
        to=SearchStatus.PENDING,
        actor=acting_user,
        detail=f"attempt {new_attempt} on {engine}, rerunning attempt {search.attempt}: {reason}",
        engine=engine,
    )
    transaction.on_commit(metrics.SEARCHES_RETRIED.labels(engine=engine).inc)
    search.refresh_from_db()
    return search


def search_mark_dispatched(*, search_id, attempt: int, queue_lease_seconds: int | None = None) -> bool:
    """The attempt's message is with the broker. A Celery attempt gets a queue lease: if no worker has
    claimed it by then, the message is taken for lost and sent again (workflows/recovery.py)."""
    fields = {}
    if queue_lease_seconds is not None:
        fields["lease_expires_at"] = timezone.now() + timedelta(seconds=queue_lease_seconds)
    return _transition(
        search_id,
        attempt=attempt,
        allowed_from=[SearchStatus.PENDING, SearchStatus.DISPATCHED],
        to=SearchStatus.DISPATCHED,
        kind=SearchEventKind.DISPATCHED,
        **fields,
    )


def search_claim(*, search_id, attempt: int, worker: str = SYSTEM, lease_seconds: int | None = None) -> Search | None:
    """Claim an attempt for running, under a new claim generation and a lease of `lease_seconds`.

    A `running` attempt is claimed again only once its lease has expired (its worker died or hung):
    a redelivered message for a search still alive on a slow worker is refused, and the dead
    worker's generation can no longer finish it (completion is conditional on the generation).
    """
    lease_seconds = lease_seconds or settings.MATCHING_LEASE_SECONDS
    now = timezone.now()
    claimable = [SearchStatus.PENDING, SearchStatus.DISPATCHED, SearchStatus.RUNNING]
    with transaction.atomic(durable=True):
        row = (
            Search.objects.select_for_update()
            .filter(pk=search_id, attempt=attempt, status__in=claimable)
            .values("status", "claim_generation", "lease_expires_at", "lease_owner")
            .first()
        )
        if row is None:
            return None
        held = row["status"] == SearchStatus.RUNNING and row["lease_expires_at"] and row["lease_expires_at"] > now
        if held:
            return None
        generation = row["claim_generation"] + 1
        Search.objects.filter(pk=search_id).update(
            status=SearchStatus.RUNNING,
            started_at=now,
            updated_at=now,
            claim_generation=generation,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            lease_owner=worker[:200],
        )
        detail = f"generation {generation}"
        if row["status"] == SearchStatus.RUNNING:
            detail += f", taking over from {row['lease_owner'] or 'a worker'} whose lease expired"
        _record(
            search_id,
            attempt,
            SearchEventKind.CLAIMED,
            frm=row["status"],
            to=SearchStatus.RUNNING,
            actor=worker,
            detail=detail,
            engine=Engine.CELERY,
        )
        transaction.on_commit(metrics.SEARCHES_CLAIMED.labels(engine=Engine.CELERY).inc)
    return Search.objects.get(pk=search_id)


def search_lease_renew(*, search_id, attempt: int, generation: int, lease_seconds: int) -> bool:
    """Extend a running attempt's lease; False when this generation no longer holds it."""
    return bool(
        Search.objects.filter(
            pk=search_id, attempt=attempt, claim_generation=generation, status=SearchStatus.RUNNING
        ).update(lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds))
    )


def search_lease_release(*, search_id, attempt: int, generation: int) -> bool:
    """Give a lease up at once (the task is leaving without finishing, e.g. to retry), so the next
    claim need not wait for it to expire."""
    return bool(
        Search.objects.filter(
            pk=search_id, attempt=attempt, claim_generation=generation, status=SearchStatus.RUNNING
        ).update(lease_expires_at=timezone.now())
    )


def search_lease_expire(*, search_id, attempt: int, generation: int, max_claims: int) -> str:
    """Take an expired lease back. Runs inside the caller's transaction.

    Returns "resend" when the attempt goes back to `dispatched` under a new generation (its
    message must be sent again), "failed" when it already lost `max_claims` workers, or "" when the
    lease was renewed, taken or finished meanwhile.
    """
    now = timezone.now()
    row = (
        Search.objects.select_for_update()
        .filter(
            pk=search_id,
            attempt=attempt,
            claim_generation=generation,
            status__in=[SearchStatus.DISPATCHED, SearchStatus.RUNNING],
            lease_expires_at__lt=now,
        )
        .values("status", "lease_owner", "lease_expires_at")
        .first()
    )
    if row is None:
        return ""
    late = int((now - row["lease_expires_at"]).total_seconds())
    if row["status"] == SearchStatus.RUNNING:
        claims = SearchEvent.objects.filter(search_id=search_id, attempt=attempt, kind=SearchEventKind.CLAIMED).count()
        if claims >= max_claims:
            error = f"lost its worker {claims} times (lease of {row['lease_owner'] or 'a worker'} expired); gave up"
            _transition(
                search_id,
                attempt=attempt,
                allowed_from=[SearchStatus.RUNNING],
                to=SearchStatus.FAILED,
                kind=SearchEventKind.FAILED,
                detail=error,
                generation=generation,
                finished_at=now,
                error=error,
            )
            return "failed"
        what = f"lease of {row['lease_owner'] or 'a worker'} expired {late}s ago (worker lost)"
    else:
        what = f"not claimed from the queue; queue lease expired {late}s ago (message lost)"
    Search.objects.filter(pk=search_id).update(
        status=SearchStatus.DISPATCHED,
        claim_generation=generation + 1,
        lease_expires_at=None,
        lease_owner="",
        updated_at=now,
    )
    _record(
        search_id,
        attempt,
        SearchEventKind.LEASE_EXPIRED,
        frm=row["status"],
        to=SearchStatus.DISPATCHED,
        detail=f"{what}; sending it again as generation {generation + 1}",
        engine=Engine.CELERY,
    )
    return "resend"


# What each status an engine reports may follow. Terminal outcomes may follow any active
# status: the durable engine may report `succeeded` without having reported `running`.
_ENGINE_STATUS_FROM = {
    SearchStatus.RUNNING: [SearchStatus.PENDING, SearchStatus.DISPATCHED, SearchStatus.AWAITING_VETTING],
    SearchStatus.AWAITING_VETTING: [SearchStatus.PENDING, SearchStatus.DISPATCHED, SearchStatus.RUNNING],
    SearchStatus.SUCCEEDED: ACTIVE_STATUSES,
    SearchStatus.FAILED: ACTIVE_STATUSES,
    SearchStatus.TIMED_OUT: ACTIVE_STATUSES,
    SearchStatus.CANCELLED: ACTIVE_STATUSES,
}


def search_record_engine_status(
    *,
    search_id,
    attempt: int,
    status: str,
    matches: Sequence[Match] = (),
    nicknames: dict[str, str] | None = None,
    error: str = "",
    actor: str = SYSTEM,
    generation: int | None = None,
) -> bool:
    """Apply a status an engine reports for one attempt. Runs inside the caller's transaction.
    Given a `generation`, only while that claim generation holds the attempt (a Celery run).

    Returns False, changing nothing, when the search has moved past that status already
    (finished, cancelled, or superseded by a newer attempt).
    """
    now = timezone.now()
    fields: dict = {}
    detail = error
    if status == SearchStatus.RUNNING:
        fields["started_at"] = now
    elif status == SearchStatus.SUCCEEDED:
        fields.update(finished_at=now, result_count=len(matches), error="")
        detail = f"{len(matches)} results"
    elif status in (SearchStatus.FAILED, SearchStatus.TIMED_OUT, SearchStatus.CANCELLED):
        fields.update(finished_at=now, error=error[:2000])
    done = _transition(
        search_id,
        attempt=attempt,
        allowed_from=_ENGINE_STATUS_FROM[status],
        to=status,
        kind=SearchEventKind(status),
        actor=actor,
        detail=detail,
        generation=generation,
        **fields,
    )
    if not done:
        return False
    if status == SearchStatus.SUCCEEDED:
        nicknames = nicknames or {}
        SearchResult.objects.bulk_create(
            SearchResult(
                search_id=search_id,
                attempt=attempt,
                rank=m.rank,
                user_id=m.user_id,
                nickname=nicknames.get(m.user_id, ""),
                score=m.score,
                breakdown=m.breakdown.to_dict(),
            )
            for m in matches
        )
    return True


def search_succeed(
    *,
    search_id,
    attempt: int,
    matches: Sequence[Match],
    nicknames: dict[str, str] | None = None,
    generation: int | None = None,
) -> bool:
    with transaction.atomic(durable=True):
        return search_record_engine_status(
            search_id=search_id,
            attempt=attempt,
            status=SearchStatus.SUCCEEDED,
            matches=matches,
            nicknames=nicknames,
            generation=generation,
        )


def search_fail(*, search_id, attempt: int, error: str, actor: str = SYSTEM, generation: int | None = None) -> bool:
    with transaction.atomic(durable=True):
        return search_record_engine_status(
            search_id=search_id,
            attempt=attempt,
            status=SearchStatus.FAILED,
            error=error,
            actor=actor,
            generation=generation,
        )


def search_mark_cancelled(*, search: Search, reason: str, acting_user: str) -> bool:
    """Cancel the current attempt in the console, the system of record. Runs inside the caller's
    transaction; stopping the engine's work is the engine layer's job (workflows.services)."""
    return _transition(
        search.pk,
        attempt=search.attempt,
        allowed_from=ACTIVE_STATUSES,
        to=SearchStatus.CANCELLED,
        kind=SearchEventKind.CANCELLED,
        actor=acting_user,
        detail=reason,
        finished_at=timezone.now(),
        error=f"cancelled: {reason}"[:2000],
    )


DEADLINE_ERROR = "the search did not finish before its deadline"
# The durable workflow's vetting policy (docs/durable-state.md), so both engines read alike.
VETTING_TIMEOUT_ERROR = "vetting_timeout: no vetting answer before the search deadline"


def search_time_out(*, search_id, attempt: int, error: str = DEADLINE_ERROR, generation: int | None = None) -> bool:
    with transaction.atomic(durable=True):
        return search_record_engine_status(
            search_id=search_id, attempt=attempt, status=SearchStatus.TIMED_OUT, error=error, generation=generation
        )


def searches_expire_overdue(*, now=None, batch_size: int = 500) -> int:
    """Time out active searches past their deadline. The database holds every deadline, including
    that of a search waiting on GlobalCoach (its vetting deadline is the search's)."""
    now = now or timezone.now()
    overdue = Search.objects.filter(status__in=ACTIVE_STATUSES, deadline_at__lt=now).values_list(
        "pk", "attempt", "status"
    )[:batch_size]
    return sum(
        search_time_out(
            search_id=pk,
            attempt=attempt,
            error=VETTING_TIMEOUT_ERROR if status == SearchStatus.AWAITING_VETTING else DEADLINE_ERROR,
        )
        for pk, attempt, status in list(overdue)
    )


# --- Vetting on the Celery engine (the durable engine keeps its own state in DynamoDB) -----------


def search_await_vetting(
    *,
    search_id,
    attempt: int,
    candidates: list[dict],
    token_nonce: str,
    token_sha256: str,
    generation: int | None = None,
) -> SearchVetting | None:
    """Move a running search to `awaiting_vetting` and record what was sent for vetting, together.
    The request goes out after commit (workflows/vetting.py). None when the search moved on (or,
    given a claim `generation`, when that generation lost its lease)."""
    with transaction.atomic(durable=True):
        deadline = Search.objects.filter(pk=search_id).values_list("deadline_at", flat=True).first()
        moved = _transition(
            search_id,
            attempt=attempt,
            allowed_from=[SearchStatus.RUNNING],
            to=SearchStatus.AWAITING_VETTING,
            kind=SearchEventKind.AWAITING_VETTING,
            detail=f"{len(candidates)} candidate(s) sent to GlobalCoach for vetting",
            generation=generation,
            lease_expires_at=None,  # a wait on GlobalCoach holds no worker
        )
        if not moved:
            return None
        return SearchVetting.objects.create(
            search_id=search_id,
            attempt=attempt,
            deadline_at=deadline,
            candidates=candidates,
            token_nonce=token_nonce,
            token_sha256=token_sha256,
            request_next_at=timezone.now(),
        )


def search_finish_vetting(
    *,
    search_id,
    attempt: int,
    approved_user_ids: Sequence[str],
    rejected_user_ids: Sequence[str] = (),
    decided_by: str,
    note: str = "",
) -> str:
    """Apply a vetting answer: the approved ones among the vetted candidates are the results,
    re-ranked 1..n; nobody approved fails the search (`vetting_rejected`). One answer wins.

    Returns `succeeded`, `failed`, `already_answered` or `not_awaiting` (finished, cancelled, or
    timed out meanwhile). Runs in the caller's transaction if there is one (a staff answer's audit
    row commits with it).
    """
    with transaction.atomic():
        vetting = SearchVetting.objects.select_for_update().filter(search_id=search_id, attempt=attempt).first()
        if vetting is None:
            return "not_awaiting"
        if vetting.answered_at is not None:
            return "already_answered"
        status = Search.objects.filter(pk=search_id, attempt=attempt).values_list("status", flat=True).first()
        if status != SearchStatus.AWAITING_VETTING:
            return "not_awaiting"
        approved = set(approved_user_ids)
        kept = [c for c in vetting.candidates if c["user_id"] in approved]
        SearchVetting.objects.filter(pk=vetting.pk).update(
            answered_at=timezone.now(),
            answered_by=decided_by[:150],
            approved_user_ids=[c["user_id"] for c in kept],
            rejected_user_ids=[c for c in vetting.candidate_ids if c in set(rejected_user_ids)],
        )
        if not kept:
            error = f"vetting_rejected: {note or 'no candidate was approved'}"
            search_record_engine_status(
                search_id=search_id, attempt=attempt, status=SearchStatus.FAILED, error=error, actor=decided_by
            )
            return "failed"
        matches = [
            Match(user_id=c["user_id"], score=c["score"], breakdown=Breakdown.from_dict(c["breakdown"]), rank=rank)
            for rank, c in enumerate(kept, start=1)
        ]
        search_record_engine_status(
            search_id=search_id,
            attempt=attempt,
            status=SearchStatus.SUCCEEDED,
            matches=matches,
            nicknames={c["user_id"]: c.get("nickname", "") for c in kept},
            actor=decided_by,
        )
        return "succeeded"


def vetting_record_request(
    *, vetting_id: int, sent: bool, provider_request_id: str = "", error: str = "", next_at=None
) -> None:
    """Bookkeeping of one try to send a vetting request (the engine layer sends it)."""
    fields: dict = {"request_tries": F("request_tries") + 1, "request_error": error[:2000]}
    if sent:
        fields.update(requested_at=timezone.now(), request_next_at=None, provider_request_id=provider_request_id[:100])
    else:
        fields["request_next_at"] = next_at
    SearchVetting.objects.filter(pk=vetting_id).update(**fields)


# --- Staff console -------------------------------------------------------------------------


def search_attention_mark(
    *, search_id, attempt: int, drift: bool | None = None, dead_letter: bool | None = None
) -> bool:
    """Raise or clear a search's attention markers for its current attempt (an older attempt's
    verdict changes nothing). Runs in the caller's transaction if there is one."""
    fields = {}
    if drift is not None:
        fields["drift_flagged"] = drift
    if dead_letter is not None:
        fields["callback_dead_lettered"] = dead_letter
    if not fields:
        return False
    return bool(Search.objects.filter(pk=search_id, attempt=attempt).exclude(**fields).update(**fields))


def staff_action_record(
    *,
    user,
    action: str,
    reason: str,
    outcome: str,
    search: Search | None = None,
    attempt: int | None = None,
    status_before: str = "",
    status_after: str = "",
    parameters: dict | None = None,
    detail: str = "",
    detail_code: dict | None = None,
) -> StaffAction:
    """One line of the staff audit trail: who, when, what, why, the status before and after."""
    action_row = StaffAction.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=getattr(user, "username", "") or str(user),
        action=action,
        search=search,
        attempt=attempt if attempt is not None else (search.attempt if search is not None else None),
        reason=reason[:2000],
        parameters=parameters or {},
        status_before=status_before,
        status_after=status_after,
        outcome=outcome,
        detail=detail[:2000],
        detail_code=detail_code or {},
    )
    transaction.on_commit(partial(_log_staff_action, action_row))
    return action_row


def _log_staff_action(row: StaffAction) -> None:
    logging.getLogger("matching.staff").info(
        "staff %s: %s %s → %s",
        row.username,
        row.action,
        row.search_id or "",
        row.outcome,
        extra={
            "search_id": str(row.search_id) if row.search_id else "",
            "attempt": row.attempt,
            "staff_user": row.username,
            "action": row.action,
            "outcome": row.outcome,
            "status_before": row.status_before,
            "status_after": row.status_after,
            "reason": row.reason[:300],
        },
    )


# --- Idempotent submits --------------------------------------------------------------------------


class IdempotencyKeyReused(Exception):
    """The key was already used by this user with another request body (422 in the IETF draft)."""


def idempotency_key_take(*, seeker_id: str, key: str, fingerprint: str) -> Search | None:
    """Bind `key` to the submit being made, inside the caller's transaction.

    Returns the search an earlier request with this key created (the caller returns it instead of
    creating another), or None when this request is the first: the caller then creates the search
    and calls `idempotency_key_attach`. The unique (user, key) row decides: a concurrent request
    with the same key blocks on it until the first commits, then reads the first one's search.
    Raises IdempotencyKeyReused when the key came with another body. Keys expire after
    MATCHING_IDEMPOTENCY_TTL_SECONDS.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.MATCHING_IDEMPOTENCY_TTL_SECONDS)
    SubmitIdempotencyKey.objects.filter(seeker_id=seeker_id, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            SubmitIdempotencyKey.objects.create(seeker_id=seeker_id, key=key, fingerprint=fingerprint)
    except IntegrityError:
        first = SubmitIdempotencyKey.objects.select_related("search").get(seeker_id=seeker_id, key=key)
        if not hmac.compare_digest(first.fingerprint, fingerprint):
            raise IdempotencyKeyReused(key) from None
        return first.search
    return None


def idempotency_key_attach(*, seeker_id: str, key: str, search: Search) -> None:
    SubmitIdempotencyKey.objects.filter(seeker_id=seeker_id, key=key, search__isnull=True).update(search=search)


def idempotency_keys_purge(*, now=None, batch_size: int = 5000) -> int:
    """Delete keys older than their time to live (beat runs it)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.MATCHING_IDEMPOTENCY_TTL_SECONDS)
    ids = list(SubmitIdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
    return SubmitIdempotencyKey.objects.filter(pk__in=ids).delete()[0]


# --- Match requests ------------------------------------------------------------------------

USER_EVENT_SOURCE = "snowbuddy-matching"  # the old service's source_project


class MatchRequestConflict(Exception):
    """The request was already answered or withdrawn: each request takes one answer."""

    def __init__(self, match_request: MatchRequest):
        super().__init__(f"The request was already {match_request.status}.")
        self.match_request = match_request


class MatchRequestForbidden(Exception):
    """A party asked for what only the other party may do (the requester accepting, say)."""


# What each action needs: who may take it, and the status it leads to.
MATCH_REQUEST_ACTIONS = {
    "accept": ("target", MatchRequestStatus.ACCEPTED, UserEventType.REQUEST_ACCEPTED),
    "decline": ("target", MatchRequestStatus.DECLINED, UserEventType.REQUEST_DECLINED),
    "withdraw": ("requester", MatchRequestStatus.WITHDRAWN, None),
}


def _user_event(*, match_request: MatchRequest, event_type: str, user_id: str, payload: dict, at: datetime):
    """Write a behaviour event into the outbox (in the caller's transaction), in the old service's
    form. Nothing is written when no user service is configured: nobody would receive it."""
    if not settings.USER_CORE_API_URL:
        return None
    body = {
        "user_id": user_id,
        "source_project": USER_EVENT_SOURCE,
        "event_type": event_type,
        "occurred_at": at.isoformat(),
        "payload": payload,
    }
    return UserEvent.objects.create(match_request=match_request, event_type=event_type, body=body, next_attempt_at=at)


def match_request_send(*, requester_id: str, target_user_id: str) -> tuple[MatchRequest, bool]:
    """Ask `target_user_id` to ski together. A request already pending between the two (in this
    direction) is returned as it is, with False: the old client retried sends freely."""
    if requester_id == target_user_id:
        raise ValueError("a user cannot send a match request to themselves")
    with transaction.atomic(durable=True):
        existing = MatchRequest.objects.filter(
            requester_id=requester_id, target_user_id=target_user_id, status=MatchRequestStatus.PENDING
        ).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                match_request = MatchRequest.objects.create(requester_id=requester_id, target_user_id=target_user_id)
        except IntegrityError:
            # A concurrent send won the unique pending row: answer with that one.
            return MatchRequest.objects.get(
                requester_id=requester_id, target_user_id=target_user_id, status=MatchRequestStatus.PENDING
            ), False
        _user_event(
            match_request=match_request,
            event_type=UserEventType.REQUEST_SENT,
            user_id=requester_id,
            payload={"request_id": str(match_request.pk), "target_user_id": target_user_id},
            at=match_request.created_at,
        )
    return match_request, True


def match_request_answer(*, match_request: MatchRequest, acting_user_id: str, action: str) -> MatchRequest:
    """Accept or decline (the target), or withdraw (the requester), a pending request, once.
    MatchRequestForbidden when the other party must act; MatchRequestConflict when it is no
    longer pending (the first of two racing answers wins)."""
    party, to, event_type = MATCH_REQUEST_ACTIONS[action]
    allowed = match_request.target_user_id if party == "target" else match_request.requester_id
    if acting_user_id != allowed:
        raise MatchRequestForbidden(
            f"Only the person {'asked' if party == 'target' else 'who sent the request'} may {action} it."
        )
    now = timezone.now()
    with transaction.atomic(durable=True):
        changed = MatchRequest.objects.filter(pk=match_request.pk, status=MatchRequestStatus.PENDING).update(
            status=to, answered_at=now
        )
        match_request.refresh_from_db()
        if not changed:
            raise MatchRequestConflict(match_request)
        if event_type is not None:
            _user_event(
                match_request=match_request,
                event_type=event_type,
                user_id=acting_user_id,
                payload={"request_id": str(match_request.pk)},
                at=now,
            )
    return match_request


def staff_preference_set(*, user, language: str, time_zone: str) -> StaffPreference:
    """A staff member's console language and time zone (one row per user)."""
    preference, _ = StaffPreference.objects.update_or_create(
        user=user, defaults={"language": language, "time_zone": time_zone}
    )
    return preference
