"""Match-request behaviour events to SnowTrace's user service: delivery of the `UserEvent` outbox.

The domain writes one row per sent, accepted or declined match request, in the transaction that
changes the request (matching.services). This module delivers them, as the old service posted them:

    POST {USER_CORE_API_URL}/events       (Authorization: Bearer USER_CORE_API_TOKEN when set)
    Idempotency-Key: <the row's event_id>  (the same on every try)
    {"user_id", "source_project": "snowbuddy-matching", "event_type", "occurred_at", "payload"}

The old service posted inline and answered 502 when the user service was down; here the user's
request never waits for it. A 2xx delivers the event. No answer within USER_CORE_EVENT_TIMEOUT_SECONDS,
a connection error, a 5xx, 408, 425 or 429 is tried again after the notifications' exponential
backoff (USER_CORE_EVENT_BACKOFF_SECONDS doubling up to ..._BACKOFF_MAX_SECONDS) until
USER_CORE_EVENT_RETRY_SECONDS after the first try; then, or at once on any other answer, the row
is dead-lettered for staff to redeliver from the admin. The first try follows the commit
(`user_events_kick`); beat's sweep (`user_events_deliver_due`) does the rest. Events of one match
request leave in order: a later one waits while an earlier one is still pending.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from matching.models import NotificationState, UserEvent
from matching.snowtrace.http import ServiceClient, ServiceConfig, ServiceRejected, ServiceUnavailable
from matching.snowtrace.users import UserServiceClient
from workflows.outbound.outbox import (
    DeliveryPolicy,
    outbox_claim,
    outbox_due,
    outbox_kick,
    outbox_record_try,
    outbox_reopen,
)

logger = logging.getLogger(__name__)

DELIVER_TASK = "workflows.tasks.deliver_user_events"


def user_event_policy() -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout_seconds=float(settings.USER_CORE_EVENT_TIMEOUT_SECONDS),
        retry_period=timedelta(seconds=settings.USER_CORE_EVENT_RETRY_SECONDS),
        backoff_seconds=float(settings.USER_CORE_EVENT_BACKOFF_SECONDS),
        backoff_max_seconds=float(settings.USER_CORE_EVENT_BACKOFF_MAX_SECONDS),
    )


def _client(policy: DeliveryPolicy) -> UserServiceClient:
    config = ServiceConfig.from_settings(
        "user service", url_setting="USER_CORE_API_URL", auth_setting="USER_CORE_API_TOKEN", pool_size=1
    )
    # One try per claim: the outbox does the retrying, with its own backoff and deadline.
    return UserServiceClient(ServiceClient(dataclasses.replace(config, retries=0, read_timeout=policy.timeout_seconds)))


def user_event_deliver(*, event_id: int, now=None) -> str:
    """Try one due event once. Returns `delivered`, `retry`, `dead_letter` or `skipped` (not due,
    already delivered, another worker holds it, an earlier event of its request is still pending,
    or no user service is configured)."""
    if not settings.USER_CORE_API_URL:
        return "skipped"
    now = now or timezone.now()
    row = UserEvent.objects.filter(pk=event_id).only("match_request_id").first()
    if row is None:
        return "skipped"
    earlier_pending = UserEvent.objects.filter(
        match_request_id=row.match_request_id, pk__lt=event_id, state=NotificationState.PENDING
    ).exists()
    policy = user_event_policy()
    if earlier_pending or not outbox_claim(UserEvent, pk=event_id, policy=policy, now=now):
        return "skipped"
    event = UserEvent.objects.get(pk=event_id)
    client = _client(policy)
    status_code, error, retryable = None, "", True
    try:
        status_code = client.post_event(event.body, event_id=str(event.event_id))
    except ServiceUnavailable as exc:
        status_code, error = exc.status_code, str(exc)
    except ServiceRejected as exc:
        status_code, error, retryable = exc.status_code, str(exc)[:2000], False
    finally:
        client.http.close()
    return outbox_record_try(
        event,
        policy,
        status_code=status_code,
        error=error,
        retryable=retryable,
        label=f"user event {event.event_id}",
        outbox="user_event",
    )


def user_events_deliver_due(*, match_request_id=None, now=None, batch_size: int = 100) -> int:
    """Try every due event (of one match request, or the oldest due ones), oldest first so one
    request's events leave in order. Returns how many were delivered."""
    now = now or timezone.now()
    only = {"match_request_id": match_request_id} if match_request_id is not None else {}
    ids = outbox_due(UserEvent, now=now, order_by="pk", batch_size=batch_size, **only)
    return sum(user_event_deliver(event_id=pk, now=now) == "delivered" for pk in ids)


def user_events_kick(*, match_request_id) -> None:
    """A prompt first try of a match request's events on a worker, once the writing transaction
    commits. Best effort: with the broker down the user's request still succeeds, and beat's sweep
    delivers the events later."""

    if settings.USER_CORE_API_URL:
        outbox_kick(DELIVER_TASK, match_request_id, what=f"the user events of match request {match_request_id}")


def user_event_redeliver(*, event: UserEvent) -> bool:
    """Staff: deliver this event again (same event_id), with a fresh retry period. Returns False
    when it is pending already (it will be tried anyway)."""
    with transaction.atomic(durable=True):
        changed = outbox_reopen(UserEvent, pk=event.pk)
        if changed:
            user_events_kick(match_request_id=event.match_request_id)
    return bool(changed)
