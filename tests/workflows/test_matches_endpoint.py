"""The durable workflow's feed: the console ranks a search on its warm index and answers the top K."""

import pytest

from matching.candidates.cold_path import ROW_FIELDS, to_engine_profile
from matching.engine import ProfileIndex, SearchRequest
from matching.management.demo_profiles import demo_profiles
from matching.models import SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_close, profile_delete, profile_fields
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.errors import error_codes
from workflows.dispatch.submit import search_submit

pytestmark = pytest.mark.django_db

TOKEN = "internal-token-for-tests"
PREFS = {
    "role": "buddy",
    "skill_level_min": 2,
    "skill_level_max": 9,
    "resorts": ["yuzawa_naeba"],
    "regions": ["Nagano Prefecture"],
    "include_knowledge_score": True,
    "knowledge_score": 55,
    "limit": 15,
}


@pytest.fixture
def search(resorts, settings, monkeypatch):
    settings.MATCHING_INTERNAL_TOKEN = TOKEN
    settings.MATCHING_INDEX_STALENESS_MS = 0
    stub_dispatch_send(monkeypatch)
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(500, resort_regions(), seed=9)
    )
    return search_submit(seeker_id="u000005", preferences=PREFS)


def _get(client, search, token=TOKEN):
    return client.get(f"/internal/searches/{search.pk}/matches", headers={"Authorization": f"Bearer {token}"})


def _engine_ranking(seeker_id: str):
    everyone = [
        to_engine_profile(row) for row in SkierProfile.objects.filter(open_to_matching=True).values(*ROW_FIELDS)
    ]
    request = SearchRequest.from_preferences(seeker_id, PREFS)
    return ProfileIndex.build(everyone, resort_regions()).search_counted(request)


def test_the_feed_answers_the_engines_top_k_with_nicknames_and_the_match_count(client, search):
    response = _get(client, search)
    assert response.status_code == 200
    body = response.json()
    expected, count = _engine_ranking("u000005")
    assert [(m["user_id"], m["score"], m["rank"], m["breakdown"]) for m in body["matches"]] == [
        (m.user_id, m.score, m.rank, m.breakdown.to_dict()) for m in expected
    ]
    assert len(body["matches"]) == 15 and body["candidate_count"] == count > 15
    nicknames = dict(SkierProfile.objects.values_list("user_id", "nickname"))
    assert all(m["nickname"] == nicknames[m["user_id"]] for m in body["matches"])
    assert body["indexed_profiles"] == SkierProfile.objects.filter(open_to_matching=True).count()
    assert "u000005" not in {m["user_id"] for m in body["matches"]}


def test_the_feed_drops_a_closed_and_a_deleted_profile_once_committed(client, search):
    top = [m["user_id"] for m in _get(client, search).json()["matches"]]
    profile_close(user_id=top[0])
    profile_delete(user_id=top[1])
    after = [m["user_id"] for m in _get(client, search).json()["matches"]]
    assert top[0] not in after and top[1] not in after
    assert after == [m.user_id for m in _engine_ranking("u000005")[0]]


@pytest.mark.parametrize("token", ["", "wrong", TOKEN + "x"])
def test_a_wrong_service_token_is_a_401(client, search, token):
    assert error_codes(_get(client, search, token=token), 401) == {"authentication_failed"}


def test_an_unknown_search_is_a_404(client, search):
    response = client.get(
        "/internal/searches/8d3e4c52-9d43-4c2e-9c1a-4f0f9a9b7c11/matches", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert error_codes(response, 404) == {"unknown_search"}
