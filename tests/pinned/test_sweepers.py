"""The two sweepers that send attempts again leave alone what is still in good hands: a lease
renewed after the recovery sweep listed it, and a dispatch record the after-commit relay may still
send. Time is passed to the sweeps (`now=`), not slept through."""

from datetime import timedelta

import pytest
from django.utils import timezone

from matching.engine import Breakdown, Match
from matching.models import Search, SearchStatus
from matching.services.leases import search_claim, search_lease_expire, search_lease_renew
from matching.services.searches import search_succeed
from workflows.celery_engine.recovery import leases_recover_expired
from workflows.dispatch.submit import dispatch_sweep, search_submit
from workflows.models import SearchDispatch

pytestmark = pytest.mark.django_db

PREFS = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "resorts": [], "regions": [], "dates": [],
         "include_knowledge_score": False, "knowledge_score": None, "required_certifications": [],
         "vetting_required": False, "limit": 20}  # fmt: skip
MATCH = Match(user_id="u1", score=0.8, breakdown=Breakdown(1.0, 1.0, 0.2, 1.0, None), rank=1)


@pytest.fixture
def sent(monkeypatch):
    """Dispatch records handed to the engine (the broker is the far side here)."""
    calls: list[int] = []
    monkeypatch.setattr("workflows.dispatch.submit.dispatch_send", lambda **kw: calls.append(kw["dispatch_id"]) or True)
    return calls


@pytest.fixture
def search(sent, resorts):
    return search_submit(seeker_id="owner-1", preferences=PREFS)


def test_a_lease_renewed_between_the_sweeps_query_and_its_update_is_not_taken_back(search, sent, monkeypatch):
    worker = search_claim(search_id=search.pk, attempt=1, worker="celery:slow")
    Search.objects.filter(pk=search.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    SearchDispatch.objects.filter(search=search).update(sent_at=timezone.now())

    def heartbeat_lands_first(**kwargs):
        # The worker's heartbeat commits after the sweep listed the lease as expired, before its row update.
        assert search_lease_renew(search_id=search.pk, attempt=1, generation=worker.claim_generation, lease_seconds=60)
        return search_lease_expire(**kwargs)

    monkeypatch.setattr("workflows.celery_engine.recovery.search_lease_expire", heartbeat_lands_first)

    assert leases_recover_expired() == {"resent": 0, "failed": 0}

    search.refresh_from_db()
    assert (search.status, search.claim_generation, search.lease_owner) == ("running", 1, "celery:slow")
    assert search.lease_expires_at > timezone.now() + timedelta(seconds=50)
    assert not search.events.filter(kind="lease_expired").exists()
    assert SearchDispatch.objects.get(search=search).sent_at is not None and sent == []
    # The worker that kept its lease still finishes its attempt.
    assert search_succeed(search_id=search.pk, attempt=1, matches=[MATCH], generation=worker.claim_generation)
    assert Search.objects.get(pk=search.pk).status == SearchStatus.SUCCEEDED


def test_the_dispatch_sweeper_leaves_a_record_younger_than_its_default_grace_to_the_relay(search, sent, settings):
    assert settings.DISPATCH_GRACE_SECONDS == 20, "the default grace (DISPATCH_GRACE_SECONDS unset)"
    dispatch = SearchDispatch.objects.get(search=search)
    assert dispatch.sent_at is None and sent == []  # the after-commit relay has not sent it (no commit here)

    assert dispatch_sweep(now=dispatch.created_at + timedelta(seconds=19)) == 0
    assert sent == []

    assert dispatch_sweep(now=dispatch.created_at + timedelta(seconds=20)) == 1
    assert sent == [dispatch.pk]
