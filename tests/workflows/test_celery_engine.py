"""The Celery engine end to end: a real worker process, PostgreSQL and Redis."""

import pytest
from django.db import connection

from matching.candidates.cold_path import ROW_FIELDS, to_engine_profile
from matching.engine import ProfileIndex, SearchRequest
from matching.management.demo_profiles import demo_profiles
from matching.models import Search, SearchResult, SearchStatus, SkierProfile
from matching.selectors import resort_regions
from matching.services.keys import api_key_create
from matching.services.profiles import profile_fields
from tests.helpers.dispatch import past_the_grace, stub_dispatch_send, stub_dispatch_send_undo
from tests.helpers.polling import wait_for
from workflows.dispatch.submit import dispatch_sweep
from workflows.models import SearchDispatch

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PREFS = {
    "role": "buddy",
    "skill_level_min": 3,
    "skill_level_max": 8,
    "resorts": ["yuzawa_naeba"],
    "regions": ["Nagano Prefecture"],
    "dates": ["2027-01-05", "2027-01-06"],
    "include_knowledge_score": True,
    "knowledge_score": 60,
    "limit": 25,
}


@pytest.fixture
def profiles(resorts):
    regions = resort_regions()
    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**p)) for p in demo_profiles(800, regions, seed=7))
    return regions


def _status(search_id):
    connection.close()  # see the worker's commits, not a cached snapshot
    return Search.objects.get(pk=search_id).status


def test_a_submitted_search_succeeds_on_a_real_worker_with_the_engines_ranking(
    celery_worker_process, owner, profiles, notification_receiver
):
    response = owner.post("/matching/searches", PREFS)
    assert response.status_code == 202
    search_id = response.json()["search_id"]

    wait_for(lambda: _status(search_id) == SearchStatus.SUCCEEDED, timeout=30, message="the search to succeed")

    body = owner.get(f"/matching/searches/{search_id}").json()
    everyone = [to_engine_profile(row) for row in SkierProfile.objects.values(*ROW_FIELDS)]
    expected = ProfileIndex.build(everyone, profiles).search(SearchRequest.from_preferences("owner-1", PREFS))
    assert len(expected) == 25
    assert [(r["user_id"], r["score"]) for r in body["results"]] == [(m.user_id, m.score) for m in expected]
    assert body["results"][0]["breakdown"]["knowledge"] is not None
    assert SearchDispatch.objects.get(search_id=search_id).sent_at is not None
    wait_for(
        lambda: any(n["search_id"] == search_id for n in notification_receiver[1]),
        timeout=15,
        message="the completion notification",
    )


def test_a_search_whose_dispatch_was_lost_is_sent_by_the_sweeper(
    celery_worker_process, owner, profiles, monkeypatch, settings
):
    # Simulate a crash between commit and send: the after-commit send never happens.
    stub_dispatch_send(monkeypatch, answer=False)
    search_id = owner.post("/matching/searches", PREFS).json()["search_id"]
    stub_dispatch_send_undo(monkeypatch)
    assert _status(search_id) == SearchStatus.PENDING
    assert SearchDispatch.objects.get(search_id=search_id).sent_at is None

    assert dispatch_sweep(now=past_the_grace()) == 1

    wait_for(lambda: _status(search_id) == SearchStatus.SUCCEEDED, timeout=30, message="the swept search to succeed")
    assert SearchResult.objects.filter(search_id=search_id).count() == 25
    assert dispatch_sweep(now=past_the_grace()) == 0


def test_sending_the_same_attempt_twice_runs_it_once(celery_worker_process, owner, profiles):
    from workflows.tasks import run_search

    search_id = owner.post("/matching/searches", PREFS).json()["search_id"]
    wait_for(lambda: _status(search_id) == SearchStatus.SUCCEEDED, timeout=30, message="the search to succeed")
    run_search.apply_async(args=[search_id, 1])
    marker = run_search.apply_async(args=[search_id, 1])
    log_path = celery_worker_process[1]
    wait_for(
        lambda: marker.id in log_path.read_text() and "succeeded in" in log_path.read_text().split(marker.id)[-1],
        timeout=30,
        message="the duplicate task to finish",
    )
    assert SearchResult.objects.filter(search_id=search_id).count() == 25
    assert Search.objects.get(pk=search_id).events.filter(kind="succeeded").count() == 1


def test_a_worker_never_returns_a_profile_closed_or_deleted_before_the_search_was_submitted(
    celery_worker_process, owner, profiles, client
):
    first = owner.post("/matching/searches", PREFS).json()["search_id"]
    wait_for(lambda: _status(first) == SearchStatus.SUCCEEDED, timeout=30, message="the first search")
    top = list(SearchResult.objects.filter(search_id=first).order_by("rank").values_list("user_id", flat=True))

    # SnowTrace's user service closes the best match and deletes the second, through the push API.
    service = {"X-API-Key": api_key_create(name="user-service", is_trusted_service=True)[1]}
    assert client.post(f"/matching/profiles/{top[0]}:close", headers=service).status_code == 200
    assert client.delete(f"/matching/profiles/{top[1]}", headers=service).status_code == 204

    second = owner.post("/matching/searches", PREFS).json()["search_id"]
    wait_for(lambda: _status(second) == SearchStatus.SUCCEEDED, timeout=30, message="the second search")
    after = list(SearchResult.objects.filter(search_id=second).order_by("rank").values_list("user_id", flat=True))
    assert top[0] not in after and top[1] not in after
    remaining = [
        to_engine_profile(row) for row in SkierProfile.objects.filter(open_to_matching=True).values(*ROW_FIELDS)
    ]
    expected = ProfileIndex.build(remaining, profiles).search(SearchRequest.from_preferences("owner-1", PREFS))
    assert after == [m.user_id for m in expected]
