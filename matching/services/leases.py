"""The lease a Celery worker takes on an attempt: claim, renew, release, and expiry (recovery or failure)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from matching import metrics
from matching.models import (
    Engine,
    Search,
    SearchEvent,
    SearchEventKind,
    SearchStatus,
)
from matching.services.searches import _record, _transition

SYSTEM = "system"


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
