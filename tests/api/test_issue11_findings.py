"""Issue 11's findings, replayed: each input the attack found is sent again and answered with the
documented 4xx (or the documented behaviour), never a 500. docs/decisions.md ("Issue 11's findings")
maps each finding to this module's case and to the tests that go deeper.

The webhook cases reuse the signed-delivery helpers of tests/workflows/test_webhook.py and the
mutations of tests/workflows/test_webhook_validation.py, so a finding is defined once.
"""

import json
from collections.abc import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from matching.api.throttling import SearchSubmitKeyThrottle
from matching.models import Search, SearchStatus
from snowbuddy.env import env_rate
from tests.conftest import SnowTraceClient
from tests.helpers.bodies import BUDDY as VALID
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.errors import error_attrs, error_codes
from tests.workflows.test_webhook import SECRET, deliver, fixture_body
from tests.workflows.test_webhook_validation import CASES
from workflows.dispatch.submit import search_submit
from workflows.models import WebhookDelivery

pytestmark = pytest.mark.django_db

INTERNAL_TOKEN = "internal-token-for-the-findings"


@pytest.fixture(autouse=True)
def _quiet_engines(settings, monkeypatch):
    settings.MATCHING_WEBHOOK_SECRET = SECRET
    settings.MATCHING_INTERNAL_TOKEN = INTERNAL_TOKEN
    stub_dispatch_send(monkeypatch)


@pytest.fixture
def search(resorts):
    return search_submit(
        seeker_id="owner-1", preferences={**VALID, "role": "coach", "vetting_required": True, "skill_level_min": 5}
    )


def _signed(client, search, finding: str):
    mutate, _ = CASES[finding]
    body = json.loads(fixture_body("succeeded", search))
    mutate(body)
    return deliver(client, json.dumps(body).encode())


def _candidates(client, path_id: str, method: str = "get"):
    csrf_enforcing = Client(enforce_csrf_checks=True)
    return getattr(csrf_enforcing, method)(
        f"/internal/searches/{path_id}/candidates", headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    )


# finding -> (replay(owner, client, search) -> response, expected status, expected codes or attrs)
Replay = Callable[[SnowTraceClient, Client, Search], object]
FINDINGS: dict[str, tuple[Replay, int, set[str]]] = {
    "deeply nested lists under 64 KB (RecursionError)": (
        lambda owner, client, search: owner.post(
            "/matching/searches", raw='{"resorts": ' + "[" * 30_000 + "]" * 30_000 + "}"
        ),
        400,
        {"too_deep"},
    ),
    "signed callback with duplicate ranks (IntegrityError)": (
        lambda owner, client, search: _signed(client, search, "duplicate ranks"),
        400,
        {"payload.results.1.rank"},
    ),
    "signed callback with a non-numeric score": (
        lambda owner, client, search: _signed(client, search, "non-numeric score"),
        400,
        {"payload.results.0.score"},
    ),
    "signed callback with a list as breakdown": (
        lambda owner, client, search: _signed(client, search, "list as breakdown"),
        400,
        {"payload.results.0.breakdown"},
    ),
    "signed callback with a version beyond bigint": (
        lambda owner, client, search: _signed(client, search, "version beyond bigint"),
        400,
        {"version"},
    ),
    "signed callback with an object as status (found by schemathesis here)": (
        lambda owner, client, search: _signed(client, search, "status an object"),
        400,
        {"status"},
    ),
    "signed callback holding U+0000 in a nickname (found by schemathesis here)": (
        lambda owner, client, search: deliver(
            client, fixture_body("succeeded", search).replace(b'"PowderKaze42"', b'"Powder\\u0000Kaze"')
        ),
        400,
        {"unsupported_character"},
    ),
    "a chunked body read as empty": (
        lambda owner, client, search: client.generic(
            "POST", "/matching/searches", b"", CONTENT_TYPE="application/json", HTTP_TRANSFER_ENCODING="chunked"
        ),
        411,
        {"length_required"},
    ),
    'dates: ["20260101"] accepted': (
        lambda owner, client, search: owner.post("/matching/searches", {**VALID, "dates": ["20260101"]}),
        400,
        {"dates.0"},
    ),
    "duplicate JSON keys accepted (last wins)": (
        lambda owner, client, search: owner.post(
            "/matching/searches", raw='{"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "role": "coach"}'
        ),
        400,
        {"duplicate_key"},
    ),
    "candidates feed: a non-UUID id was Django's HTML 404": (
        lambda owner, client, search: _candidates(client, "not-a-uuid"),
        404,
        {"unknown_search"},
    ),
    "candidates feed: a POST was an HTML CSRF 403": (
        lambda owner, client, search: _candidates(client, str(search.pk), "post"),
        405,
        {"method_not_allowed"},
    ),
    "?page= (empty) accepted (schemathesis ST201)": (
        lambda owner, client, search: owner.get("/matching/searches", {"page": ""}),
        400,
        {"page"},
    ),
    "an unknown field accepted (schemathesis ST202: the ban was not in the schema)": (
        lambda owner, client, search: owner.post("/matching/searches", {**VALID, "seeking_roles": "coach"}),
        400,
        {"unknown_field"},
    ),
    "min > max (schemathesis ST202: the rule was not in the schema)": (
        lambda owner, client, search: owner.post("/matching/searches", {**VALID, "skill_level_min": 8}),
        400,
        {"below_min"},
    ),
    "a coach-only field on a buddy search (schemathesis ST202)": (
        lambda owner, client, search: owner.post("/matching/searches", {**VALID, "vetting_required": True}),
        400,
        {"coach_only"},
    ),
    "an unknown region (schemathesis ST202: the regions were not in the schema)": (
        lambda owner, client, search: owner.post("/matching/searches", {**VALID, "regions": ["Niigata"]}),
        400,
        {"unknown_region"},
    ),
}


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_finding_of_issue_11_is_a_documented_4xx_never_a_500(owner, client, search, finding):
    replay, status, expected = FINDINGS[finding]
    response = replay(owner, client, search)
    assert response.status_code == status, (response.status_code, response.content[:300])
    got = error_attrs(response, status) if status == 400 and response.json()["type"] == "validation_error" else set()
    assert expected <= (got | error_codes(response, status))
    assert not WebhookDelivery.objects.exists()  # no finding stored anything
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING


def test_keys_rotating_user_ids_meet_the_per_key_limit(client, api_key, resorts, monkeypatch):
    """Finding: any key could act for any user id, throttled per user only. Now X-User-Id needs a
    trusted key (tests/api/test_authentication.py) and each key has its own limit."""
    monkeypatch.setitem(SearchSubmitKeyThrottle.THROTTLE_RATES, "search_submit_key", "3/min")
    answers = [
        SnowTraceClient(client, api_key, f"rotating-{n}").post("/matching/searches", VALID).status_code
        for n in range(5)
    ]
    assert answers == [202, 202, 202, 429, 429]


def test_matching_search_rate_abc_is_refused_when_the_settings_load(monkeypatch):
    """Finding: MATCHING_SEARCH_RATE=abc started fine and then every POST was a 500. Now the value is
    parsed when the settings load; tests/test_startup.py shows each server stopping with one line."""
    monkeypatch.setenv("MATCHING_SEARCH_RATE", "abc")
    with pytest.raises(ImproperlyConfigured, match=r"^MATCHING_SEARCH_RATE: "):
        env_rate("MATCHING_SEARCH_RATE", "15/min")
