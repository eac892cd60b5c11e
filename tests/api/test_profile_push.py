"""SnowTrace's services push profiles: PUT, GET, :close, DELETE and :batch, trusted keys only."""

from __future__ import annotations

import json

import pytest

from matching.models import SkierProfile
from matching.services.keys import api_key_create
from matching.vocabulary.regions import REGION_BIT
from tests.helpers.errors import error_codes

pytestmark = pytest.mark.django_db

NAEBA = "yuzawa_naeba"  # Niigata Prefecture
HAPPO = "hakuba_happo_one"  # Nagano Prefecture

USER_SERVICE_RECORD = {
    "user_id": "9b2f6d0e-4c1a-4d7e-8f00-5a1b2c3d4e5f",
    "nickname": "Powder Yuki",
    "skill_level": 7,
    "self_role": "coach",
    "email": "ignored@example.invalid",
    "preferences": {
        "preferred_resorts": [NAEBA],
        "preferred_regions": ["Nagano Prefecture"],
        "availability": ["2027-01-12", "2027-01-10"],
        "open_to_matching": True,
        "favourite_colour": "blue",
    },
}
CONSOLE_PROFILE = {
    "user_id": "console-1",
    "nickname": "Carve",
    "skill_level": 4,
    "role": "student",
    "resorts": [HAPPO],
    "regions": [],
    "available_dates": ["2027-02-01"],
    "open_to_matching": True,
    "knowledge_score": 61,
    "certifications": [],
    "languages": ["ja", "en"],
}


def attrs(errors: list[dict]) -> set:
    """The fields named by errors in the project's one shape."""
    return {error["attr"] for error in errors}


@pytest.fixture
def trusted_key(db) -> str:
    return api_key_create(name="user-service", is_trusted_service=True)[1]


class Service:
    def __init__(self, client, key: str | None):
        self.client, self.key = client, key

    def _headers(self):
        return {"X-API-Key": self.key} if self.key else {}

    def put(self, user_id, body, *, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body)
        return self.client.put(
            f"/matching/profiles/{user_id}", data=data, content_type="application/json", headers=self._headers()
        )

    def post(self, path, body=None, *, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data=data, content_type="application/json", headers=self._headers())

    def get(self, user_id):
        return self.client.get(f"/matching/profiles/{user_id}", headers=self._headers())

    def delete(self, user_id):
        return self.client.delete(f"/matching/profiles/{user_id}", headers=self._headers())


@pytest.fixture
def service(client, trusted_key, resorts) -> Service:
    return Service(client, trusted_key)


# --- authentication --------------------------------------------------------------------------------


def test_a_push_without_an_api_key_is_a_401(client, resorts):
    response = Service(client, None).put("console-1", CONSOLE_PROFILE)
    assert error_codes(response, 401) == {"not_authenticated"}
    assert "WWW-Authenticate" in response.headers
    assert not SkierProfile.objects.exists()


def test_a_wrong_api_key_is_a_401(client, trusted_key, resorts):
    tampered = trusted_key[:-4] + ("AAAA" if not trusted_key.endswith("AAAA") else "BBBB")
    assert error_codes(Service(client, tampered).put("console-1", CONSOLE_PROFILE), 401) == {"authentication_failed"}


def test_a_key_that_is_not_a_trusted_service_key_is_refused_everywhere(client, resorts):
    # A key that is not a trusted service's (its searches carry the user's bearer token).
    backend = Service(client, api_key_create(name="user-facing-app")[1])
    assert backend.put("console-1", CONSOLE_PROFILE).status_code == 403
    assert backend.post("/matching/profiles:batch", {"profiles": [CONSOLE_PROFILE]}).status_code == 403
    assert backend.post("/matching/profiles/console-1:close").status_code == 403
    assert backend.delete("console-1").status_code == 403
    assert backend.get("console-1").status_code == 403
    response = backend.put("console-1", CONSOLE_PROFILE)
    assert response.json()["type"] == "client_error"
    assert "trusted" in response.json()["errors"][0]["detail"]
    assert not SkierProfile.objects.exists()


def test_a_revoked_trusted_key_is_a_401(client, trusted_key, resorts):
    from matching.models import ApiClientKey
    from matching.services.keys import api_key_revoke

    api_key_revoke(key=ApiClientKey.objects.get(is_trusted_service=True))
    assert error_codes(Service(client, trusted_key).put("console-1", CONSOLE_PROFILE), 401) == {"authentication_failed"}


# --- PUT, both shapes -------------------------------------------------------------------------------


def test_put_takes_the_user_services_record_as_it_is(service):
    user_id = USER_SERVICE_RECORD["user_id"]
    response = service.put(user_id, USER_SERVICE_RECORD)
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "created"
    row = SkierProfile.objects.get(user_id=user_id)
    assert (row.nickname, row.skill_level, row.role) == ("Powder Yuki", 7, "coach")
    assert row.resorts == [NAEBA] and row.regions == ["Nagano Prefecture"]
    assert row.available_dates == ["2027-01-10", "2027-01-12"]  # sorted
    assert row.open_to_matching is True
    # Niigata through the resort, Nagano named: the derived mask the prefilter reads.
    assert row.region_mask == REGION_BIT["Niigata Prefecture"] | REGION_BIT["Nagano Prefecture"]


def test_the_user_services_defaults_apply_open_to_matching_true_and_skill_5(service):
    response = service.put("u-min", {"user_id": "u-min", "self_role": "buddy"})
    assert response.status_code == 201, response.json()
    row = SkierProfile.objects.get(user_id="u-min")
    assert (row.skill_level, row.open_to_matching, row.resorts, row.nickname) == (5, True, [], "")


def test_a_user_service_push_keeps_the_knowledge_score_it_does_not_carry(service):
    assert service.put("console-1", CONSOLE_PROFILE).status_code == 201
    record = {"user_id": "console-1", "self_role": "student", "skill_level": 5, "preferences": {}}
    response = service.put("console-1", record)
    assert response.status_code == 200 and response.json()["status"] == "updated"
    row = SkierProfile.objects.get(user_id="console-1")
    assert row.knowledge_score == 61 and row.languages == ["ja", "en"]  # kept
    assert row.skill_level == 5 and row.resorts == []  # replaced


def test_put_takes_the_consoles_own_shape_and_a_repeat_changes_nothing(service):
    first = service.put("console-1", CONSOLE_PROFILE)
    assert first.status_code == 201
    stamp = SkierProfile.objects.get(user_id="console-1").updated_at
    again = service.put("console-1", CONSOLE_PROFILE)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert SkierProfile.objects.get(user_id="console-1").updated_at == stamp  # no write, no churn
    body = service.get("console-1").json()
    assert {k: body[k] for k in CONSOLE_PROFILE if k != "user_id"} == {
        k: v for k, v in CONSOLE_PROFILE.items() if k != "user_id"
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CONSOLE_PROFILE, "skill_level": 11}, "skill_level"),
        ({**CONSOLE_PROFILE, "skill_level": "7"}, "skill_level"),
        ({**CONSOLE_PROFILE, "skill_level": True}, "skill_level"),
        ({**CONSOLE_PROFILE, "role": "captain"}, "role"),
        ({**CONSOLE_PROFILE, "resorts": ["atlantis"]}, "resorts"),
        ({**CONSOLE_PROFILE, "resorts": NAEBA}, "resorts"),
        ({**CONSOLE_PROFILE, "regions": ["Mars"]}, "regions"),
        ({**CONSOLE_PROFILE, "available_dates": ["2027-02-30"]}, "available_dates"),
        ({**CONSOLE_PROFILE, "available_dates": ["20270201"]}, "available_dates"),
        ({**CONSOLE_PROFILE, "open_to_matching": "yes"}, "open_to_matching"),
        ({**CONSOLE_PROFILE, "knowledge_score": 101}, "knowledge_score"),
        ({**CONSOLE_PROFILE, "nickname": "x" * 65}, "nickname"),
        ({**CONSOLE_PROFILE, "favourite_colour": "blue"}, "favourite_colour"),
        ({**CONSOLE_PROFILE, "user_id": "someone-else"}, "user_id"),
        ({k: v for k, v in CONSOLE_PROFILE.items() if k != "role"}, "role"),
    ],
)
def test_a_bad_field_in_the_consoles_shape_is_a_400_naming_the_field(service, body, field):
    response = service.put("console-1", body)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert field in attrs(response.json()["errors"])
    assert not SkierProfile.objects.exists()


@pytest.mark.parametrize(
    ("record", "path"),
    [
        ({**USER_SERVICE_RECORD, "self_role": None}, "self_role"),
        ({**USER_SERVICE_RECORD, "skill_level": 0}, "skill_level"),
        ({**USER_SERVICE_RECORD, "preferences": {"preferred_resorts": ["atlantis"]}}, "preferences.preferred_resorts"),
        ({**USER_SERVICE_RECORD, "preferences": {"availability": ["soon"]}}, "preferences.availability"),
        ({**USER_SERVICE_RECORD, "preferences": {"open_to_matching": "no"}}, "preferences.open_to_matching"),
        ({**USER_SERVICE_RECORD, "preferences": ["not", "an", "object"]}, "preferences.non_field_errors"),
    ],
)
def test_a_bad_field_in_the_user_services_shape_is_a_400_naming_the_field(service, record, path):
    response = service.put(record["user_id"], record)
    assert response.status_code == 400
    assert attrs(response.json()["errors"]) == {path}


def test_a_missing_required_field_has_the_code_required(service):
    response = service.put("u-x", {"user_id": "u-x", "preferences": {}})
    assert response.json()["errors"] == [{"code": "required", "detail": "This field is required.", "attr": "self_role"}]


def test_a_malformed_path_or_body_is_a_400_never_a_500(service):
    assert service.put("has space", CONSOLE_PROFILE).status_code in (400, 404)
    assert service.put("console-1", None, raw="{not json").status_code == 400
    assert service.put("console-1", None, raw="[1, 2]").status_code == 400


# --- close and delete ------------------------------------------------------------------------------


def test_close_takes_a_profile_out_of_matching_and_is_idempotent(service):
    service.put("console-1", CONSOLE_PROFILE)
    first = service.post("/matching/profiles/console-1:close")
    assert first.status_code == 200 and first.json() == {"user_id": "console-1", "status": "closed"}
    assert SkierProfile.objects.get(user_id="console-1").open_to_matching is False
    assert service.post("/matching/profiles/console-1:close").json()["status"] == "unchanged"
    assert error_codes(service.post("/matching/profiles/nobody:close"), 404) == {"not_found"}


def test_a_user_id_containing_a_colon_can_be_written_and_closed(service):
    body = {**CONSOLE_PROFILE, "user_id": "sso:42"}
    assert service.put("sso:42", body).status_code == 201
    assert service.post("/matching/profiles/sso:42:close").json() == {"user_id": "sso:42", "status": "closed"}


def test_a_path_ending_in_close_is_only_the_close_action(service):
    """One operation per path, as the schema lists them: `{user_id}:close` takes only POST, and a POST
    to the profile itself is a 405 (so a user id ending in `:close` cannot be pushed)."""
    service.put("console-1", CONSOLE_PROFILE)
    for method in ("get", "put", "delete"):
        response = getattr(service.client, method)("/matching/profiles/console-1:close", headers=service._headers())
        assert error_codes(response, 405) == {"method_not_allowed"}
        assert set(response["Allow"].replace(" ", "").split(",")) - {"OPTIONS"} == {"POST"}
    response = service.post("/matching/profiles/console-1")
    assert error_codes(response, 405) == {"method_not_allowed"}
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "DELETE"}


def test_an_unknown_field_has_the_code_unknown_field(service):
    response = service.put("console-1", {**CONSOLE_PROFILE, "favourite_colour": "blue"})
    assert {(e["attr"], e["code"]) for e in response.json()["errors"]} == {("favourite_colour", "unknown_field")}


def test_a_whole_number_written_5_0_is_the_integer_5(service):
    response = service.put("console-1", {**CONSOLE_PROFILE, "skill_level": 5.0})
    assert response.status_code == 201 and response.json()["profile"]["skill_level"] == 5
    assert service.put("console-1", {**CONSOLE_PROFILE, "skill_level": 5.5}).status_code == 400


def test_a_batch_that_is_not_json_is_a_415(service):
    response = service.client.post(
        "/matching/profiles:batch", data="profiles=1", content_type="text/plain", headers=service._headers()
    )
    assert error_codes(response, 415) == {"unsupported_media_type"}


def test_delete_leaves_a_tombstone_without_personal_data_and_a_put_brings_the_profile_back(service):
    service.put("console-1", CONSOLE_PROFILE)
    assert service.delete("console-1").status_code == 204
    tombstone = SkierProfile.objects.get(user_id="console-1")
    assert tombstone.deleted_at is not None and tombstone.open_to_matching is False
    assert (tombstone.nickname, tombstone.resorts, tombstone.knowledge_score, tombstone.languages) == ("", [], None, [])
    assert error_codes(service.get("console-1"), 404) == {"not_found"}
    assert service.delete("console-1").status_code == 204  # idempotent
    assert error_codes(service.delete("never-existed"), 404) == {"not_found"}
    assert error_codes(service.post("/matching/profiles/console-1:close"), 404) == {
        "not_found"
    }  # nothing left to close

    again = service.put("console-1", CONSOLE_PROFILE)
    assert again.status_code == 201 and again.json()["status"] == "created"
    assert SkierProfile.objects.get(user_id="console-1").deleted_at is None


# --- batch -----------------------------------------------------------------------------------------


def test_a_batch_reports_each_record_and_applies_the_good_ones(service):
    service.put("console-1", CONSOLE_PROFILE)
    records = [
        CONSOLE_PROFILE,  # unchanged
        {**CONSOLE_PROFILE, "user_id": "console-2"},  # created
        {**USER_SERVICE_RECORD, "skill_level": 99},  # rejected
        {"user_id": "console-1", "self_role": "coach", "skill_level": 8},  # duplicate of item 0
        "not an object",  # rejected
        {**USER_SERVICE_RECORD, "user_id": "user-3"},  # created
    ]
    response = service.post("/matching/profiles:batch", {"profiles": records})
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"created": 2, "updated": 0, "unchanged": 1, "rejected": 3}
    statuses = [(r["index"], r["user_id"], r["status"]) for r in body["results"]]
    assert statuses == [
        (0, "console-1", "unchanged"),
        (1, "console-2", "created"),
        (2, USER_SERVICE_RECORD["user_id"], "rejected"),
        (3, "console-1", "rejected"),
        (4, None, "rejected"),
        (5, "user-3", "created"),
    ]
    assert attrs(body["results"][2]["errors"]) == {"skill_level"}
    [duplicate] = body["results"][3]["errors"]
    assert duplicate["attr"] == "user_id" and "more than once" in duplicate["detail"]
    assert "errors" not in body["results"][0]
    assert set(SkierProfile.objects.values_list("user_id", flat=True)) == {"console-1", "console-2", "user-3"}
    assert SkierProfile.objects.get(user_id="console-1").role == "student"  # the duplicate did not apply


def test_a_batch_accepts_the_user_services_page_as_it_comes(service):
    page = {"items": [{**USER_SERVICE_RECORD, "user_id": f"u-{i}"} for i in range(3)], "next_cursor": "abc"}
    response = service.post("/matching/profiles:batch", page)
    assert response.status_code == 200, response.json()
    assert response.json()["counts"]["created"] == 3


def test_a_batch_of_1000_is_accepted_and_1001_is_refused_whole(service):
    thousand = [{**CONSOLE_PROFILE, "user_id": f"bulk-{i:04d}", "nickname": f"Rider {i}"} for i in range(1000)]
    response = service.post("/matching/profiles:batch", {"profiles": thousand})
    assert response.status_code == 200
    assert response.json()["counts"]["created"] == 1000
    assert SkierProfile.objects.count() == 1000

    too_many = [*thousand, {**CONSOLE_PROFILE, "user_id": "bulk-1000"}]
    refused = service.post("/matching/profiles:batch", {"profiles": too_many})
    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert error["attr"] == "profiles" and "1000" in error["detail"]
    assert not SkierProfile.objects.filter(user_id="bulk-1000").exists()


def test_a_batch_body_over_its_size_limit_is_a_413(service, settings):
    settings.MATCHING_PROFILE_BATCH_MAX_BYTES = 64 * 1024
    records = [{**CONSOLE_PROFILE, "user_id": f"big-{i:04d}"} for i in range(400)]
    response = service.post("/matching/profiles:batch", {"profiles": records})
    assert response.status_code == 413
    # The single-profile endpoint keeps the API's ordinary limit.
    huge = {**CONSOLE_PROFILE, "nickname": "x" * 70_000}
    assert service.put("console-1", huge).status_code == 413


def test_a_batch_that_is_not_a_list_is_a_400(service):
    assert service.post("/matching/profiles:batch", {"profiles": {"user_id": "x"}}).status_code == 400
    assert service.post("/matching/profiles:batch", None, raw="[]").status_code == 400
    broken = service.post("/matching/profiles:batch", None, raw='{"profiles": [], "profiles": []}')
    assert broken.status_code == 400 and broken.json()["errors"][0]["code"] == "duplicate_key"


def test_the_openapi_schema_describes_the_push_endpoints_and_their_key(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert set(schema["paths"]["/matching/profiles/{user_id}"]) == {"get", "put", "delete"}
    assert set(schema["paths"]["/matching/profiles/{user_id}:close"]) == {"post"}
    assert "post" in schema["paths"]["/matching/profiles:batch"]
    put = schema["paths"]["/matching/profiles/{user_id}"]["put"]
    assert {"TrustedServiceApiKey": []} in put["security"] and "trusted-service" in put["description"]
    assert schema["components"]["securitySchemes"]["TrustedServiceApiKey"]["name"] == "X-API-Key"
