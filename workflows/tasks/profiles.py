"""Thin tasks and worker hooks for candidate profiles (imported by workflows/tasks/__init__.py).

- `sync_profiles` (beat, PROFILE_SYNC_INTERVAL_SECONDS): one resumable slice of the pull sync,
  paused at a page boundary before the task's time limit; the next run resumes there.
- `purge_profile_tombstones` (beat, daily): deleted profiles' tombstones older than
  MATCHING_PROFILE_TOMBSTONE_DAYS.
- Each prefork worker process warms its candidate index in a thread as it starts
  (MATCHING_INDEX_PRELOAD), so its first search does not pay the cold load. Not in the process
  initialiser itself: Celery kills a child that takes more than 4 s to start.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from matching.candidates.sync import profiles_sync
from matching.candidates.warm_index import candidate_index_preload
from matching.services.profiles import profiles_purge_tombstones

logger = logging.getLogger(__name__)


@shared_task(
    name="workflows.tasks.sync_profiles",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=2,
)
def sync_profiles() -> str:
    if not settings.USER_CORE_API_URL:
        return "skipped: USER_CORE_API_URL is not set"
    report = profiles_sync(time_budget=settings.PROFILE_SYNC_TASK_BUDGET_SECONDS)
    for rejection in report.rejections:
        logger.warning("profile sync rejected %(user_id)s (page %(page)s item %(item)s): %(reason)s", rejection)
    if report.error:
        logger.warning("profile sync: %s: %s", report.line(), report.error)
    else:
        logger.info("profile sync: %s", report.line())
    return report.line()


@shared_task(name="workflows.tasks.purge_profile_tombstones")
def purge_profile_tombstones() -> int:
    cutoff = timezone.now() - timedelta(days=settings.MATCHING_PROFILE_TOMBSTONE_DAYS)
    return profiles_purge_tombstones(older_than=cutoff)


@worker_process_init.connect
def _warm_the_candidate_index(**_kwargs) -> None:
    if settings.MATCHING_INDEX_PRELOAD:
        candidate_index_preload()
