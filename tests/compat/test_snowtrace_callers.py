"""SnowTrace's real callers, replayed over HTTP against the console under gunicorn with a real
worker (issue 15's acceptance): one test per call of the old service's own tests
(snowbuddy_matching/tests/), of the deploy smoke check (scripts/smoke_snowbuddy.py) and of the
browser client (platform/frontend/ski-platform/src/shared/api/snowbuddyApi.ts, as SmartMatchingPage
uses it). Paths, headers and bodies are written from their documented shapes; where the console
answers differently on purpose, the test says so and docs/contracts.md ("Moving from the old
service") gives the reason. The match-request calls are in test_snowtrace_match_requests.py."""

from __future__ import annotations

import uuid

import pytest
import requests

from matching.management.demo_profiles import demo_profiles
from matching.models import SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.compat.conftest import stored_search
from tests.conftest import user_token
from tests.helpers.polling import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SMOKE_USER = str(uuid.UUID(int=0x5E0CE))
BROWSER_USER = str(uuid.UUID(int=0xB205E))


@pytest.fixture
def few_profiles(resorts):
    """Enough skiers for every search here to find some (fewer than test_old_client's: quicker)."""
    rows = demo_profiles(150, resort_regions(), seed=11)
    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**row)) for row in rows)


# --- the old service's own tests (snowbuddy_matching/tests/test_api.py, test_snowbuddy_api.py) ----


def test_old_test_health_check(served):
    """Both files: GET /health is 200 with status ok. (test_snowbuddy_api.py compares the whole body
    with {"status": "ok"}: the console adds `database`, `broker` and `index`, on purpose.)"""
    response = requests.get(served() + "/health", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.json().keys() == {"status", "database", "broker", "index"}


def test_old_test_start_search_requires_auth(served):
    body = {"skill_level_min": 5, "skill_level_max": 7, "seeking_role": "buddy"}
    assert requests.post(served() + "/matching/searches", json=body, timeout=10).status_code == 401


def test_old_test_start_search_with_auth(served, api_key, untrusted_api_key, few_profiles):
    """The old test names the user in X-User-Id alone (the old service trusted any caller). The
    console takes X-User-Id only from a key staff marked as a trusted service (SnowTrace's backend,
    after the key import): without it a 401, with it the old test's 202."""
    body = {"skill_level_min": 5, "skill_level_max": 7, "seeking_role": "buddy"}
    url = served() + "/matching/searches"
    assert requests.post(url, json=body, headers={"X-User-Id": "test-user-123"}, timeout=10).status_code == 401
    untrusted = {"X-User-Id": "test-user-123", "X-API-Key": untrusted_api_key}
    assert requests.post(url, json=body, headers=untrusted, timeout=10).status_code == 401
    response = requests.post(url, json=body, headers={"X-User-Id": "test-user-123", "X-API-Key": api_key}, timeout=10)
    assert response.status_code == 202
    search = stored_search(response.json()["search_id"])
    assert (search.seeker_id, search.preferences["skill_level_min"], search.preferences["role"]) == (
        "test-user-123",
        5,
        "buddy",
    )


def test_old_test_get_search_results_requires_auth(served):
    assert requests.get(served() + "/matching/searches/some-search-id", timeout=10).status_code == 401


# --- the deploy smoke check (scripts/smoke_snowbuddy.py), its three calls replayed ------------------


class SmokeCheck:
    """What the smoke check sends: GET {BASE}/health (no headers, timeout 5), POST
    {BASE}/matching/searches (its fixed body as JSON, `Authorization: Bearer $TOKEN` and, when set,
    `X-API-Key: $X_API_KEY`, timeout 10), then GET {BASE}/matching/searches/{search_id} with the
    same headers. Every answer must pass `raise_for_status()`, and the POST's JSON must carry a
    truthy `search_id`."""

    BODY = {
        "skill_level": "intermediate",
        "preferred_languages": ["en"],
        "preferred_regions": ["hokkaido"],
        "travel_dates": {"start": "2025-01-01", "end": "2025-01-05"},
    }

    def __init__(self, base_url: str, token: str, api_key: str | None) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        if api_key:
            self.headers["X-API-Key"] = api_key

    def run(self) -> tuple[dict, dict]:
        requests.get(f"{self.base_url}/health", timeout=5).raise_for_status()
        started = requests.post(f"{self.base_url}/matching/searches", json=self.BODY, headers=self.headers, timeout=10)
        started.raise_for_status()
        search_id = started.json().get("search_id")
        assert search_id, "search_id missing"
        read = requests.get(f"{self.base_url}/matching/searches/{search_id}", headers=self.headers, timeout=10)
        read.raise_for_status()
        return started.json(), read.json()


@pytest.mark.parametrize(
    ("require_key", "with_key"),
    [(True, True), (False, True), (False, False)],
    ids=["token-and-key", "token-and-key-keyless-allowed", "token-only-keyless-allowed"],
)
def test_the_smoke_check_passes(served, api_key, few_profiles, require_key, with_key):
    smoke = SmokeCheck(served(require_key=require_key), user_token(SMOKE_USER), api_key if with_key else None)
    started, read = smoke.run()
    assert [w["field"] for w in started["warnings"]] == ["preferred_languages", "skill_level", "travel_dates"]
    assert read["status"] in ("processing", "completed") and {"status", "results", "matches"} <= read.keys()
    search = stored_search(started["search_id"])
    assert search.seeker_id == SMOKE_USER and search.preferences["regions"] == ["Hokkaido"]


def test_the_smoke_check_with_a_token_alone_fails_where_the_key_is_required(served, few_profiles):
    """Its `raise_for_status()` on the POST raises: set MATCHING_REQUIRE_API_KEY=false, or give it X_API_KEY."""
    with pytest.raises(requests.HTTPError, match="401"):
        SmokeCheck(served(require_key=True), user_token(SMOKE_USER), None).run()


# --- the browser client (snowbuddyApi.ts), as SmartMatchingPage calls it -----------------------------


class BrowserClient:
    """snowbuddyApi.ts: a user token from localStorage in `Authorization: Bearer`, JSON bodies with
    `Content-Type: application/json`, no API key, no Accept version."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token

    def start_search(self, preferences: dict) -> requests.Response:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        return requests.post(f"{self.base_url}/matching/searches", json=preferences, headers=headers, timeout=10)

    def get_search_results(self, search_id: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.get(f"{self.base_url}/matching/searches/{search_id}", headers=headers, timeout=10)


# MatchingPreferenceForm's onSubmit body (preferred_role is always 'buddy' there; 'coach' shows it is honoured).
PAGE_BODY = {
    "preferred_resorts": ["hakuba_happo_one", "yuzawa_naeba", "niseko"],
    "date_range": {"start": "2027-01-05", "end": "2027-01-09"},
    "skill_level_range": [3, 8],
    "preferred_role": "buddy",
}


def test_browser_start_search(served, few_profiles):
    browser = BrowserClient(served(require_key=False), user_token(BROWSER_USER))
    response = browser.start_search({**PAGE_BODY, "preferred_role": "coach"})
    assert response.status_code == 202 and response.json().keys() == {"search_id"}
    prefs = stored_search(response.json()["search_id"]).preferences
    assert (prefs["role"], prefs["skill_level_min"], prefs["skill_level_max"]) == ("coach", 3, 8)
    assert prefs["resorts"] == ["hakuba_happo_one", "yuzawa_naeba", "hokkaido_niseko_moiwa"]
    assert prefs["dates"] == ["2027-01-05", "2027-01-06", "2027-01-07", "2027-01-08", "2027-01-09"]


def test_browser_get_search_results_until_completed_with_matches(served, few_profiles):
    browser = BrowserClient(served(require_key=False), user_token(BROWSER_USER))
    search_id = browser.start_search(PAGE_BODY).json()["search_id"]

    def polled():  # SmartMatchingPage stops on completed or failed
        answer = browser.get_search_results(search_id)
        assert answer.ok
        return answer.json() if answer.json()["status"] in ("completed", "failed") else None

    answer = wait_for(polled, timeout=30, message="the page's poll to end")
    assert answer["status"] == "completed" and answer["matches"], "the demo data has matches for this body"
    parts = {"skill_score", "location_score", "time_score", "role_score", "knowledge_score"}
    for match, result in zip(answer["matches"], answer["results"], strict=True):
        assert match.keys() == {"user_id", "score", "breakdown"} and match["breakdown"].keys() == parts
        assert (match["user_id"], match["score"]) == (result["user_id"], result["match_score"])
        assert all(0 <= value <= 1 for value in match["breakdown"].values())


def test_browser_get_search_results_says_failed_for_a_failed_search(served, few_profiles):
    from matching.models import Search, SearchStatus

    browser = BrowserClient(served(require_key=False), user_token(BROWSER_USER))
    search_id = browser.start_search(PAGE_BODY).json()["search_id"]
    wait_for(lambda: browser.get_search_results(search_id).json()["status"] == "completed", timeout=30)
    Search.objects.filter(pk=search_id).update(status=SearchStatus.FAILED)
    assert browser.get_search_results(search_id).json() == {"status": "failed", "results": [], "matches": []}


def test_browser_calls_need_the_key_rule_off(served, few_profiles):
    """With MATCHING_REQUIRE_API_KEY on (the default), the browser's token may read but not write."""
    browser = BrowserClient(served(require_key=True), user_token(BROWSER_USER))
    assert browser.start_search(PAGE_BODY).status_code == 401
