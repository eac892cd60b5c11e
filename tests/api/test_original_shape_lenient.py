"""SnowTrace's original body is as lenient as the old service's pydantic model, understands the
browser's fields and resolves places as people write them; the console's own shape stays strict
(issue 15, items 1-3). Limits count accepted work only (item 6)."""

import json

import jsonschema
import pytest

from matching.api.throttling import SearchSubmitKeyThrottle, SearchSubmitThrottle
from matching.models import Search, SearchEvent
from tests.conftest import SnowTraceClient
from tests.helpers.errors import error_attrs, error_codes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

SMOKE_BODY = {
    "skill_level": "intermediate",
    "preferred_languages": ["en"],
    "preferred_regions": ["hokkaido"],
    "travel_dates": {"start": "2025-01-01", "end": "2025-01-05"},
}
BROWSER_BODY = {
    "preferred_resorts": ["hakuba_happo_one", "yuzawa_naeba"],
    "date_range": {"start": "2027-01-30", "end": "2027-02-02"},
    "skill_level_range": [4, 8],
    "preferred_role": "coach",
}


@pytest.fixture
def original(client, api_key) -> SnowTraceClient:
    return SnowTraceClient(client, api_key, "owner-1", accept="application/json")


def _accepted(response) -> tuple[dict, dict]:
    assert response.status_code == 202, response.content
    body = response.json()
    return body, Search.objects.get(pk=body["search_id"]).preferences


def test_the_smoke_checks_body_is_accepted_its_unknown_fields_listed_and_audited(original, resorts):
    body, prefs = _accepted(original.post("/matching/searches", SMOKE_BODY))
    assert body["warnings"] == [
        {"field": "preferred_languages", "reason": "ignored"},
        {"field": "skill_level", "reason": "ignored"},
        {"field": "travel_dates", "reason": "ignored"},
    ]
    assert prefs["regions"] == ["Hokkaido"] and prefs["role"] == "buddy" and prefs["dates"] == []
    event = SearchEvent.objects.get(search_id=body["search_id"], kind="submitted")
    audited = event.detail.split("\ninput_warnings=", 1)[1]
    assert json.loads(audited) == body["warnings"] and event.actor.startswith("user:owner-1")


def test_a_clean_original_body_answers_exactly_as_before(original, resorts):
    body, _ = _accepted(original.post("/matching/searches", {"seeking_role": "coach"}))
    assert body.keys() == {"search_id"}
    assert "input_warnings" not in SearchEvent.objects.get(kind="submitted").detail


def test_the_browsers_fields_mean_what_they_say(original, resorts):
    body, prefs = _accepted(original.post("/matching/searches", BROWSER_BODY))
    assert "warnings" not in body
    assert (prefs["role"], prefs["skill_level_min"], prefs["skill_level_max"]) == ("coach", 4, 8)
    assert prefs["resorts"] == ["hakuba_happo_one", "yuzawa_naeba"]
    assert prefs["dates"] == ["2027-01-30", "2027-01-31", "2027-02-01", "2027-02-02"]


def test_a_date_range_and_availability_add_up(original, resorts):
    body = {"availability": ["2027-03-01"], "date_range": {"start": "2027-03-01", "end": "2027-03-02"}}
    assert _accepted(original.post("/matching/searches", body))[1]["dates"] == ["2027-03-01", "2027-03-02"]


@pytest.mark.parametrize(
    ("field", "value", "stored_field", "stored"),
    [
        ("skill_level_min", "5", "skill_level_min", 5),
        ("skill_level_max", 7.0, "skill_level_max", 7),
        (
            "availability",
            ["2027-01-05T00:00:00Z", "2027-01-06T00:00:00.000+00:00"],
            "dates",
            ["2027-01-05", "2027-01-06"],
        ),
        ("include_knowledge_score", "true", "include_knowledge_score", True),
        ("include_knowledge_score", 0, "include_knowledge_score", False),
        ("preferred_resorts", ["Naeba Ski Resort", "苗場"], "resorts", ["yuzawa_naeba"]),
        ("preferred_resorts", ["niseko"], "resorts", ["hokkaido_niseko_moiwa"]),
        ("preferred_regions", ["niigata prefecture", "NAGANO"], "regions", ["Niigata Prefecture", "Nagano Prefecture"]),
    ],
)
def test_values_the_old_model_coerced_are_coerced_the_same_way(original, resorts, field, value, stored_field, stored):
    assert _accepted(original.post("/matching/searches", {field: value}))[1][stored_field] == stored


def test_hakuba_is_the_hakuba_valleys_resorts(original, resorts):
    prefs = _accepted(original.post("/matching/searches", {"preferred_resorts": ["hakuba"]}))[1]
    assert prefs["resorts"] and all(r.startswith("hakuba_") for r in prefs["resorts"])


def test_a_name_that_resolves_to_nothing_is_kept_listed_and_finds_nobody_on_location(original, resorts):
    body, prefs = _accepted(
        original.post(
            "/matching/searches", {"preferred_resorts": ["naeba", "Atlantis"], "preferred_regions": ["kogen"]}
        )
    )
    assert prefs["resorts"] == ["yuzawa_naeba", "Atlantis"] and prefs["regions"] == ["kogen"]
    assert body["warnings"] == [
        {"field": "preferred_resorts", "value": "Atlantis", "reason": "unknown_location"},
        {"field": "preferred_regions", "value": "kogen", "reason": "ambiguous_location"},
    ]


@pytest.mark.parametrize(
    ("body", "fields", "code"),
    [
        ({"skill_level_range": [8, 4]}, {"skill_level_range"}, "below_min"),
        ({"skill_level_range": [0, 4]}, {"skill_level_range.0"}, "min_value"),
        ({"skill_level_range": [4]}, {"skill_level_range"}, "min_length"),
        (
            {"skill_level_range": [4, 6], "skill_level_min": 3},
            {"skill_level_range", "skill_level_min"},
            "conflicting_fields",
        ),
        (
            {"preferred_role": "coach", "seeking_role": "buddy"},
            {"preferred_role", "seeking_role"},
            "conflicting_fields",
        ),
        ({"preferred_role": "ski-patrol"}, {"preferred_role"}, "invalid_choice"),
        ({"date_range": {"start": "2027-02-02", "end": "2027-02-01"}}, {"date_range.end"}, "before_start"),
        ({"date_range": {"start": "2027-01-01", "end": "2027-03-02"}}, {"date_range.end"}, "too_long"),
        ({"date_range": {"start": "2027-01-01"}}, {"date_range.end"}, "required"),
        ({"skill_level_min": 11}, {"skill_level_min"}, "max_value"),
        (
            {
                "availability": [f"2027-01-{d:02}" for d in range(1, 32)],
                "date_range": {"start": "2027-02-01", "end": "2027-03-02"},
            },
            {"date_range"},
            "max_length",
        ),
        (
            {"preferred_resorts": ["hakuba", "yuzawa", "myoko", *[f"nowhere-{n}" for n in range(30)]]},
            {"preferred_resorts"},
            "max_length",
        ),
    ],
)
def test_invalid_values_of_known_fields_are_a_400_naming_the_field(original, resorts, schema, body, fields, code):
    response = original.post("/matching/searches", body)
    assert error_attrs(response, 400) == fields and code in error_codes(response)
    assert Search.objects.count() == 0
    # The answer is one the OpenAPI schema describes (its codes are listed for these fields).
    answer = schema["paths"]["/matching/searches"]["post"]["responses"]["400"]["content"]["application/json"]
    validator = jsonschema.Draft202012Validator({**answer["schema"], "components": schema["components"]})
    assert list(validator.iter_errors(response.json())) == []


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from django.test import Client

    with django_db_blocker.unblock():
        return Client().get("/api/schema/?format=json").json()


@pytest.mark.parametrize("field", ["skill_level_range", "date_range", "preferred_role"])
def test_null_for_a_browser_field_is_the_same_as_leaving_it_out(original, resorts, field):
    assert _accepted(original.post("/matching/searches", {field: None}))[1]["role"] == "buddy"


def test_agreeing_old_and_browser_fields_are_fine(original, resorts):
    body = {"skill_level_range": [3, 6], "skill_level_min": 3, "preferred_role": "coach", "seeking_role": "coach"}
    prefs = _accepted(original.post("/matching/searches", body))[1]
    assert (prefs["skill_level_min"], prefs["skill_level_max"], prefs["role"]) == (3, 6, "coach")


def test_the_consoles_shape_stays_strict(client, api_key, resorts):
    console = SnowTraceClient(client, api_key, "owner-1")
    strict = {"role": "buddy", "skill_level_min": "3", "skill_level_max": 7, "resorts": ["niseko"], "colour": "red"}
    assert error_attrs(console.post("/matching/searches", strict), 400) == {"skill_level_min", "resorts", "colour"}


# --- limits count accepted work (item 6) ----------------------------------------------------------


def test_refused_bodies_do_not_use_up_the_per_user_limit(original, resorts, monkeypatch):
    monkeypatch.setitem(SearchSubmitThrottle.THROTTLE_RATES, "search_submit", "2/min")
    for _ in range(15):
        assert original.post("/matching/searches", {"skill_level_min": 0}).status_code == 400
    assert [original.post("/matching/searches", {}).status_code for _ in range(3)] == [202, 202, 429]
    # Once over the limit, a refused body is still a 400 (it is checked first), and a valid one a 429.
    assert original.post("/matching/searches", {"skill_level_min": 0}).status_code == 400


def test_refused_bodies_do_not_use_up_the_per_key_limit(client, api_key, resorts, monkeypatch):
    monkeypatch.setitem(SearchSubmitKeyThrottle.THROTTLE_RATES, "search_submit_key", "2/min")
    for n in range(5):
        bad = SnowTraceClient(client, api_key, f"user-{n}").post("/matching/searches", {"seeking_role": "x"})
        assert bad.status_code == 400
    answers = [
        SnowTraceClient(client, api_key, f"user-{n}").post("/matching/searches", {}).status_code for n in range(3)
    ]
    assert answers == [202, 202, 429]
