"""Pull sync: SnowTrace's users, knowledge scores and resorts into the console (`profiles_sync`).

`manage.py sync_profiles` and the periodic task `workflows.tasks.sync_profiles` call it.

- Resorts first (when RESORT_SERVICES_API_URL is set): profiles are checked against them.
- Users page by page (matching/snowtrace/users.py states the paging assumptions). Each page's
  knowledge scores are fetched with at most PROFILE_SYNC_KNOWLEDGE_CONCURRENCY requests in flight.
  A user whose score cannot be fetched is still written, keeping the score stored before.
- Each page is written by `profiles_upsert_many` in one transaction with the run's resume point
  (`ProfileSyncState.cursor`), so a run that dies resumes after its last written page. Unchanged
  users are not written (so they do not churn the warm indexes).
- A malformed record is rejected and reported (user id, page, field errors) and the page goes on.
- Incremental when USER_CORE_SUPPORTS_UPDATED_SINCE is set: a run asks for users changed since
  the start of the last complete run, minus PROFILE_SYNC_OVERLAP_SECONDS. Otherwise every run is
  a full pass. Deleted users do not disappear through the pull: SnowTrace deletes them through
  the push endpoint (`DELETE /matching/profiles/{user_id}`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from matching.models import ProfileSyncState
from matching.selectors import resort_regions
from matching.services.profiles import profiles_upsert_many, resorts_upsert_many
from matching.snowtrace.http import ServiceError, ServiceRejected
from matching.snowtrace.knowledge import KnowledgeServiceClient
from matching.snowtrace.resorts import ResortServiceClient
from matching.snowtrace.users import UserServiceClient, profile_from_user_record, record_user_id, supports_updated_since
from matching.vocabulary.profile_input import ProfileInvalid, ProfileWrite

logger = logging.getLogger(__name__)

SOURCE = "user-service"
KEPT_REJECTIONS = 200
LEASE_SECONDS = 600
COUNTERS = ("users", "created", "updated", "unchanged", "rejected", "knowledge_unavailable")


@dataclass
class SyncReport:
    mode: str = ""  # full | incremental
    resumed: bool = False
    complete: bool = False
    pages: int = 0  # pages written by this invocation
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    resorts: dict[str, int] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)  # this invocation's
    warnings: list[str] = field(default_factory=list)
    stopped: str = ""  # why an unfinished run paused (time budget, error)
    error: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.counts.items())
        state = "complete" if self.complete else f"unfinished ({self.stopped or self.error or 'stopped'})"
        resorts = f"resorts {self.resorts}; " if self.resorts else ""
        return f"{self.mode or 'sync'} {state}: {resorts}{self.pages} pages, {counts} in {self.seconds:.1f} s"


def profiles_sync(
    *,
    full: bool = False,
    restart: bool = False,
    time_budget: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> SyncReport:
    """Run (or resume) a sync; stops after `time_budget` seconds at a page boundary, resumable.

    Raises ServiceConfigError when USER_CORE_API_URL is unset. Service failures that persist
    through the client's retries end the invocation with `report.error` set; the next
    invocation resumes where it stopped.
    """
    report = SyncReport()
    began = time.monotonic()
    say = progress or (lambda _line: None)
    users = UserServiceClient.from_settings()
    concurrency = settings.PROFILE_SYNC_KNOWLEDGE_CONCURRENCY
    knowledge = KnowledgeServiceClient.from_settings(concurrency=concurrency) if _configured("KNOWLEDGE") else None
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    if not _lease_take(owner):
        users.close()
        report.error = "another sync_profiles run is in progress (it holds the lease)"
        return report
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="knowledge") as pool:
            if _configured("RESORT"):
                report.resorts = _sync_resorts(report, say)
            state = _start_or_resume(full=full, restart=restart, report=report)
            say(
                f"{'resuming' if report.resumed else 'starting'} a {report.mode} sync"
                + (f" after page {state.pages_done}" if report.resumed else "")
                + (f" of users changed since {state.run_since.isoformat()}" if state.run_since else "")
            )
            retried_cursor = False
            while True:
                if time_budget is not None and time.monotonic() - began > time_budget:
                    report.stopped = "time budget spent; the next run resumes here"
                    break
                try:
                    page = users.page(
                        cursor=state.cursor, limit=settings.PROFILE_SYNC_PAGE_SIZE, updated_since=state.run_since
                    )
                except ServiceRejected as exc:
                    if not state.cursor or retried_cursor:
                        raise
                    # A saved cursor the service no longer honours (expired): start this run over.
                    retried_cursor = True
                    report.warnings.append(f"the saved cursor was refused ({exc}); starting the run over")
                    say(report.warnings[-1])
                    state = _start_or_resume(full=report.mode == "full", restart=True, report=report)
                    continue
                state = _write_page(state, page.items, page.next_cursor, knowledge, pool, report, owner)
                done = state.counts
                say(
                    f"page {state.pages_done}: {len(page.items)} users; {done.get('created', 0)} created, "
                    f"{done.get('updated', 0)} updated, {done.get('unchanged', 0)} unchanged, "
                    f"{done.get('rejected', 0)} rejected so far"
                    + (f"; {done.get('users', 0) / max(time.monotonic() - began, 1e-6):.0f} users/s")
                )
                if page.next_cursor is None:
                    _finish(state, report)
                    report.complete = True
                    break
    except ServiceError as exc:
        report.error = str(exc)
        report.stopped = "service error; the next run resumes after the last page written"
        ProfileSyncState.objects.filter(pk=SOURCE).update(last_error=report.error[:2000])
        logger.warning("profile sync stopped: %s", report.error)
    finally:
        _lease_release(owner)
        users.close()
        if knowledge is not None:
            knowledge.close()
        report.seconds = time.monotonic() - began
    return report


def _configured(service: str) -> bool:
    return bool(settings.KNOWLEDGE_ENGAGEMENT_API_URL if service == "KNOWLEDGE" else settings.RESORT_SERVICES_API_URL)


def _sync_resorts(report: SyncReport, say: Callable[[str], None]) -> dict[str, int]:
    client = ResortServiceClient.from_settings()
    try:
        accepted, rejected = client.resorts()
    finally:
        client.close()
    counts = resorts_upsert_many(resorts=accepted) if accepted else {"created": 0, "updated": 0, "unchanged": 0}
    counts["rejected"] = len(rejected)
    for bad in rejected:
        report.warnings.append(f"resort {bad.resort_id or '(no id)'} rejected: {bad.reason}")
        say(report.warnings[-1])
    say(f"resorts: {counts}")
    return counts


def _start_or_resume(*, full: bool, restart: bool, report: SyncReport) -> ProfileSyncState:
    state, _ = ProfileSyncState.objects.get_or_create(pk=SOURCE)
    if state.run_started_at is not None and not restart:
        report.resumed = True
        report.mode = state.run_mode
        return state
    incremental = not full and supports_updated_since() and state.watermark is not None
    run_since = state.watermark - timedelta(seconds=settings.PROFILE_SYNC_OVERLAP_SECONDS) if incremental else None
    fields = {
        "run_started_at": timezone.now(),
        "run_mode": "incremental" if incremental else "full",
        "run_since": run_since,
        "cursor": "",
        "pages_done": 0,
        "counts": dict.fromkeys(COUNTERS, 0),
        "rejections": [],
    }
    ProfileSyncState.objects.filter(pk=SOURCE).update(**fields)
    for name, value in fields.items():
        setattr(state, name, value)
    report.mode = state.run_mode
    return state


def _write_page(
    state: ProfileSyncState,
    items: list[Any],
    next_cursor: str | None,
    knowledge: KnowledgeServiceClient | None,
    pool: ThreadPoolExecutor,
    report: SyncReport,
    owner: str,
) -> ProfileSyncState:
    page_number = state.pages_done + 1
    mapping = resort_regions()
    valid: dict[str, ProfileWrite] = {}
    rejections: list[dict[str, Any]] = []
    for position, record in enumerate(items):
        try:
            profile = profile_from_user_record(record, resort_regions=mapping)
        except ProfileInvalid as exc:
            rejections.append(_rejection(record_user_id(record), page_number, position, exc.errors))
            continue
        if profile.user_id in valid:
            rejections.append(
                _rejection(profile.user_id, page_number, position, {"user_id": ["Listed more than once on this page."]})
            )
            continue
        valid[profile.user_id] = profile
    knowledge_unavailable = 0
    if knowledge is not None and valid:
        scores = _fetch_scores(knowledge, pool, list(valid))
        for user_id, score in scores.items():
            if isinstance(score, Exception):
                knowledge_unavailable += 1
                if knowledge_unavailable <= 3:  # one line per failing user would drown the report
                    report.warnings.append(f"knowledge score of {user_id} not updated: {score}")
                continue
            valid[user_id] = replace(valid[user_id], knowledge_score=score)

    counts = {name: int((state.counts or {}).get(name, 0)) for name in COUNTERS}
    now = timezone.now()
    with transaction.atomic(durable=True):
        outcomes = profiles_upsert_many(profiles=list(valid.values()))
        for outcome in outcomes:
            counts[outcome.status] += 1
        counts["users"] += len(items)
        counts["rejected"] += len(rejections)
        counts["knowledge_unavailable"] += knowledge_unavailable
        kept = [*(state.rejections or []), *rejections][-KEPT_REJECTIONS:]
        ProfileSyncState.objects.filter(pk=SOURCE).update(
            cursor=next_cursor or "",
            pages_done=page_number,
            counts=counts,
            rejections=kept,
            lease_owner=owner,
            lease_until=now + timedelta(seconds=LEASE_SECONDS),
        )
    for rejection in rejections:
        logger.info("profile sync rejected %s (page %s item %s): %s", *rejection.values())
    report.pages += 1
    report.rejections.extend(rejections)
    for name in COUNTERS:
        report.counts[name] = counts[name]
    state.cursor, state.pages_done, state.counts, state.rejections = next_cursor or "", page_number, counts, kept
    return state


def _fetch_scores(
    knowledge: KnowledgeServiceClient, pool: ThreadPoolExecutor, user_ids: list[str]
) -> dict[str, int | Exception | None]:
    futures = {user_id: pool.submit(knowledge.overall_score, user_id) for user_id in user_ids}
    scores: dict[str, int | Exception | None] = {}
    for user_id, future in futures.items():
        try:
            scores[user_id] = future.result()
        except ServiceError as exc:
            scores[user_id] = exc
    return scores


def _rejection(user_id: str | None, page: int, position: int, errors: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": user_id, "page": page, "item": position, "reason": _reason(errors)}


def _reason(errors: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for name, messages in errors.items():
        if isinstance(messages, dict):
            parts.append(_reason(messages, f"{prefix}{name}."))
        else:
            parts.append(f"{prefix}{name}: {' '.join(messages)}")
    return "; ".join(parts)


def _finish(state: ProfileSyncState, report: SyncReport) -> None:
    now = timezone.now()
    ProfileSyncState.objects.filter(pk=SOURCE).update(
        watermark=state.run_started_at,
        last_completed_at=now,
        last_report={
            "mode": state.run_mode,
            "pages": state.pages_done,
            "counts": state.counts,
            "resorts": report.resorts,
            "started_at": state.run_started_at.isoformat(),
            "finished_at": now.isoformat(),
        },
        last_error="",
        run_started_at=None,
        run_mode="",
        run_since=None,
        cursor="",
    )


def _lease_take(owner: str) -> bool:
    ProfileSyncState.objects.get_or_create(pk=SOURCE)
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(
        ProfileSyncState.objects.filter(free, pk=SOURCE).update(
            lease_owner=owner, lease_until=now + timedelta(seconds=LEASE_SECONDS)
        )
    )


def _lease_release(owner: str) -> None:
    ProfileSyncState.objects.filter(pk=SOURCE, lease_owner=owner).update(lease_owner="", lease_until=None)
