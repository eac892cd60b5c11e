"""Keys have a limit of their own and a name in the record: the search and its audit say which key acted."""

import pytest

from matching.api.throttling import SearchSubmitKeyThrottle, SearchSubmitThrottle
from matching.models import ApiClientKey, Search, SearchEvent
from matching.services.keys import api_key_create
from tests.conftest import SnowTraceClient
from tests.helpers.bodies import BUDDY as VALID
from tests.helpers.errors import error_codes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def test_one_key_rotating_user_ids_meets_the_per_key_limit(client, api_key, resorts, monkeypatch):
    monkeypatch.setitem(SearchSubmitKeyThrottle.THROTTLE_RATES, "search_submit_key", "3/min")
    for n in range(3):
        assert SnowTraceClient(client, api_key, f"rotating-{n}").post("/matching/searches", VALID).status_code == 202
    throttled = SnowTraceClient(client, api_key, "rotating-3").post("/matching/searches", VALID)
    assert error_codes(throttled, 429) == {"throttled"}
    assert int(throttled["Retry-After"]) > 0
    # Another key is not held back by the first one's traffic.
    _, other_key = api_key_create(name="other-backend", is_trusted_service=True)
    assert SnowTraceClient(client, other_key, "rotating-3").post("/matching/searches", VALID).status_code == 202
    assert Search.objects.count() == 4


def test_the_per_user_limit_still_holds_under_the_key_limit(owner, resorts, monkeypatch):
    monkeypatch.setitem(SearchSubmitThrottle.THROTTLE_RATES, "search_submit", "2/min")
    assert [owner.post("/matching/searches", VALID).status_code for _ in range(3)] == [202, 202, 429]


def test_the_search_and_its_submitted_event_name_the_key(owner, resorts):
    search_id = owner.post("/matching/searches", VALID).json()["search_id"]
    key = ApiClientKey.objects.get()
    search = Search.objects.get(pk=search_id)
    assert search.api_key == key
    event = SearchEvent.objects.get(search=search, kind="submitted")
    assert event.actor == f"user:owner-1 via key:{key.prefix}"
    assert f"api_key={key.prefix} (snowtrace-test)" in event.detail
    assert owner.key not in event.actor + event.detail  # the prefix, never the secret


def test_a_search_made_without_a_key_records_none(resorts):
    from workflows.dispatch.submit import search_submit

    search = search_submit(seeker_id="u1", preferences=VALID, acting_user="staff:ops")
    assert search.api_key is None
    assert SearchEvent.objects.get(search=search, kind="submitted").actor == "staff:ops"
