"""Writes that move searches through the engines: dispatch (the outbox) and the Celery run."""

from __future__ import annotations

import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from matching.engine import ProfileIndex, SearchRequest
from matching.models import Engine, Search
from matching.profile_source import prefiltered_profiles
from matching.selectors import resort_regions
from matching.services import search_claim, search_mark_dispatched, search_succeed, search_time_out
from workflows.models import SearchDispatch

logger = logging.getLogger(__name__)


def dispatch_create(*, search: Search) -> SearchDispatch:
    """Write the dispatch record inside the caller's transaction; send it after commit."""
    dispatch = SearchDispatch.objects.create(search=search, attempt=search.attempt, engine=search.engine)
    transaction.on_commit(lambda: dispatch_send(dispatch_id=dispatch.pk))
    return dispatch


def dispatch_send(*, dispatch_id: int) -> bool:
    """Hand one dispatch record to its engine. Safe to call twice: the engine's claim dedups."""
    dispatch = SearchDispatch.objects.select_related("search").get(pk=dispatch_id)
    if dispatch.sent_at is not None:
        return True
    search = dispatch.search
    if search.attempt != dispatch.attempt or search.is_terminal:
        SearchDispatch.objects.filter(pk=dispatch.pk, sent_at__isnull=True).update(sent_at=timezone.now())
        return True
    try:
        _send_to_engine(dispatch)
    except (BrokerError, ConnectionError, OSError) as exc:
        # Left unsent: the sweeper tries again. Nothing is lost.
        SearchDispatch.objects.filter(pk=dispatch.pk).update(
            send_count=F("send_count") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        logger.warning("dispatch of search %s attempt %s failed: %s", search.pk, dispatch.attempt, exc)
        return False
    with transaction.atomic(durable=True):
        SearchDispatch.objects.filter(pk=dispatch.pk).update(
            sent_at=timezone.now(), send_count=F("send_count") + 1, last_error=""
        )
    search_mark_dispatched(search_id=search.pk, attempt=dispatch.attempt)
    return True


def _send_to_engine(dispatch: SearchDispatch) -> None:
    if dispatch.engine == Engine.CELERY:
        from workflows.tasks import run_search

        run_search.apply_async(args=[str(dispatch.search_id), dispatch.attempt], retry=False)
        return
    raise NotImplementedError(f"engine {dispatch.engine!r} has no dispatcher yet")


def dispatch_sweep(*, now=None, batch_size: int = 200) -> int:
    """Send dispatch records left behind (a crash between commit and send)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DISPATCH_GRACE_SECONDS)
    stale = SearchDispatch.objects.filter(sent_at__isnull=True, created_at__lte=cutoff).order_by("created_at")
    return sum(dispatch_send(dispatch_id=pk) for pk in list(stale.values_list("pk", flat=True)[:batch_size]))


def search_run_on_celery(*, search_id: str, attempt: int, worker: str = "celery") -> str:
    """Claim, match and finish one attempt. Returns what happened, for the task's log."""
    search = search_claim(search_id=search_id, attempt=attempt, worker=worker)
    if search is None:
        return "skipped: not claimable (finished, cancelled or superseded)"
    if search.deadline_at <= timezone.now():
        search_time_out(search_id=search.pk, attempt=attempt)
        return "timed out before running"
    regions = resort_regions()
    profiles = list(
        prefiltered_profiles(seeker_id=search.seeker_id, preferences=search.preferences, resort_regions=regions)
    )
    request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
    matches = ProfileIndex.build(profiles, regions).search(request)
    nicknames = {p.user_id: p.nickname for p in profiles}
    if search_succeed(search_id=search.pk, attempt=attempt, matches=matches, nicknames=nicknames):
        return f"succeeded with {len(matches)} results from {len(profiles)} candidates"
    return "finished, but the search had already moved on (cancelled or timed out)"


def notification_send(*, search_id: str) -> None:
    """Best effort: post the outcome to MATCHING_NOTIFICATION_WEBHOOK_URL and log failures."""
    url = settings.MATCHING_NOTIFICATION_WEBHOOK_URL
    if not url:
        return
    search = Search.objects.get(pk=search_id)
    body = {
        "search_id": str(search.pk),
        "status": search.status,
        "attempt": search.attempt,
        "result_count": search.result_count,
        "finished_at": search.finished_at.isoformat() if search.finished_at else None,
    }
    response = requests.post(url, json=body, timeout=(3, 5))
    response.raise_for_status()
