"""A search's lifecycle: every transition is a conditional update (`UPDATE … WHERE status IN (…) AND
attempt = …`), so two actors racing (a worker finishing and a cancel) produce exactly one winner, and
every transition records its event in the same transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from matching import metrics
from matching.engine import Match
from matching.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ApiClientKey,
    Search,
    SearchEvent,
    SearchEventKind,
    SearchNotification,
    SearchResult,
    SearchStatus,
)

# One line per lifecycle transition (docs/observability.md "Logs"), after its transaction commits.
lifecycle_log = logging.getLogger("matching.lifecycle")

SYSTEM = "system"


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
    writes the engine's dispatch record (workflows.dispatch.submit.search_submit).

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
    claimed it by then, the message is taken for lost and sent again (workflows/celery_engine/recovery.py)."""
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
    transaction; stopping the engine's work is the engine layer's job (workflows.dispatch.submit.search_cancel)."""
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
