"""Completion notifications to SnowTrace against a receiver on loopback that fails, stalls and recovers.

The receiver (tests/helpers/webhook_receiver.py) verifies every delivery with the `standardwebhooks`
reference library and acts once per `webhook-id`, as SnowTrace's receiver must. Time is driven
through the sweep's `now`, so backoffs are asserted, not slept through.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from matching.engine import Breakdown, Match
from matching.models import Engine, NotificationState, Search, SearchNotification, SearchStatus
from matching.services.leases import search_claim
from matching.services.profiles import profile_upsert
from matching.services.searches import search_fail, search_succeed
from tests.helpers.bodies import OPEN_BUDDY as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.polling import wait_for
from workflows.dispatch.submit import search_cancel, search_retry, search_submit
from workflows.outbound.notifications import notification_body, notification_deliver, notifications_deliver_due

pytestmark = pytest.mark.django_db

MATCH = Match(user_id="c1", score=0.83, breakdown=Breakdown(1.0, 1.0, 0.2, 1.0, None), rank=1)


@pytest.fixture
def search(monkeypatch, resorts):
    stub_dispatch_send(monkeypatch)
    return search_submit(seeker_id="owner-1", preferences=PREFS)


@pytest.fixture
def receiver(notifications_to, settings):
    settings.MATCHING_NOTIFICATION_BACKOFF_SECONDS = 10
    settings.MATCHING_NOTIFICATION_BACKOFF_MAX_SECONDS = 1000
    settings.MATCHING_NOTIFICATION_RETRY_SECONDS = 3600
    return notifications_to


def _succeed(search):
    profile_upsert(user_id="c1", nickname="Yuki", skill_level=7, role="coach")
    search_claim(search_id=search.pk, attempt=search.attempt)
    search_succeed(search_id=search.pk, attempt=search.attempt, matches=[MATCH], nicknames={"c1": "Yuki"})


def _row(search, attempt=1) -> SearchNotification:
    return SearchNotification.objects.get(search=search, attempt=attempt)


def test_a_finished_attempt_is_delivered_signed_with_search_id_status_and_payload(search, receiver):
    _succeed(search)
    assert notifications_deliver_due() == 1
    (body,) = receiver.for_search(search.pk)
    assert body == {
        "search_id": str(search.pk),
        "attempt": 1,
        "status": "succeeded",
        "payload": {
            "seeker_id": "owner-1",
            "finished_at": body["payload"]["finished_at"],
            "error": None,
            "result_count": 1,
            "results": [
                {"user_id": "c1", "nickname": "Yuki", "skill_level": 7, "self_role": "coach", "match_score": 0.83}
            ],
        },
    }
    assert receiver.rejected == []  # the reference library verified the signature
    row = _row(search)
    assert (row.state, row.tries, row.last_status_code) == (NotificationState.DELIVERED, 1, 204)
    assert receiver.requests[0][1] == row.webhook_id == f"msg_{search.pk.hex}_1"


def test_a_delivered_notification_is_not_sent_again(search, receiver):
    search_fail(search_id=search.pk, attempt=1, error="boom")
    assert notifications_deliver_due() == 1
    assert notifications_deliver_due(now=timezone.now() + timedelta(days=2)) == 0
    assert len(receiver.requests) == 1


def test_every_finished_attempt_gets_its_own_webhook_id_and_arrives_once(search, receiver):
    search_fail(search_id=search.pk, attempt=1, error="boom")
    search_retry(search=search, acting_user="staff:op", reason="again")
    search.refresh_from_db()
    search_cancel(search=search, reason="enough", acting_user="user:owner-1")
    assert notifications_deliver_due() == 2
    assert sorted(receiver.by_webhook_id) == [f"msg_{search.pk.hex}_1", f"msg_{search.pk.hex}_2"]
    assert [b["status"] for b in receiver.for_search(search.pk)] == ["failed", "cancelled"]
    assert receiver.by_webhook_id[f"msg_{search.pk.hex}_1"]["payload"]["error"] is None  # not the current attempt


def test_a_failing_receiver_is_retried_with_exponential_backoff_until_it_recovers(search, receiver):
    receiver.reset(500, 503, 502)
    search_fail(search_id=search.pk, attempt=1, error="boom")
    now = timezone.now()
    waits = []
    for _ in range(3):
        assert notifications_deliver_due(now=now) == 0
        row = _row(search)
        assert row.state == NotificationState.PENDING and row.last_error.startswith("HTTP 5")
        waits.append((row.next_attempt_at - row.last_attempt_at).total_seconds())
        assert notifications_deliver_due(now=row.next_attempt_at - timedelta(seconds=1)) == 0  # not due yet
        now = row.next_attempt_at
    assert waits == [10, 20, 40]
    assert notifications_deliver_due(now=now) == 1
    row = _row(search)
    assert (row.state, row.tries, row.last_error) == (NotificationState.DELIVERED, 4, "")
    assert len(receiver.by_webhook_id) == 1 and len(receiver.requests) == 4


def test_a_stalled_receiver_times_out_the_try_and_dedupes_the_late_copy(search, receiver):
    receiver.reset(("stall", 2.5))
    search_fail(search_id=search.pk, attempt=1, error="boom")
    assert notifications_deliver_due() == 0
    row = _row(search)
    assert row.state == NotificationState.PENDING and "no answer within 1s" in row.last_error
    assert notifications_deliver_due(now=row.next_attempt_at) == 1
    # The stalled request still lands at the receiver later: two copies, one webhook-id, acted on once.
    wait_for(lambda: len(receiver.for_search(search.pk)) == 2, timeout=10, message="the late stalled copy")
    assert list(receiver.by_webhook_id) == [row.webhook_id]


def test_after_the_retry_period_a_notification_is_dead_lettered(search, receiver, settings):
    settings.MATCHING_NOTIFICATION_RETRY_SECONDS = 60  # tries at 0, 10, 30 s; the next (70 s) is too late
    receiver.reset(*([500] * 10))
    search_fail(search_id=search.pk, attempt=1, error="boom")
    now = timezone.now()
    outcomes = []
    while _row(search).state == NotificationState.PENDING:
        assert len(outcomes) < 10
        outcomes.append(notification_deliver(notification_id=_row(search).pk, now=now))
        now = _row(search).next_attempt_at or now
    assert outcomes == ["retry", "retry", "dead_letter"]
    row = _row(search)
    assert row.tries == 3 and row.next_attempt_at is None and row.sent_at is None
    assert notifications_deliver_due(now=now + timedelta(days=1)) == 0


@pytest.mark.parametrize("refusal", [400, 401, 404, 410])
def test_a_client_error_is_dead_lettered_at_once(search, receiver, refusal):
    receiver.reset(refusal)
    search_fail(search_id=search.pk, attempt=1, error="boom")
    assert notifications_deliver_due() == 0
    row = _row(search)
    assert (row.state, row.last_status_code) == (NotificationState.DEAD_LETTER, refusal)


def test_staff_redeliver_a_dead_letter_from_the_admin(search, receiver, client, staff_operator):
    receiver.reset(410)
    search_fail(search_id=search.pk, attempt=1, error="boom")
    notifications_deliver_due()
    row = _row(search)
    assert row.state == NotificationState.DEAD_LETTER

    from django.contrib.auth.models import Permission

    staff_operator.user_permissions.add(Permission.objects.get(codename="view_searchnotification"))
    client.force_login(staff_operator)
    page = client.get("/admin/matching/searchnotification/")
    assert page.status_code == 200 and b"Dead letter" in page.content
    assert b'value="redeliver"' not in page.content  # viewing is not redelivering
    staff_operator.user_permissions.add(Permission.objects.get(codename="redeliver_searchnotification"))
    staff_operator = type(staff_operator).objects.get(pk=staff_operator.pk)  # a fresh permission cache
    client.force_login(staff_operator)
    response = client.post(
        "/admin/matching/searchnotification/", {"action": "redeliver", "_selected_action": [row.pk]}, follow=True
    )
    assert b"Queued 1 notification for redelivery" in response.content
    row.refresh_from_db()
    assert row.state == NotificationState.PENDING and row.retry_until is None
    assert search.events.filter(kind="notification_redelivery", actor="staff:operator").exists()
    again = client.post(
        "/admin/matching/searchnotification/", {"action": "redeliver", "_selected_action": [row.pk]}, follow=True
    )
    assert b"Queued 0 notifications for redelivery" in again.content
    assert b"1 already pending: left to its next try." in again.content  # tried anyway, at its next try

    assert notifications_deliver_due() == 1
    assert receiver.by_webhook_id[row.webhook_id]["status"] == "failed"
    detail = client.get(f"/admin/matching/searchnotification/{row.pk}/change/")
    assert detail.status_code == 200 and row.webhook_id.encode() in detail.content


def test_a_try_in_progress_is_not_sent_twice_by_a_racing_sweep(search, receiver):
    search_fail(search_id=search.pk, attempt=1, error="boom")
    row = _row(search)
    now = timezone.now()
    # What the first sender's claim leaves behind: due again only after the try's timeout.
    SearchNotification.objects.filter(pk=row.pk).update(next_attempt_at=now + timedelta(seconds=6))
    assert notification_deliver(notification_id=row.pk, now=now) == "skipped"
    assert receiver.requests == []


def test_the_body_is_the_same_bytes_on_every_try(search, receiver):
    _succeed(search)
    row = _row(search)
    assert notification_body(row) == notification_body(row)


def test_a_finishing_transition_kicks_a_prompt_delivery_after_commit(
    search, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        "workflows.outbound.outbox.current_app.send_task", lambda name, args, **kw: sent.append((name, args))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        search_cancel(search=search, reason="enough", acting_user="user:owner-1")
    assert sent == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert ("workflows.tasks.deliver_notifications", [str(search.pk)]) in sent
    assert _row(search).status == SearchStatus.CANCELLED


def test_a_durable_search_finished_by_its_callback_is_notified_the_same_way(
    search, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from workflows.durable_console.callbacks import workflow_callback_apply

    Search.objects.filter(pk=search.pk).update(engine=Engine.DURABLE)  # callbacks apply to durable searches only
    sent = []
    monkeypatch.setattr("workflows.outbound.outbox.current_app.send_task", lambda name, args, **kw: sent.append(args))
    body = {"search_id": str(search.pk), "attempt": 1, "status": "failed", "version": 3, "payload": {"error": "x"}}
    with django_capture_on_commit_callbacks(execute=True):
        assert workflow_callback_apply(webhook_id="msg_durable_1", body=body) == "applied"
    assert sent == [[str(search.pk)]]
    assert notifications_deliver_due() == 1
    assert receiver.by_webhook_id[_row(search).webhook_id]["status"] == "failed"
