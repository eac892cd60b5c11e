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
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from matching.models import Search, SearchEventKind, SearchNotification
from matching.selectors import snowtrace_results
from matching.services.searches import search_event_record
from workflows.durable import signing
from workflows.outbound.outbox import (
    DeliveryPolicy,
    outbox_claim,
    outbox_due,
    outbox_kick,
    outbox_record_try,
    outbox_reopen,
)

logger = logging.getLogger(__name__)

DELIVER_TASK = "workflows.tasks.deliver_notifications"
RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "snowbuddy-console/notifications"


class NotificationConfigError(RuntimeError):
    """Notifications are wanted (a URL is set) but cannot be signed."""


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


def notifications_deliver_due(*, search_id=None, now=None, batch_size: int = 100) -> int:
    """Try every due notification (of one search, or the oldest due ones). Returns how many were delivered."""
    now = now or timezone.now()
    only = {"search_id": search_id} if search_id is not None else {}
    ids = outbox_due(SearchNotification, now=now, order_by="next_attempt_at", batch_size=batch_size, **only)
    return sum(notification_deliver(notification_id=pk, now=now) == "delivered" for pk in ids)


def notifications_kick(*, search_id) -> None:
    """A prompt first try, on a worker, once the finishing transaction commits. Best effort: if the
    broker is down, beat's sweep delivers it anyway."""

    if settings.MATCHING_NOTIFICATION_WEBHOOK_URL:
        outbox_kick(DELIVER_TASK, search_id, what=f"the notification of {search_id}")


def notification_redeliver(*, notification: SearchNotification, acting_user: str) -> bool:
    """Staff: deliver this notification again (same webhook-id), with a fresh retry period.
    Returns False when it is pending already (it will be tried anyway)."""
    with transaction.atomic(durable=True):
        changed = outbox_reopen(SearchNotification, pk=notification.pk)
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
