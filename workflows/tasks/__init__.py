"""Thin Celery tasks: take ids, call one service. Retries only on named transient errors."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from matching.services.idempotency import idempotency_keys_purge
from matching.services.searches import search_fail, searches_expire_overdue
from workflows.celery_engine.recovery import durable_api_probe, leases_recover_expired
from workflows.celery_engine.run import search_run_on_celery
from workflows.celery_engine.vetting import vetting_requests_send_due
from workflows.dispatch.submit import dispatch_sweep
from workflows.outbound.notifications import notifications_deliver_due, notifications_kick
from workflows.outbound.user_events import user_events_deliver_due
from workflows.tasks.mirror import reconcile_drift, sync_workflow_state  # noqa: F401 - registers the mirror's tasks
from workflows.tasks.profiles import purge_profile_tombstones, sync_profiles  # noqa: F401 - registers them

logger = logging.getLogger(__name__)

# Errors worth another try: the database or the network blinked.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_RUN_RETRIES = 3


@shared_task(bind=True, name="workflows.tasks.run_search", max_retries=MAX_RUN_RETRIES)
def run_search(self, search_id: str, attempt: int) -> str:
    try:
        outcome = search_run_on_celery(search_id=search_id, attempt=attempt, worker=f"celery:{self.request.hostname}")
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            search_fail(
                search_id=search_id,
                attempt=attempt,
                error=f"gave up after {self.max_retries + 1} tries: {type(exc).__name__}: {exc}",
            )
            notifications_kick(search_id=search_id)
            return "failed: transient errors persisted"
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
    except Exception as exc:
        # A bug or bad data: retrying would fail the same way. Fail the search readably.
        logger.exception("search %s attempt %s failed", search_id, attempt)
        search_fail(search_id=search_id, attempt=attempt, error=f"internal error: {type(exc).__name__}")
        notifications_kick(search_id=search_id)
        return "failed: internal error"
    logger.info("search %s attempt %s: %s", search_id, attempt, outcome)
    # The notification goes out from its own task: a slow receiver must not hold a search worker.
    notifications_kick(search_id=search_id)
    return outcome


@shared_task(name="workflows.tasks.sweep_dispatch_outbox")
def sweep_dispatch_outbox() -> int:
    return dispatch_sweep()


@shared_task(name="workflows.tasks.expire_overdue_searches")
def expire_overdue_searches() -> int:
    expired = searches_expire_overdue()
    if expired:
        notifications_deliver_due()
    return expired


@shared_task(name="workflows.tasks.send_notifications")
def send_notifications() -> int:
    """Beat's sweep: every due notification (first tries that missed their kick, and retries)."""
    return notifications_deliver_due()


@shared_task(name="workflows.tasks.deliver_notifications")
def deliver_notifications(search_id: str) -> int:
    """The prompt first try after a search finished."""
    return notifications_deliver_due(search_id=search_id)


@shared_task(name="workflows.tasks.send_user_events")
def send_user_events() -> int:
    """Beat's sweep: every due match-request event for the user service (missed kicks and retries)."""
    return user_events_deliver_due()


@shared_task(name="workflows.tasks.deliver_user_events")
def deliver_user_events(match_request_id: str) -> int:
    """The prompt first try after a match request was sent or answered."""
    return user_events_deliver_due(match_request_id=match_request_id)


@shared_task(name="workflows.tasks.send_vetting_requests")
def send_vetting_requests() -> int:
    """Beat: GlobalCoach requests a crash or an outage left unsent (Celery engine)."""
    return vetting_requests_send_due()


@shared_task(name="workflows.tasks.recover_expired_leases")
def recover_expired_leases() -> dict[str, int]:
    return leases_recover_expired()


@shared_task(name="workflows.tasks.probe_durable_api")
def probe_durable_api() -> str:
    return durable_api_probe()


@shared_task(name="workflows.tasks.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    return idempotency_keys_purge()
