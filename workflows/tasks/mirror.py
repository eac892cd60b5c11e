"""Thin periodic tasks of the execution mirror (imported by workflows/tasks/__init__.py, scheduled by beat)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from matching.models import ACTIVE_STATUSES, Engine, Search
from workflows.dispatch.engine_choice import choose_engine
from workflows.durable_console.dynamo import DynamoConfigError, DynamoStateUnavailable
from workflows.durable_console.reconcile import searches_reconcile_drift
from workflows.mirror.console_events import console_events_sync
from workflows.mirror.history import workflow_history_sync
from workflows.mirror.refresh import single_flight
from workflows.mirror.state import workflow_state_sync

logger = logging.getLogger(__name__)


def _durable_side_in_use() -> bool:
    """The durable engine takes new searches, or searches it took are still unfinished (after a rollback)."""
    return (
        choose_engine() == Engine.DURABLE
        or Search.objects.filter(engine=Engine.DURABLE, status__in=ACTIVE_STATUSES).exists()
    )


@shared_task(
    name="workflows.tasks.sync_workflow_state",
    autoretry_for=(DynamoStateUnavailable, OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=2,
)
def sync_workflow_state() -> str:
    with single_flight("sync-workflow-state", timeout=settings.CELERY_TASK_TIME_LIMIT) as mine:
        if not mine:
            return "skipped: another sync is running"
        if not _durable_side_in_use():
            # A Celery-only console: no DynamoDB to ask (and no AWS call from a laptop's beat).
            return f"durable engine not in use; {console_events_sync()} console timeline entries"
        try:
            report = workflow_state_sync()
        except DynamoConfigError as exc:
            # A console that never ran the durable engine: its Celery timelines still need the events.
            added = console_events_sync()
            return f"DynamoDB not configured ({exc}); {added} console timeline entries"
        history = workflow_history_sync()
    logger.info("workflow state sync: %s; history of %d executions", report.line(), history.executions)
    return report.line()


@shared_task(
    name="workflows.tasks.reconcile_drift",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=2,
)
def reconcile_drift() -> str:
    with single_flight("reconcile-drift", timeout=settings.CELERY_TASK_TIME_LIMIT) as mine:
        if not mine:
            return "skipped: another drift check is running"
        report = searches_reconcile_drift()
    logger.info("drift check: %s", report.line())
    return report.line()
