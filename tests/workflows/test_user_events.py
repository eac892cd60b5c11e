"""Match-request events to SnowTrace's user service against a receiver on loopback that fails,
stalls and recovers (tests/helpers/webhook_receiver.py without a secret: it dedupes on Idempotency-Key).
Time is driven through the sweep's `now`, so backoffs are asserted, not slept through; the last
test runs the task path on a real worker, in real time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from matching.models import MatchRequest, NotificationState, UserEvent
from matching.services.match_requests import match_request_answer, match_request_send
from tests.helpers.polling import wait_for
from workflows.outbound.user_events import user_event_deliver, user_events_deliver_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(user_events_to, settings):
    settings.USER_CORE_EVENT_BACKOFF_SECONDS = 10
    settings.USER_CORE_EVENT_BACKOFF_MAX_SECONDS = 1000
    settings.USER_CORE_EVENT_RETRY_SECONDS = 3600
    return user_events_to


def _send(requester="alice-1", target="bob-2") -> MatchRequest:
    return match_request_send(requester_id=requester, target_user_id=target)[0]


def _event(match_request, kind="sent") -> UserEvent:
    return UserEvent.objects.get(match_request=match_request, event_type=f"snowbuddy.match.request.{kind}")


def test_a_sent_request_reaches_the_user_service_as_the_old_service_posted_it(receiver, settings):
    settings.USER_CORE_API_TOKEN = "user-core-token"
    match_request = _send()
    assert user_events_deliver_due() == 1
    row = _event(match_request)
    assert (row.state, row.tries, row.last_status_code) == (NotificationState.DELIVERED, 1, 204)
    assert receiver.paths == ["/user-core/events"]
    body = receiver.by_webhook_id[str(row.event_id)]
    assert body == {
        "user_id": "alice-1",
        "source_project": "snowbuddy-matching",
        "event_type": "snowbuddy.match.request.sent",
        "occurred_at": match_request.created_at.isoformat(),
        "payload": {"request_id": str(match_request.pk), "target_user_id": "bob-2"},
    }
    assert user_events_deliver_due(now=timezone.now() + timedelta(days=2)) == 0  # delivered once


def test_a_failing_user_service_is_retried_with_exponential_backoff_until_it_recovers(receiver):
    receiver.reset(500, 503, 429)
    match_request = _send()
    now = timezone.now()
    waits = []
    for _ in range(3):
        assert user_events_deliver_due(now=now) == 0
        row = _event(match_request)
        assert row.state == NotificationState.PENDING and row.last_status_code in (500, 503, 429)
        waits.append((row.next_attempt_at - row.last_attempt_at).total_seconds())
        assert user_events_deliver_due(now=row.next_attempt_at - timedelta(seconds=1)) == 0  # not due yet
        now = row.next_attempt_at
    assert waits == [10, 20, 40]
    assert user_events_deliver_due(now=now) == 1
    row = _event(match_request)
    assert (row.state, row.tries, row.last_error) == (NotificationState.DELIVERED, 4, "")
    assert len(receiver.by_webhook_id) == 1 and len(receiver.requests) == 4


def test_a_stalled_user_service_times_out_the_try_and_the_retry_carries_the_same_key(receiver):
    receiver.reset(("stall", 2.5))
    match_request = _send()
    assert user_events_deliver_due() == 0
    row = _event(match_request)
    assert row.state == NotificationState.PENDING and "no answer within 1s" in row.last_error
    assert user_events_deliver_due(now=row.next_attempt_at) == 1
    # The stalled copy still lands later: two copies under one Idempotency-Key, acted on once.
    wait_for(lambda: len(receiver.received) == 2, timeout=10, message="the late stalled copy")
    assert list(receiver.by_webhook_id) == [str(row.event_id)]


def test_an_unreachable_user_service_is_retried(receiver, settings):
    settings.USER_CORE_API_URL = "http://127.0.0.1:9"  # nothing listens (discard port)
    match_request = _send()
    assert user_events_deliver_due() == 0
    row = _event(match_request)
    assert row.state == NotificationState.PENDING and row.last_status_code is None and "unreachable" in row.last_error


def test_after_the_retry_period_an_event_is_dead_lettered(receiver, settings):
    settings.USER_CORE_EVENT_RETRY_SECONDS = 60  # tries at 0, 10, 30 s; the next (70 s) is too late
    receiver.reset(*([500] * 10))
    match_request = _send()
    now = timezone.now()
    outcomes = []
    while _event(match_request).state == NotificationState.PENDING:
        assert len(outcomes) < 10
        outcomes.append(user_event_deliver(event_id=_event(match_request).pk, now=now))
        now = _event(match_request).next_attempt_at or now
    assert outcomes == ["retry", "retry", "dead_letter"]
    row = _event(match_request)
    assert row.tries == 3 and row.next_attempt_at is None and row.sent_at is None
    assert user_events_deliver_due(now=now + timedelta(days=1)) == 0


@pytest.mark.parametrize("refusal", [400, 401, 404, 422])
def test_a_refusal_is_dead_lettered_at_once(receiver, refusal):
    receiver.reset(refusal)
    match_request = _send()
    assert user_events_deliver_due() == 0
    row = _event(match_request)
    assert (row.state, row.last_status_code) == (NotificationState.DEAD_LETTER, refusal)


def test_one_requests_events_leave_in_order(receiver):
    receiver.reset(500)
    match_request = _send()
    assert user_events_deliver_due() == 0  # the "sent" event failed: retried in 10 s
    match_request_answer(match_request=match_request, acting_user_id="bob-2", action="accept")
    assert user_events_deliver_due() == 0  # "accepted" waits behind the pending "sent"
    assert _event(match_request, "accepted").tries == 0
    assert user_events_deliver_due(now=_event(match_request).next_attempt_at) == 2
    assert [b["event_type"] for b in receiver.received] == [
        "snowbuddy.match.request.sent",
        "snowbuddy.match.request.accepted",
    ]


def test_staff_see_and_redeliver_a_dead_letter_from_the_admin(receiver, client, staff_operator):
    from django.contrib.auth.models import Permission

    receiver.reset(410)
    match_request = _send()
    user_events_deliver_due()
    row = _event(match_request)
    assert row.state == NotificationState.DEAD_LETTER

    staff_operator.user_permissions.add(Permission.objects.get(codename="view_userevent"))
    client.force_login(staff_operator)
    page = client.get("/admin/matching/userevent/", {"state__exact": "dead_letter"})
    assert page.status_code == 200 and b"Dead letter" in page.content
    assert b'value="redeliver"' not in page.content  # viewing is not redelivering
    staff_operator.user_permissions.add(Permission.objects.get(codename="redeliver_userevent"))
    staff_operator = type(staff_operator).objects.get(pk=staff_operator.pk)  # a fresh permission cache
    client.force_login(staff_operator)
    action = {"action": "redeliver", "_selected_action": [row.pk]}
    response = client.post("/admin/matching/userevent/", action, follow=True)
    assert b"Queued 1 event for redelivery" in response.content
    row.refresh_from_db()
    assert row.state == NotificationState.PENDING and row.retry_until is None
    assert user_events_deliver_due() == 1
    assert receiver.by_webhook_id[str(row.event_id)]["event_type"] == "snowbuddy.match.request.sent"
    detail = client.get(f"/admin/matching/userevent/{row.pk}/change/")
    assert detail.status_code == 200 and str(row.event_id).encode() in detail.content


def test_beat_sweeps_the_outbox_with_a_registered_task():
    import workflows.tasks  # noqa: F401 - registers the shared tasks, as the worker's autodiscovery does
    from snowbuddy.celery import app

    app.finalize(auto=True)
    entry = app.conf.beat_schedule["send-user-events"]
    assert entry["task"] in app.tasks and entry["schedule"] > 0
    assert "workflows.tasks.deliver_user_events" in app.tasks  # the after-commit kick's task
