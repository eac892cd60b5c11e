import uuid

import pytest

from matching.models import Search, SearchStatus
from tests.helpers.bodies import BUDDY as VALID
from tests.helpers.errors import error_codes
from tests.helpers.factories import SearchFactory, SearchResultFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def test_another_users_search_is_a_404(owner, another_user, resorts):
    search_id = owner.post("/matching/searches", VALID).json()["search_id"]
    assert error_codes(another_user.get(f"/matching/searches/{search_id}"), 404) == {"not_found"}


@pytest.mark.parametrize("search_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_an_unknown_or_malformed_id_is_a_404(owner, resorts, search_id):
    assert error_codes(owner.get(f"/matching/searches/{search_id}"), 404) == {"not_found"}


def test_results_come_ranked_with_their_breakdown_for_the_current_attempt(owner, resorts):
    search = SearchFactory(status=SearchStatus.SUCCEEDED, attempt=2, result_count=2)
    SearchResultFactory(search=search, attempt=1, rank=1, user_id="old", score=0.9)
    SearchResultFactory(search=search, attempt=2, rank=2, user_id="b", score=0.5)
    top = SearchResultFactory(search=search, attempt=2, rank=1, user_id="a", score=0.6)
    body = owner.get(f"/matching/searches/{search.pk}").json()
    assert [r["user_id"] for r in body["results"]] == ["a", "b"]
    assert body["results"][0]["breakdown"] == top.breakdown


def test_the_list_shows_only_the_callers_searches_newest_first(owner, another_user, resorts):
    mine = [owner.post("/matching/searches", VALID).json()["search_id"] for _ in range(3)]
    another_user.post("/matching/searches", VALID)
    body = owner.get("/matching/searches").json()
    assert body["count"] == 3 and body["next"] is None
    assert [s["search_id"] for s in body["results"]] == list(reversed(mine))


def test_the_list_is_paginated_twenty_a_page(owner, resorts):
    SearchFactory.create_batch(21, seeker_id=owner.user_id)
    first = owner.get("/matching/searches").json()
    assert first["count"] == 21 and len(first["results"]) == 20 and first["next"]
    second = owner.get("/matching/searches", {"page": 2}).json()
    assert len(second["results"]) == 1 and second["next"] is None
    assert not {s["search_id"] for s in first["results"]} & {s["search_id"] for s in second["results"]}


def test_the_list_filters_by_status(owner, resorts):
    first, _second = (owner.post("/matching/searches", VALID).json()["search_id"] for _ in range(2))
    Search.objects.filter(pk=first).update(status=SearchStatus.SUCCEEDED)
    body = owner.get("/matching/searches", {"status": "succeeded"}).json()
    assert [s["search_id"] for s in body["results"]] == [first]
    assert owner.get("/matching/searches", {"status": "bogus"}).status_code == 400


def test_a_page_past_the_end_is_a_404_not_a_500(owner, resorts):
    assert error_codes(owner.get("/matching/searches", {"page": 99}), 404) == {"not_found"}
