"""Every write to the matching domain. The API, admin, tasks and webhooks call these.

Lifecycle transitions are conditional updates (`UPDATE … WHERE status IN (…) AND attempt = …`)
so two actors racing (a worker finishing and a cancel) produce exactly one winner.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from matching.engine import Match
from matching.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ApiClientKey,
    Search,
    SearchEvent,
    SearchNotification,
    SearchResult,
    SearchStatus,
    SkierProfile,
    StaffAction,
)
from matching.regions import region_mask
from matching.selectors import resort_regions

logger = logging.getLogger(__name__)

SYSTEM = "system"


# --- API keys ------------------------------------------------------------------------------


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no password stretching).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, name: str, is_trusted_service: bool = False) -> tuple[ApiClientKey, str]:
    """Create a key and return it with its raw value, which is never stored or shown again."""
    prefix = secrets.token_hex(4)
    raw_key = f"sbk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiClientKey.objects.create(
        name=name, prefix=prefix, key_hash=hash_api_key(raw_key), is_trusted_service=is_trusted_service
    )
    return key, raw_key


def api_key_revoke(*, key: ApiClientKey) -> bool:
    return bool(ApiClientKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()))


# --- Profiles ------------------------------------------------------------------------------


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
    profile, _ = SkierProfile.objects.update_or_create(
        user_id=user_id,
        defaults=profile_fields(
            nickname=nickname,
            skill_level=skill_level,
            role=role,
            resorts=resorts,
            regions=regions,
            available_dates=available_dates,
            open_to_matching=open_to_matching,
            knowledge_score=knowledge_score,
            certifications=certifications,
            languages=languages,
        ),
    )
    return profile


def profile_fields(*, resorts: Sequence[str], regions: Sequence[str], **fields) -> dict:
    """Column values for a profile, with the derived region mask the prefilter relies on."""
    mapping = resort_regions()
    reach = set(regions) | {mapping[r] for r in resorts if r in mapping}
    return {**fields, "resorts": list(resorts), "regions": list(regions), "region_mask": region_mask(reach)}


# --- Searches ------------------------------------------------------------------------------


def _record(
    search_id, attempt: int, kind: str, *, frm: str = "", to: str = "", actor: str = SYSTEM, detail: str = ""
) -> None:
    SearchEvent.objects.create(
        search_id=search_id,
        attempt=attempt,
        kind=kind,
        from_status=frm,
        to_status=to,
        actor=actor,
        detail=detail[:2000],
    )


def _transition(
    search_id,
    *,
    attempt: int,
    allowed_from: Iterable[str],
    to: str,
    kind: str,
    actor: str = SYSTEM,
    detail: str = "",
    **fields,
) -> bool:
    """Move one search to `to` if it is still in one of `allowed_from` for this attempt."""
    with transaction.atomic():
        # Lock the row so the status we record as `from` is the one we replace.
        current = (
            Search.objects.select_for_update()
            .filter(pk=search_id, attempt=attempt, status__in=list(allowed_from))
            .values_list("status", flat=True)
            .first()
        )
        if current is None:
            return False
        Search.objects.filter(pk=search_id).update(status=to, updated_at=timezone.now(), **fields)
        _record(search_id, attempt, kind, frm=current, to=to, actor=actor, detail=detail)
        if to in TERMINAL_STATUSES and settings.MATCHING_NOTIFICATION_WEBHOOK_URL:
            SearchNotification.objects.get_or_create(search_id=search_id, attempt=attempt, defaults={"status": to})
    return True


def search_create(*, seeker_id: str, preferences: dict, engine: str, acting_user: str | None = None) -> Search:
    """Store a validated search as attempt 1. Runs inside the caller's transaction, which also
    writes the engine's dispatch record (workflows.services.search_submit)."""
    deadline = timezone.now() + timedelta(seconds=settings.MATCHING_WORKFLOW_TIMEOUT_SECONDS)
    search = Search.objects.create(seeker_id=seeker_id, preferences=preferences, engine=engine, deadline_at=deadline)
    _record(
        search.pk,
        1,
        "submitted",
        to=SearchStatus.PENDING,
        actor=acting_user or f"user:{seeker_id}",
        detail=f"engine={engine}",
    )
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
    )
    _record(
        search.pk,
        new_attempt,
        "retried",
        frm=previous,
        to=SearchStatus.PENDING,
        actor=acting_user,
        detail=f"attempt {new_attempt} on {engine}, rerunning attempt {search.attempt}: {reason}",
    )
    search.refresh_from_db()
    return search


def search_mark_dispatched(*, search_id, attempt: int) -> bool:
    return _transition(
        search_id, attempt=attempt, allowed_from=[SearchStatus.PENDING], to=SearchStatus.DISPATCHED, kind="dispatched"
    )


def search_claim(*, search_id, attempt: int, worker: str = SYSTEM) -> Search | None:
    """Claim a search for running. A redelivered message may re-claim a `running` search:
    the engine is deterministic and completion is conditional, so a rerun is harmless."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        claimed = _transition(
            search_id,
            attempt=attempt,
            allowed_from=[SearchStatus.PENDING, SearchStatus.DISPATCHED, SearchStatus.RUNNING],
            to=SearchStatus.RUNNING,
            kind="claimed",
            actor=worker,
            started_at=now,
        )
    if not claimed:
        return None
    return Search.objects.get(pk=search_id)


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
) -> bool:
    """Apply a status an engine reports for one attempt. Runs inside the caller's transaction.

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
        kind=status,
        actor=actor,
        detail=detail,
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
    *, search_id, attempt: int, matches: Sequence[Match], nicknames: dict[str, str] | None = None
) -> bool:
    with transaction.atomic(durable=True):
        return search_record_engine_status(
            search_id=search_id, attempt=attempt, status=SearchStatus.SUCCEEDED, matches=matches, nicknames=nicknames
        )


def search_fail(*, search_id, attempt: int, error: str, actor: str = SYSTEM) -> bool:
    with transaction.atomic(durable=True):
        return search_record_engine_status(
            search_id=search_id, attempt=attempt, status=SearchStatus.FAILED, error=error, actor=actor
        )


def search_mark_cancelled(*, search: Search, reason: str, acting_user: str) -> bool:
    """Cancel the current attempt in the console, the system of record. Runs inside the caller's
    transaction; stopping the engine's work is the engine layer's job (workflows.services)."""
    return _transition(
        search.pk,
        attempt=search.attempt,
        allowed_from=ACTIVE_STATUSES,
        to=SearchStatus.CANCELLED,
        kind="cancelled",
        actor=acting_user,
        detail=reason,
        finished_at=timezone.now(),
        error=f"cancelled: {reason}"[:2000],
    )


def search_time_out(*, search_id, attempt: int) -> bool:
    with transaction.atomic(durable=True):
        return search_record_engine_status(
            search_id=search_id,
            attempt=attempt,
            status=SearchStatus.TIMED_OUT,
            error="the search did not finish before its deadline",
        )


def searches_expire_overdue(*, now=None, batch_size: int = 500) -> int:
    """Time out active searches past their deadline. The database holds every deadline."""
    now = now or timezone.now()
    overdue = Search.objects.filter(status__in=ACTIVE_STATUSES, deadline_at__lt=now).values_list("pk", "attempt")[
        :batch_size
    ]
    return sum(search_time_out(search_id=pk, attempt=attempt) for pk, attempt in list(overdue))


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
) -> StaffAction:
    """One line of the staff audit trail: who, when, what, why, the status before and after."""
    return StaffAction.objects.create(
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
    )
