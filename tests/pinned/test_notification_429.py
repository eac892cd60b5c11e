"""SnowTrace's notification endpoint answering 429 Too Many Requests is asking for a later try: the
notification is retried with backoff, not dead-lettered. Time is driven through the sweep's `now`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from matching.models import NotificationState, SearchNotification
from matching.services.searches import search_fail
from workflows.dispatch.submit import search_submit
from workflows.outbound.notifications import notifications_deliver_due

pytestmark = pytest.mark.django_db

PREFS = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10}


@pytest.fixture
def search(monkeypatch, resorts):
    monkeypatch.setattr("workflows.dispatch.submit.dispatch_send", lambda **kw: True)
    return search_submit(seeker_id="owner-1", preferences=PREFS)


@pytest.fixture
def receiver(notifications_to, settings):
    settings.MATCHING_NOTIFICATION_BACKOFF_SECONDS = 10
    settings.MATCHING_NOTIFICATION_BACKOFF_MAX_SECONDS = 1000
    settings.MATCHING_NOTIFICATION_RETRY_SECONDS = 3600
    return notifications_to


def test_a_429_from_snowtrace_is_retried_with_backoff_not_dead_lettered(search, receiver):
    receiver.reset(429, 429)
    search_fail(search_id=search.pk, attempt=1, error="boom")
    now = timezone.now()
    waits = []
    for _ in range(2):
        assert notifications_deliver_due(now=now) == 0
        row = SearchNotification.objects.get(search=search, attempt=1)
        assert (row.state, row.last_status_code, row.last_error) == (NotificationState.PENDING, 429, "HTTP 429")
        waits.append((row.next_attempt_at - row.last_attempt_at).total_seconds())
        assert notifications_deliver_due(now=row.next_attempt_at - timedelta(seconds=1)) == 0  # not due yet
        now = row.next_attempt_at
    assert waits == [10, 20]

    assert notifications_deliver_due(now=now) == 1
    row = SearchNotification.objects.get(search=search, attempt=1)
    assert (row.state, row.tries, row.last_status_code) == (NotificationState.DELIVERED, 3, 204)
    assert len(receiver.requests) == 3 and len(receiver.by_webhook_id) == 1
