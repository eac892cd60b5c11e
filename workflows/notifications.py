"""Completion notifications to SnowTrace: delivery of the `SearchNotification` outbox.

The domain writes one outbox row per finished attempt, in the transaction that finishes it (either
engine). This module is the only place that knows the notification's wire form:

    POST MATCHING_NOTIFICATION_WEBHOOK_URL
    webhook-id: msg_<search id hex>_<attempt>      (the same on every try: receivers dedupe on it)
    webhook-timestamp, webhook-signature: v1,...   (Standard Webhooks, MATCHING_NOTIFICATION_WEBHOOK_SECRET)
    {"search_id", "attempt", "status", "payload": {"seeker_id", "finished_at", "error", "result_count", "results"}}

A 2xx delivers it. A timeout, a connection error, a 5xx, 408, 425 or 429 is tried again after an
exponential backoff (`MATCHING_NOTIFICATION_BACKOFF_SECONDS` doubling up to `..._BACKOFF_MAX_SECONDS`)
until `MATCHING_NOTIFICATION_RETRY_SECONDS` after the first try; then, or at once on any other
answer, the row is dead-lettered for staff to redeliver from the admin. The first try follows the
finishing commit (`notifications_kick`); beat's sweep (`notifications_deliver_due`) does the rest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import requests
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from matching import metrics
from matching.models import NotificationState, Search, SearchEventKind, SearchNotification
from matching.selectors import snowtrace_results
from matching.services import search_event_record
from workflows.durable import signing

logger = logging.getLogger(__name__)

DELIVER_TASK = "workflows.tasks.deliver_notifications"
RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "snowbuddy-console/notifications"


class NotificationConfigError(RuntimeError):
    """Notifications are wanted (a URL is set) but cannot be signed."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How an outbox row is retried: the try's timeout, exponential backoff, and the period after
    the first try within which it is retried before it is dead-lettered. Shared by this outbox and
    the user service's behaviour events (workflows/user_events.py)."""

    timeout_seconds: float
    retry_period: timedelta
    backoff_seconds: float
    backoff_max_seconds: float

    def backoff(self, tries: int) -> timedelta:
        """The wait after the `tries`-th failed try: backoff, twice that, four times, and so on, capped."""
        return timedelta(seconds=min(self.backoff_seconds * 2 ** max(tries - 1, 0), self.backoff_max_seconds))

    @property
    def lease(self) -> timedelta:
        # A claimed row is not due again while its try may still be running.
        return timedelta(seconds=self.timeout_seconds + 5)


@dataclass(frozen=True)
class NotificationConfig(DeliveryPolicy):
    url: str
    secret: str

    @classmethod
    def from_settings(cls) -> NotificationConfig | None:
        """The configuration, or None when nobody listens (no URL)."""
        if not settings.MATCHING_NOTIFICATION_WEBHOOK_URL:
            return None
        if not settings.MATCHING_NOTIFICATION_WEBHOOK_SECRET:
            raise NotificationConfigError("MATCHING_NOTIFICATION_WEBHOOK_SECRET is required to sign notifications")
        return cls(
            url=settings.MATCHING_NOTIFICATION_WEBHOOK_URL,
            secret=settings.MATCHING_NOTIFICATION_WEBHOOK_SECRET,
            timeout_seconds=float(settings.MATCHING_NOTIFICATION_TIMEOUT_SECONDS),
            retry_period=timedelta(seconds=settings.MATCHING_NOTIFICATION_RETRY_SECONDS),
            backoff_seconds=float(settings.MATCHING_NOTIFICATION_BACKOFF_SECONDS),
            backoff_max_seconds=float(settings.MATCHING_NOTIFICATION_BACKOFF_MAX_SECONDS),
        )


def notification_body(notification: SearchNotification) -> bytes:
    """The JSON body, the same bytes on every try (results are fixed once an attempt finished)."""
    search = Search.objects.only("seeker_id", "attempt", "finished_at", "error").get(pk=notification.search_id)
    results = snowtrace_results(
        search_id=notification.search_id, attempt=notification.attempt, status=notification.status
    )
    current = search.attempt == notification.attempt
    body = {
        "search_id": str(notification.search_id),
        "attempt": notification.attempt,
        "status": notification.status,
        "payload": {
            "seeker_id": search.seeker_id,
            "finished_at": search.finished_at.isoformat() if current and search.finished_at else None,
            "error": (search.error or None) if current else None,
            "result_count": len(results),
            "results": results,
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def notification_deliver(*, notification_id: int, now=None) -> str:
    """Try one due notification once. Returns `delivered`, `retry`, `dead_letter` or `skipped`
    (not due, already delivered, or another worker holds it)."""
    config = NotificationConfig.from_settings()
    if config is None:
        return "skipped"
    now = now or timezone.now()
    # The claim: one sender per try, even when the after-commit kick and the sweep race.
    if not outbox_claim(SearchNotification, pk=notification_id, policy=config, now=now):
        return "skipped"
    notification = SearchNotification.objects.get(pk=notification_id)
    body = notification_body(notification)
    headers = signing.signature_headers(config.secret, body, msg_id=notification.webhook_id)
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
    status_code, error, retryable = None, "", True
    try:
        response = requests.post(
            config.url, data=body, headers=headers, timeout=(3, config.timeout_seconds), allow_redirects=False
        )
    except requests.Timeout:
        error = f"no answer within {config.timeout_seconds:g}s"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
    else:
        status_code = response.status_code
        if 200 <= status_code < 300:
            retryable = False
        else:
            error = f"HTTP {status_code}"
            retryable = status_code >= 500 or status_code in RETRYABLE_STATUS
    label = f"notification {notification.webhook_id}"
    return outbox_record_try(
        notification,
        config,
        status_code=status_code,
        error=error,
        retryable=retryable,
        label=label,
        outbox="notification",
    )


def outbox_claim(model, *, pk, policy: DeliveryPolicy, now) -> bool:
    """Claim one due row of an outbox (a model with the delivery columns of SearchNotification):
    one sender per try, even when the after-commit kick and the sweep race."""
    return bool(
        model.objects.filter(pk=pk, state=NotificationState.PENDING, next_attempt_at__lte=now).update(
            next_attempt_at=now + policy.lease,
            last_attempt_at=now,
            retry_until=Coalesce(F("retry_until"), now + policy.retry_period),
        )
    )


def outbox_record_try(
    row, policy: DeliveryPolicy, *, status_code, error: str, retryable: bool, label: str, outbox: str
) -> str:
    """Record the outcome of a claimed row's try: `delivered`, `retry` (after a backoff) or `dead_letter`."""
    now = timezone.now()
    mine = type(row).objects.filter(pk=row.pk, state=NotificationState.PENDING, last_attempt_at=row.last_attempt_at)
    common = {"tries": F("tries") + 1, "last_status_code": status_code, "last_error": error}
    if not error:
        mine.update(state=NotificationState.DELIVERED, sent_at=now, next_attempt_at=None, **common)
        _observe(row, outbox, "sent", f"{label}: HTTP {status_code}")
        return "delivered"
    # Backoff counts from the start of this try, so the waits between tries are 1x, 2x, 4x, ...
    next_try = row.last_attempt_at + policy.backoff(row.tries + 1)
    if retryable and next_try <= row.retry_until:
        mine.update(next_attempt_at=next_try, **common)
        _observe(row, outbox, "retry", f"{label}: {error}; next try at {next_try.isoformat()}")
        return "retry"
    mine.update(state=NotificationState.DEAD_LETTER, next_attempt_at=None, **common)
    _observe(row, outbox, "dead_letter", f"{label}: {error} after {row.tries + 1} tries")
    return "dead_letter"


def _observe(row, outbox: str, outcome: str, detail: str) -> None:
    # A user-core event belongs to no search: its log line carries no search id.
    metrics.outbox_send(
        outbox=outbox,
        outcome=outcome,
        search_id=getattr(row, "search_id", None),
        attempt=getattr(row, "attempt", None),
        detail=detail,
    )


def notifications_deliver_due(*, search_id=None, now=None, batch_size: int = 100) -> int:
    """Try every due notification (of one search, or the oldest due ones). Returns how many were delivered."""
    now = now or timezone.now()
    due = SearchNotification.objects.filter(state=NotificationState.PENDING, next_attempt_at__lte=now)
    if search_id is not None:
        due = due.filter(search_id=search_id)
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:batch_size])
    return sum(notification_deliver(notification_id=pk, now=now) == "delivered" for pk in ids)


def notifications_kick(*, search_id) -> None:
    """A prompt first try, on a worker, once the finishing transaction commits. Best effort: if the
    broker is down, beat's sweep delivers it anyway."""

    def send() -> None:
        try:
            current_app.send_task(DELIVER_TASK, args=[str(search_id)], retry=False)
        except (BrokerError, ConnectionError, OSError) as exc:
            logger.warning("could not queue the notification of %s: %s", search_id, exc)

    if settings.MATCHING_NOTIFICATION_WEBHOOK_URL:
        transaction.on_commit(send)


def notification_redeliver(*, notification: SearchNotification, acting_user: str) -> bool:
    """Staff: deliver this notification again (same webhook-id), with a fresh retry period.
    Returns False when it is pending already (it will be tried anyway)."""
    with transaction.atomic(durable=True):
        changed = (
            SearchNotification.objects.filter(pk=notification.pk)
            .exclude(state=NotificationState.PENDING)
            .update(state=NotificationState.PENDING, next_attempt_at=timezone.now(), retry_until=None)
        )
        if changed:
            search_event_record(
                search_id=notification.search_id,
                attempt=notification.attempt,
                kind=SearchEventKind.NOTIFICATION_REDELIVERY,
                actor=acting_user,
                detail=f"{notification.webhook_id} was {notification.state}",
            )
            notifications_kick(search_id=notification.search_id)
    return bool(changed)
