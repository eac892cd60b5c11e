"""Both request shapes on one endpoint, and the answers each API version gives (docs/contracts.md)."""

import json

import pytest

from matching.engine import Breakdown, Match
from matching.models import Search, SearchStatus, SkierProfile
from matching.services.leases import search_claim
from matching.services.profiles import profile_upsert
from matching.services.searches import search_fail, search_succeed
from tests.conftest import SnowTraceClient
from tests.helpers.bodies import BUDDY as CONSOLE
from tests.helpers.bodies import OPEN_BUDDY
from tests.helpers.errors import error_attrs, error_codes, error_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

ORIGINAL_DEFAULTS = {**OPEN_BUDDY, "limit": 100}


@pytest.fixture
def original(client, api_key) -> SnowTraceClient:
    """SnowTrace's original client: no API version asked for."""
    return SnowTraceClient(client, api_key, "owner-1", accept="application/json")


def _stored(response) -> dict:
    assert response.status_code == 202, response.content
    return Search.objects.get(pk=response.json()["search_id"]).preferences


def test_an_empty_object_is_the_original_shape_with_every_default(original, resorts):
    response = original.post("/matching/searches", {})
    assert response.json().keys() == {"search_id"}
    assert _stored(response) == ORIGINAL_DEFAULTS


@pytest.mark.parametrize(
    ("field", "value", "console_field", "stored"),
    [
        ("skill_level_min", 5, "skill_level_min", 5),
        ("skill_level_max", 7, "skill_level_max", 7),
        ("preferred_resorts", ["yuzawa_naeba", "hakuba_happo_one"], "resorts", ["yuzawa_naeba", "hakuba_happo_one"]),
        ("preferred_regions", ["Niigata Prefecture"], "regions", ["Niigata Prefecture"]),
        ("availability", ["2027-01-10", "2027-01-03"], "dates", ["2027-01-03", "2027-01-10"]),
        ("seeking_role", "coach", "role", "coach"),
        ("include_knowledge_score", True, "include_knowledge_score", True),
        ("preferred_resorts", None, "resorts", []),
        ("availability", None, "dates", []),
    ],
)
def test_each_original_field_is_stored_under_its_console_name(original, resorts, field, value, console_field, stored):
    prefs = _stored(original.post("/matching/searches", {field: value}))
    assert prefs[console_field] == stored
    assert {k: v for k, v in prefs.items() if k != console_field} == {
        k: v for k, v in ORIGINAL_DEFAULTS.items() if k != console_field
    }


def test_the_original_knowledge_option_uses_the_seekers_own_score(original, resorts):
    profile_upsert(user_id="owner-1", nickname="me", skill_level=5, role="buddy", knowledge_score=64)
    prefs = _stored(original.post("/matching/searches", {"include_knowledge_score": True}))
    assert prefs["knowledge_score"] == 64


def test_a_reversed_skill_range_is_accepted_in_the_original_shape_as_the_old_service_did(original, resorts):
    assert _stored(original.post("/matching/searches", {"skill_level_min": 8, "skill_level_max": 3}))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"skill_level_min": 0}, "skill_level_min"),
        ({"skill_level_max": 11}, "skill_level_max"),
        ({"seeking_role": "instructor"}, "seeking_role"),
        ({"availability": ["2027-02-30"]}, "availability"),
        ({"availability": ["2027-01-05T09:00:00Z"]}, "availability"),  # not midnight: not a date
        ({"skill_level_min": "11"}, "skill_level_min"),
        ({"skill_level_min": 5.5}, "skill_level_min"),
        ({"include_knowledge_score": "maybe"}, "include_knowledge_score"),
        ({"preferred_resorts": "yuzawa_naeba"}, "preferred_resorts"),
        ({"preferred_regions": [7]}, "preferred_regions"),
    ],
)
def test_invalid_original_fields_get_a_400_under_their_original_name(original, resorts, body, field):
    response = original.post("/matching/searches", body)
    assert field in {attr.split(".")[0] for attr in error_attrs(response, 400)}
    assert Search.objects.count() == 0


def test_the_console_shape_still_refuses_names_it_does_not_know(owner, resorts):
    for body, field in [
        ({**CONSOLE, "resorts": ["Naeba"]}, "resorts"),
        ({**CONSOLE, "regions": ["Niigata"]}, "regions"),
    ]:
        error = error_of(owner.post("/matching/searches", body), 400)["errors"][0]
        assert error["attr"] == field and error["code"] in ("unknown_resort", "unknown_region")


@pytest.mark.parametrize(
    ("console_name", "original_name", "console_value", "original_value"),
    [
        ("role", "seeking_role", "coach", "coach"),
        ("resorts", "preferred_resorts", ["yuzawa_naeba"], ["yuzawa_naeba"]),
        ("regions", "preferred_regions", [], []),
        ("dates", "availability", [], []),
    ],
)
def test_a_body_naming_one_field_twice_is_a_400_naming_both(
    original, resorts, console_name, original_name, console_value, original_value
):
    response = original.post("/matching/searches", {console_name: console_value, original_name: original_value})
    errors = error_of(response, 400)["errors"]
    assert {e["attr"] for e in errors} == {console_name, original_name}
    assert all(original_name in e["detail"] and console_name in e["detail"] for e in errors)
    assert Search.objects.count() == 0


def test_a_body_mixing_the_two_shapes_is_a_400(original, resorts):
    response = original.post("/matching/searches", {"limit": 5, "preferred_resorts": ["yuzawa_naeba"]})
    assert "mixes" in error_of(response, 400)["errors"][0]["detail"]


def test_the_console_shape_still_works_and_answers_in_the_version_asked_for(original, owner, resorts):
    assert original.post("/matching/searches", CONSOLE).json().keys() == {"search_id"}
    assert owner.post("/matching/searches", CONSOLE).json().keys() == {"search_id", "status", "engine"}
    stored = [s.preferences for s in Search.objects.all()]
    assert stored[0] == stored[1] and stored[0]["limit"] == 20


def _finished(search_id, *, ok=True):
    search_claim(search_id=search_id, attempt=1)
    if ok:
        profile_upsert(user_id="c1", nickname="Yuki", skill_level=6, role="coach")
        profile_upsert(user_id="c2", nickname="Sora", skill_level=4, role="buddy")
        matches = [
            Match(user_id="c1", score=0.87, breakdown=Breakdown(1.0, 1.0, 1.0, 0.8, None), rank=1),
            Match(user_id="c2", score=0.55, breakdown=Breakdown(1.0, 0.5, 0.2, 1.0, None), rank=2),
        ]
        search_succeed(search_id=search_id, attempt=1, matches=matches, nicknames={"c1": "Yuki", "c2": "Sora"})
    else:
        search_fail(search_id=search_id, attempt=1, error="boom")


def test_an_unversioned_read_gets_the_original_answer(original, resorts):
    search_id = original.post("/matching/searches", {}).json()["search_id"]
    assert original.get(f"/matching/searches/{search_id}").json() == {
        "status": "processing",
        "results": [],
        "matches": [],
    }
    _finished(search_id)
    answer = original.get(f"/matching/searches/{search_id}").json()
    assert answer["status"] == "completed"
    assert answer["results"] == [
        {"user_id": "c1", "nickname": "Yuki", "skill_level": 6, "self_role": "coach", "match_score": 0.87},
        {"user_id": "c2", "nickname": "Sora", "skill_level": 4, "self_role": "buddy", "match_score": 0.55},
    ]
    # What SnowTrace's smart-matching page reads (snowbuddyApi.ts MatchResult).
    # The console's breakdown (skill, location, availability, role, knowledge) under the page's names;
    # knowledge not scored is 0.
    names = ("skill_score", "location_score", "time_score", "role_score", "knowledge_score")
    assert answer["matches"] == [
        {"user_id": "c1", "score": 0.87, "breakdown": dict(zip(names, (1.0, 1.0, 1.0, 0.8, 0.0), strict=True))},
        {"user_id": "c2", "score": 0.55, "breakdown": dict(zip(names, (1.0, 0.5, 0.2, 1.0, 0.0), strict=True))},
    ]


def test_a_candidate_whose_profile_is_gone_is_left_out_of_the_original_answer(original, resorts):
    search_id = original.post("/matching/searches", {}).json()["search_id"]
    _finished(search_id)
    SkierProfile.objects.filter(user_id="c1").delete()
    assert [r["user_id"] for r in original.get(f"/matching/searches/{search_id}").json()["results"]] == ["c2"]


def test_a_candidate_deleted_through_the_profile_service_is_left_out_too(original, resorts):
    from matching.services.profiles import profile_delete

    search_id = original.post("/matching/searches", {}).json()["search_id"]
    _finished(search_id)
    assert profile_delete(user_id="c1") == "deleted"  # a tombstone stays, for the warm indexes
    assert [r["user_id"] for r in original.get(f"/matching/searches/{search_id}").json()["results"]] == ["c2"]


@pytest.mark.parametrize(
    ("status", "old_status"),
    [
        (SearchStatus.PENDING, "processing"),
        (SearchStatus.DISPATCHED, "processing"),
        (SearchStatus.RUNNING, "processing"),
        (SearchStatus.AWAITING_VETTING, "processing"),
        (SearchStatus.SUCCEEDED, "completed"),
        (SearchStatus.FAILED, "failed"),
        (SearchStatus.CANCELLED, "completed"),
        (SearchStatus.TIMED_OUT, "failed"),
    ],
)
def test_every_lifecycle_state_maps_onto_the_original_vocabulary(original, resorts, status, old_status):
    search_id = original.post("/matching/searches", {}).json()["search_id"]
    Search.objects.filter(pk=search_id).update(status=status)
    answer = original.get(f"/matching/searches/{search_id}").json()
    assert answer == {"status": old_status, "results": [], "matches": []}


def test_a_versioned_read_gets_the_console_answer(original, owner, resorts):
    search_id = original.post("/matching/searches", {}).json()["search_id"]
    _finished(search_id, ok=False)
    body = owner.get(f"/matching/searches/{search_id}").json()
    assert body["status"] == "failed" and body["error"] == "boom" and body["preferences"] == ORIGINAL_DEFAULTS


def test_an_unknown_api_version_is_a_406(original, resorts):
    response = original.get("/matching/searches", headers={"Accept": "application/json; version=3"})
    assert response.status_code == 406


# --- cancel ------------------------------------------------------------------------------------


def test_the_owner_cancels_a_search_and_cancelling_again_is_the_same_answer(owner, resorts):
    search_id = owner.post("/matching/searches", CONSOLE).json()["search_id"]
    first = owner.post(f"/matching/searches/{search_id}/cancel", {"reason": "plans changed"})
    assert first.status_code == 202
    assert first.json()["status"] == "cancelled" and first.json()["search_id"] == search_id
    again = owner.post(f"/matching/searches/{search_id}/cancel", raw="")
    assert again.status_code == 202 and again.json() == first.json()
    search = Search.objects.get(pk=search_id)
    assert search.events.filter(kind="cancelled", actor="user:owner-1", detail="plans changed").count() == 1


def test_a_finished_search_cannot_be_cancelled(owner, resorts):
    search_id = owner.post("/matching/searches", CONSOLE).json()["search_id"]
    _finished(search_id)
    response = owner.post(f"/matching/searches/{search_id}/cancel", raw="")
    error = error_of(response, 409)["errors"][0]
    assert error["code"] == "already_finished" and "succeeded" in error["detail"]


def test_another_users_search_cannot_be_cancelled(owner, another_user, resorts):
    search_id = owner.post("/matching/searches", CONSOLE).json()["search_id"]
    assert error_codes(another_user.post(f"/matching/searches/{search_id}/cancel", raw=""), 404) == {"not_found"}
    assert Search.objects.get(pk=search_id).status == SearchStatus.PENDING


def test_a_cancel_with_a_bad_body_is_a_400(owner, resorts):
    search_id = owner.post("/matching/searches", CONSOLE).json()["search_id"]
    assert owner.post(f"/matching/searches/{search_id}/cancel", {"why": "x"}).status_code == 400
    assert owner.post(f"/matching/searches/{search_id}/cancel", raw="[1]").status_code == 400


# --- reference data ------------------------------------------------------------------------------


def test_the_resort_list_gives_ids_names_and_regions(owner, resorts):
    body = owner.get("/matching/resorts").json()
    assert len(body["resorts"]) == 43
    naeba = next(r for r in body["resorts"] if r["id"] == "yuzawa_naeba")
    assert naeba["name_en"] == "Naeba Ski Resort" and naeba["region"] == "Niigata Prefecture"
    assert "Niigata Prefecture" in body["regions"] and len(body["regions"]) == 8


def test_the_resort_list_needs_authentication(client, resorts):
    assert error_codes(client.get("/matching/resorts"), 401) == {"not_authenticated"}


# --- the schema ---------------------------------------------------------------------------------


def _schema(client, version=None) -> dict:
    return client.get("/api/schema/", {"format": "json", **({"version": version} if version else {})}).json()


def test_the_schema_describes_cancel_and_resorts_with_their_enums(client):
    schema = _schema(client)
    assert "post" in schema["paths"]["/matching/searches/{search_id}/cancel"]
    assert "get" in schema["paths"]["/matching/resorts"]
    components = schema["components"]["schemas"]
    assert components["ResortList"]["properties"]["regions"]["items"]["$ref"].endswith("/RegionEnum")
    assert "Niigata Prefecture" in components["RegionEnum"]["enum"]
    assert components["SearchCancelled"]["properties"]["status"]["$ref"].endswith("/SearchStatusEnum")
    assert "cancelled" in components["SearchStatusEnum"]["enum"]
    assert components["Resort"]["properties"]["region"]["$ref"].endswith("/RegionEnum")
    # (TrustedServiceApiKey: the profile push endpoints, matching/api/profiles.py)
    assert set(schema["components"]["securitySchemes"]) == {
        "SnowTraceApiKey",
        "SnowTraceUserToken",
        "SnowTraceUserId",
        "TrustedServiceApiKey",
    }


def test_the_default_schema_shows_the_original_answers_and_version_2_the_consoles(client):
    v1 = _schema(client)
    v2 = _schema(client, "2")
    read = "/matching/searches/{search_id}"
    (v1_content,) = v1["paths"][read]["get"]["responses"]["200"]["content"].values()
    (v2_content,) = v2["paths"][read]["get"]["responses"]["200"]["content"].values()
    v1_ref, v2_ref = v1_content["schema"]["$ref"], v2_content["schema"]["$ref"]
    assert v1_ref.endswith("/SnowTraceSearch") and v2_ref.endswith("/SearchDetail")
    assert {"processing", "completed"} <= set(json.dumps(v1["components"]["schemas"]).split('"'))
    body = v1["paths"]["/matching/searches"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "oneOf" in json.dumps(body) or body["$ref"].endswith("SearchCreateBody")
