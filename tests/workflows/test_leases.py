"""Worker leases: a claim takes a lease, a running worker renews it, an expired one is sent again
under a new generation, and a lost generation can no longer finish the attempt."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from matching.engine import Breakdown, Match
from matching.models import Search, SearchResult, SearchStatus
from matching.services.leases import search_claim
from matching.services.searches import search_mark_dispatched, search_succeed
from tests.helpers.bodies import OPEN_BUDDY as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.polling import wait_for
from workflows.celery_engine.heartbeat import LeaseHeartbeat
from workflows.celery_engine.recovery import leases_recover_expired
from workflows.celery_engine.run import search_run_on_celery
from workflows.dispatch.submit import search_submit
from workflows.models import SearchDispatch

pytestmark = pytest.mark.django_db

MATCH = Match(user_id="u1", score=0.8, breakdown=Breakdown(1.0, 1.0, 0.2, 1.0, None), rank=1)


@pytest.fixture
def sent(monkeypatch):
    """Dispatch records handed to the engine (the broker is the far side here)."""
    calls: list[int] = []
    stub_dispatch_send(monkeypatch, record=calls)
    return calls


@pytest.fixture
def search(sent, resorts):
    return search_submit(seeker_id="owner-1", preferences=PREFS)


def expire_lease(search, seconds_ago: float = 1) -> None:
    Search.objects.filter(pk=search.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=seconds_ago))


def test_a_claim_takes_a_lease_under_a_new_generation(search, settings):
    settings.MATCHING_LEASE_SECONDS = 20
    claimed = search_claim(search_id=search.pk, attempt=1, worker="celery:w1")
    assert (claimed.status, claimed.claim_generation, claimed.lease_owner) == ("running", 1, "celery:w1")
    assert timedelta(seconds=18) < claimed.lease_expires_at - timezone.now() <= timedelta(seconds=20)


def test_a_redelivered_message_is_refused_while_a_live_worker_holds_the_lease(search):
    assert search_claim(search_id=search.pk, attempt=1, worker="celery:slow")
    assert search_claim(search_id=search.pk, attempt=1, worker="celery:other") is None
    assert search_run_on_celery(search_id=str(search.pk), attempt=1).startswith("skipped")
    search.refresh_from_db()
    assert (search.claim_generation, search.lease_owner) == (1, "celery:slow")


def test_a_running_search_whose_lease_expired_is_claimed_again_by_the_next_worker(search):
    assert search_claim(search_id=search.pk, attempt=1, worker="celery:dead")
    expire_lease(search)

    again = search_claim(search_id=search.pk, attempt=1, worker="celery:next")

    assert again is not None and (again.claim_generation, again.lease_owner) == (2, "celery:next")
    taken = search.events.filter(kind="claimed").last()
    assert "taking over from celery:dead whose lease expired" in taken.detail


def test_a_worker_whose_lease_was_taken_over_cannot_finish_the_attempt(search):
    first = search_claim(search_id=search.pk, attempt=1, worker="celery:slow")
    expire_lease(search)
    second = search_claim(search_id=search.pk, attempt=1, worker="celery:next")

    assert not search_succeed(search_id=search.pk, attempt=1, matches=[MATCH], generation=first.claim_generation)
    assert search_succeed(search_id=search.pk, attempt=1, matches=[MATCH], generation=second.claim_generation)
    assert SearchResult.objects.filter(search=search).count() == 1
    assert search.events.filter(kind="succeeded").count() == 1


def test_an_expired_lease_sends_the_same_attempt_again_under_a_new_generation(search, sent, settings):
    settings.MATCHING_DISPATCH_RELAY = "inline"
    search_claim(search_id=search.pk, attempt=1, worker="celery:dead")
    SearchDispatch.objects.filter(search=search).update(sent_at=timezone.now())
    expire_lease(search, seconds_ago=5)

    assert leases_recover_expired() == {"resent": 1, "failed": 0}

    search.refresh_from_db()
    assert (search.status, search.attempt, search.claim_generation, search.lease_expires_at) == (
        "dispatched",
        1,
        2,
        None,
    )
    assert SearchDispatch.objects.get(search=search).sent_at is None  # the sweeper's, should the send fail
    expired = search.events.get(kind="lease_expired")
    assert "lease of celery:dead expired 5s ago" in expired.detail and (expired.from_status, expired.to_status) == (
        "running",
        "dispatched",
    )
    assert leases_recover_expired() == {"resent": 0, "failed": 0}  # nothing twice


def test_a_message_never_claimed_from_the_queue_is_sent_again_each_time_twice_as_late(search, settings):
    settings.MATCHING_QUEUE_LEASE_SECONDS = 30
    search_mark_dispatched(search_id=search.pk, attempt=1, queue_lease_seconds=30)
    expire_lease(search)

    assert leases_recover_expired()["resent"] == 1

    search.refresh_from_db()
    assert search.status == "dispatched" and search.claim_generation == 1
    assert "not claimed from the queue" in search.events.get(kind="lease_expired").detail
    from workflows.dispatch.submit import _queue_lease_seconds

    assert [_queue_lease_seconds(n) for n in (1, 2, 3, 10)] == [30, 60, 120, 3600]


def test_an_attempt_that_keeps_losing_its_worker_fails_instead_of_running_forever(search, settings):
    settings.MATCHING_LEASE_MAX_CLAIMS = 2
    assert search_claim(search_id=search.pk, attempt=1)
    expire_lease(search)
    assert leases_recover_expired() == {"resent": 1, "failed": 0}
    assert search_claim(search_id=search.pk, attempt=1)
    expire_lease(search)

    assert leases_recover_expired() == {"resent": 0, "failed": 1}

    search.refresh_from_db()
    assert search.status == SearchStatus.FAILED and "lost its worker 2 times" in search.error


def test_a_search_past_its_deadline_times_out_instead_of_running(search):
    Search.objects.filter(pk=search.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))

    assert search_run_on_celery(search_id=str(search.pk), attempt=1) == "timed out before running"

    search.refresh_from_db()
    assert search.status == SearchStatus.TIMED_OUT and search.lease_expires_at is None
    assert not SearchResult.objects.filter(search=search).exists()


def test_finishing_clears_the_lease(search):
    claimed = search_claim(search_id=search.pk, attempt=1)
    assert search_succeed(search_id=search.pk, attempt=1, matches=[MATCH], generation=claimed.claim_generation)
    search.refresh_from_db()
    assert search.lease_expires_at is None


@pytest.mark.django_db(transaction=True)
def test_a_slow_worker_keeps_its_lease_alive_and_is_never_sent_again(search, settings):
    claimed = search_claim(search_id=search.pk, attempt=1, worker="celery:slow", lease_seconds=2)
    first_expiry = claimed.lease_expires_at

    with LeaseHeartbeat(claimed, renew_every=0.3, lease_seconds=2) as heartbeat:
        # Well past the original lease, the sweeper finds nothing to take back.
        wait_for(
            lambda: timezone.now() > first_expiry + timedelta(seconds=1), timeout=10, message="the first lease to pass"
        )
        assert leases_recover_expired() == {"resent": 0, "failed": 0}
        assert not heartbeat.lost.is_set()

    search.refresh_from_db()
    assert search.lease_expires_at > first_expiry and search.claim_generation == 1
    assert not search.events.filter(kind="lease_expired").exists()
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_that_finds_its_lease_taken_says_so(search):
    claimed = search_claim(search_id=search.pk, attempt=1, worker="celery:partitioned", lease_seconds=5)
    with LeaseHeartbeat(claimed, renew_every=0.2, lease_seconds=5) as heartbeat:
        Search.objects.filter(pk=search.pk).update(claim_generation=7)  # another worker took it meanwhile
        wait_for(heartbeat.lost.is_set, timeout=10, message="the heartbeat to notice")
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_leaving_a_run_by_an_error_gives_the_lease_up_at_once(search):
    claimed = search_claim(search_id=search.pk, attempt=1, worker="celery:w1", lease_seconds=60)
    with pytest.raises(RuntimeError), LeaseHeartbeat(claimed, renew_every=5):
        raise RuntimeError("database blinked")
    assert search_claim(search_id=search.pk, attempt=1, worker="celery:retry") is not None  # no 60 s wait
    connection.close()
