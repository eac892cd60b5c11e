"""Vetting on the Celery engine, in process: the run parks the search on the simulated GlobalCoach
(on loopback), and the answer, staff or the deadline finishes it. The end-to-end tests with a real
worker and a live console are in tests/compat/test_celery_vetting_end_to_end.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from matching.candidates.cold_path import ROW_FIELDS, to_engine_profile
from matching.engine import ProfileIndex, SearchRequest
from matching.management.demo_profiles import demo_profiles
from matching.models import Search, SearchStatus, SearchVetting, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from matching.services.searches import searches_expire_overdue
from tests.helpers.dispatch import stub_dispatch_send, stub_dispatch_send_undo
from tests.helpers.errors import error_codes
from workflows.celery_engine.run import search_run_on_celery
from workflows.celery_engine.vetting import vetting_requests_send_due
from workflows.dispatch.submit import search_cancel, search_submit
from workflows.staff_actions import InterventionNotAllowed, search_intervene

pytestmark = pytest.mark.django_db

COACH = {
    "role": "coach", "skill_level_min": 5, "skill_level_max": 10, "resorts": [], "regions": ["Nagano Prefecture"],
    "dates": [], "include_knowledge_score": False, "knowledge_score": None, "required_certifications": [],
    "vetting_required": True, "limit": 20,
}  # fmt: skip


@pytest.fixture
def profiles(resorts):
    regions = resort_regions()
    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**p)) for p in demo_profiles(400, regions, seed=3))


@pytest.fixture
def parked(profiles, globalcoach, monkeypatch, settings):
    """A vetted coach search, run once: it waits on GlobalCoach (which, in staff mode, never answers)."""
    settings.MATCHING_VETTING_TOP_N = 5
    stub_dispatch_send(monkeypatch)
    search = search_submit(seeker_id="owner-1", preferences=COACH)
    outcome = search_run_on_celery(search_id=str(search.pk), attempt=1)
    assert outcome == "awaiting vetting of 5 candidate(s); request sent"
    search.refresh_from_db()
    return search


def _ranking() -> list:
    everyone = [to_engine_profile(row) for row in SkierProfile.objects.values(*ROW_FIELDS)]
    return ProfileIndex.build(everyone, resort_regions()).search(SearchRequest.from_preferences("owner-1", COACH))


def _sent(globalcoach) -> dict:
    (request,) = globalcoach.requests.values()
    return request


def _answer(client, search, token, approved, rejected=()):
    body = {"token": token, "approved_user_ids": list(approved), "rejected_user_ids": list(rejected)}
    return client.post(f"/webhooks/globalcoach/{search.pk}", body, content_type="application/json")


def test_the_run_parks_the_search_with_the_top_candidates_sent_to_globalcoach(parked, globalcoach):
    assert parked.status == SearchStatus.AWAITING_VETTING
    vetting = SearchVetting.objects.get(search=parked)
    top = [m.user_id for m in _ranking()[:5]]
    assert vetting.candidate_ids == top and vetting.requested_at is not None
    assert vetting.deadline_at == parked.deadline_at
    sent = _sent(globalcoach)
    assert sent.candidate_ids == top
    assert sent.callback_url.endswith(f"/webhooks/globalcoach/{parked.pk}")
    assert vetting.token_sha256 and sent.token not in (vetting.token_sha256, vetting.token_nonce)


def test_the_approved_candidates_are_the_results_re_ranked(parked, globalcoach, client):
    top = SearchVetting.objects.get(search=parked).candidates
    approved = [top[3]["user_id"], top[1]["user_id"]]
    response = _answer(client, parked, _sent(globalcoach).token, approved, [top[0]["user_id"]])
    assert response.status_code == 202 and response.json() == {"accepted": True, "outcome": "succeeded"}
    parked.refresh_from_db()
    assert parked.status == SearchStatus.SUCCEEDED
    results = list(parked.results.order_by("rank").values_list("rank", "user_id", "score"))
    assert results == [(1, top[1]["user_id"], top[1]["score"]), (2, top[3]["user_id"], top[3]["score"])]
    assert _answer(client, parked, _sent(globalcoach).token, approved).json() == {
        "accepted": False,
        "reason": "already_answered",
    }


def test_nobody_approved_fails_the_search_as_rejected(parked, globalcoach, client):
    ids = SearchVetting.objects.get(search=parked).candidate_ids
    assert _answer(client, parked, _sent(globalcoach).token, ["somebody-else"], ids).status_code == 202
    parked.refresh_from_db()
    assert parked.status == SearchStatus.FAILED and parked.error.startswith("vetting_rejected")


@pytest.mark.parametrize("token", ["", "wrong-token", "x" * 600])
def test_a_callback_without_the_right_token_is_a_401_and_changes_nothing(parked, client, token):
    response = _answer(client, parked, token, [])
    assert error_codes(response, 401) == {"invalid_token"}
    parked.refresh_from_db()
    assert parked.status == SearchStatus.AWAITING_VETTING


def test_a_malformed_answer_is_a_400(parked, globalcoach, client):
    body = {"token": _sent(globalcoach).token, "approved_user_ids": "everyone"}
    response = client.post(f"/webhooks/globalcoach/{parked.pk}", body, content_type="application/json")
    assert response.status_code == 400


def test_no_answer_before_the_deadline_times_the_search_out(parked, globalcoach, client):
    Search.objects.filter(pk=parked.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    assert searches_expire_overdue() == 1
    parked.refresh_from_db()
    assert parked.status == SearchStatus.TIMED_OUT and parked.error.startswith("vetting_timeout")
    late = _answer(client, parked, _sent(globalcoach).token, SearchVetting.objects.get(search=parked).candidate_ids)
    assert late.status_code == 409
    parked.refresh_from_db()
    assert parked.status == SearchStatus.TIMED_OUT


def test_a_cancelled_search_ignores_a_late_answer(parked, globalcoach, client):
    assert search_cancel(search=parked, reason="no longer needed", acting_user="user:owner-1")
    assert _answer(client, parked, _sent(globalcoach).token, ["x"]).status_code == 409


def test_staff_approve_some_candidates_in_globalcoachs_place(parked):
    ids = SearchVetting.objects.get(search=parked).candidate_ids
    answer = search_intervene(search=parked, decision="approve", acting_user="staff:op", approved_user_ids=ids[:2])
    assert answer["accepted"] and answer["outcome"] == "succeeded"
    parked.refresh_from_db()
    assert list(parked.results.order_by("rank").values_list("user_id", flat=True)) == ids[:2]
    assert parked.events.filter(kind="intervened", actor="staff:op").exists()


def test_staff_reject_fails_the_search(parked):
    search_intervene(search=parked, decision="reject", acting_user="staff:op", note="licences expired")
    parked.refresh_from_db()
    assert parked.status == SearchStatus.FAILED and parked.error == "vetting_rejected: licences expired"


@pytest.mark.parametrize(
    ("decision", "approved"),
    [("approve", []), ("approve", ["not-a-candidate"]), ("reject", ["someone"])],
)
def test_a_staff_decision_that_does_not_fit_is_refused(parked, decision, approved):
    with pytest.raises(InterventionNotAllowed):
        search_intervene(search=parked, decision=decision, acting_user="staff:op", approved_user_ids=approved)
    parked.refresh_from_db()
    assert parked.status == SearchStatus.AWAITING_VETTING


def test_staff_cannot_answer_a_search_that_is_not_waiting(parked):
    search_intervene(search=parked, decision="approve", acting_user="staff:op")
    parked.refresh_from_db()
    with pytest.raises(InterventionNotAllowed):
        search_intervene(search=parked, decision="approve", acting_user="staff:op")


def test_an_unreachable_globalcoach_is_retried_by_beat_then_fails_the_search(
    profiles, globalcoach, monkeypatch, settings
):
    settings.MATCHING_VETTING_URL = "http://127.0.0.1:9"  # nothing listens on port 9
    settings.MATCHING_VETTING_REQUEST_MAX_TRIES = 3
    stub_dispatch_send(monkeypatch)
    search = search_submit(seeker_id="owner-1", preferences=COACH)
    assert search_run_on_celery(search_id=str(search.pk), attempt=1).endswith("request retry")
    vetting = SearchVetting.objects.get(search=search)
    assert vetting.request_tries == 1 and "unreachable" in vetting.request_error
    assert vetting_requests_send_due() == 0  # not due yet: backoff
    vetting_requests_send_due(now=vetting.request_next_at)
    vetting.refresh_from_db()
    assert vetting.request_tries == 2
    vetting_requests_send_due(now=vetting.request_next_at)
    search.refresh_from_db()
    assert search.status == SearchStatus.FAILED and search.error.startswith("vetting_unavailable")


def test_a_request_lost_before_it_was_sent_goes_out_with_the_beat_sweep(profiles, globalcoach, monkeypatch):
    stub_dispatch_send(monkeypatch)
    monkeypatch.setattr("workflows.celery_engine.vetting.vetting_request_send", lambda **kw: "crashed before sending")
    search = search_submit(seeker_id="owner-1", preferences=COACH)
    search_run_on_celery(search_id=str(search.pk), attempt=1)
    stub_dispatch_send_undo(monkeypatch)
    assert globalcoach.requests == {}
    assert vetting_requests_send_due() == 1
    assert len(globalcoach.requests) == 1
    assert vetting_requests_send_due() == 0


def test_a_vetted_search_with_no_candidates_succeeds_empty_without_asking(resorts, globalcoach, monkeypatch):
    stub_dispatch_send(monkeypatch)
    search = search_submit(seeker_id="owner-1", preferences=COACH)
    assert search_run_on_celery(search_id=str(search.pk), attempt=1).startswith("succeeded with 0 results")
    assert globalcoach.requests == {}
