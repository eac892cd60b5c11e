"""Sends again every Celery attempt whose lease expired: the worker holding it died or hung, or
its message never reached a worker (a broker restart, a worker killed with it reserved).

Beat runs `leases_recover_expired` every MATCHING_LEASE_SWEEP_INTERVAL_SECONDS. For each expired
lease, in one transaction: the attempt goes back to `dispatched` under a new claim generation
(so whoever held the old one can no longer finish it) and its dispatch record is marked unsent;
after commit the record is sent again (and, should that fail, by the dispatch sweeper). An attempt
that lost MATCHING_LEASE_MAX_CLAIMS workers fails instead of running forever. The same attempt runs
again: results are unique per (search, attempt, candidate) and completion is conditional on the
generation, so a recovered search is never finished twice.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from matching import metrics
from matching.models import Engine, Search, SearchStatus
from matching.services.leases import search_lease_expire
from workflows.dispatch.submit import dispatch_reopen
from workflows.durable_console.breaker import durable_breaker
from workflows.durable_console.client import DurableApiClient, DurableApiError

logger = logging.getLogger(__name__)


def leases_recover_expired(*, now=None, batch_size: int = 500) -> dict[str, int]:
    """Take back expired leases (oldest first) and send their attempts again. Returns counts."""
    now = now or timezone.now()
    due = list(
        Search.objects.filter(
            engine=Engine.CELERY,
            status__in=[SearchStatus.DISPATCHED, SearchStatus.RUNNING],
            lease_expires_at__lt=now,
        )
        .order_by("lease_expires_at")
        .values_list("pk", "attempt", "claim_generation")[:batch_size]
    )
    counts = {"resent": 0, "failed": 0}
    for search_id, attempt, generation in due:
        with transaction.atomic(durable=True):
            outcome = search_lease_expire(
                search_id=search_id,
                attempt=attempt,
                generation=generation,
                max_claims=settings.MATCHING_LEASE_MAX_CLAIMS,
            )
            if outcome == "resend":
                dispatch_reopen(search_id=search_id, attempt=attempt)
                counts["resent"] += 1
            elif outcome == "failed":
                counts["failed"] += 1
            if outcome:
                transaction.on_commit(metrics.LEASE_RECOVERIES.labels(outcome=outcome).inc)
    if any(counts.values()):
        logger.warning("expired leases: %(resent)d attempts sent again, %(failed)d failed", counts)
    return counts


def durable_api_probe() -> str:
    """A half-open circuit needs one request to learn whether the Durable API is back; make it when
    nothing else does (a 404 for a search nobody has is an answer, so it closes the circuit)."""
    breaker = durable_breaker()
    if breaker.state().state != "half_open" or not settings.MATCHING_WORKFLOW_URL:
        return breaker.state().state
    try:
        DurableApiClient.from_settings(quick=True).find_started("breaker-probe", 1)
    except DurableApiError as exc:
        return f"still failing: {exc}"
    return breaker.state().state
