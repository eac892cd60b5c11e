"""What the outboxes to other systems share: the delivery policy, the claim of a due row, the
record of a try (delivered, retried after a backoff, or dead-lettered), the due rows, the prompt
first try after commit, and the staff's redelivery.

An outbox is a model with the delivery columns of `SearchNotification` (state, next_attempt_at,
last_attempt_at, retry_until, tries, last_status_code, last_error, sent_at). Two use it: the
completion notifications to SnowTrace (workflows/outbound/notifications.py) and the match-request events to
SnowTrace's user service (workflows/outbound/user_events.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from matching import metrics
from matching.models import NotificationState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How an outbox row is retried: the try's timeout, exponential backoff, and the period after
    the first try within which it is retried before it is dead-lettered. Shared by this outbox and
    the user service's behaviour events (workflows/outbound/user_events.py)."""

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


def outbox_due(model, *, now, order_by: str, batch_size: int, **only) -> list[int]:
    """The ids of the rows due by `now` (optionally only those matching `only`), in `order_by` order."""
    due = model.objects.filter(state=NotificationState.PENDING, next_attempt_at__lte=now, **only)
    return list(due.order_by(order_by).values_list("pk", flat=True)[:batch_size])


def outbox_kick(task: str, key, *, what: str) -> None:
    """A prompt first try of `task(key)` on a worker, once the writing transaction commits. Best
    effort: with the broker down the writer still succeeds, and beat's sweep delivers later."""

    def send() -> None:
        try:
            current_app.send_task(task, args=[str(key)], retry=False)
        except (BrokerError, ConnectionError, OSError) as exc:
            logger.warning("could not queue %s: %s", what, exc)

    transaction.on_commit(send)


def outbox_reopen(model, *, pk) -> bool:
    """Staff's redelivery: a delivered or dead-lettered row is due again now, with a fresh retry
    period. False when it is pending already (it will be tried anyway)."""
    return bool(
        model.objects.filter(pk=pk)
        .exclude(state=NotificationState.PENDING)
        .update(state=NotificationState.PENDING, next_attempt_at=timezone.now(), retry_until=None)
    )
