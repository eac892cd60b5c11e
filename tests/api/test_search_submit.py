import json

import pytest

from matching.models import Search, SearchStatus
from tests.helpers.errors import error_attrs, error_of
from workflows.models import SearchDispatch

# These tests are about the API contract; the engine path has its own tests with a worker.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

VALID = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "resorts": ["yuzawa_naeba"]}


def test_a_valid_search_is_accepted_stored_and_queued_for_dispatch(owner, resorts):
    response = owner.post("/matching/searches", VALID)
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"search_id", "status", "engine"}
    assert body["status"] == "pending" and body["engine"] == "celery"
    search = Search.objects.get(pk=body["search_id"])
    assert search.seeker_id == "owner-1"
    assert search.preferences["dates"] == [] and search.preferences["limit"] == 20
    assert SearchDispatch.objects.filter(search=search, attempt=1, sent_at__isnull=True).count() == 1


def test_dates_are_normalised_and_duplicates_dropped(owner, resorts):
    body = {**VALID, "dates": ["2027-01-10", "2027-01-03", "2027-01-10"], "resorts": ["yuzawa_naeba", "yuzawa_naeba"]}
    search_id = owner.post("/matching/searches", body).json()["search_id"]
    prefs = Search.objects.get(pk=search_id).preferences
    assert prefs["dates"] == ["2027-01-03", "2027-01-10"]
    assert prefs["resorts"] == ["yuzawa_naeba"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"skill_level_min": 0}, "skill_level_min"),
        ({"skill_level_max": 11}, "skill_level_max"),
        ({"skill_level_min": 8, "skill_level_max": 3}, "skill_level_max"),
        ({"skill_level_min": "5"}, "skill_level_min"),
        ({"skill_level_min": 5.5}, "skill_level_min"),
        ({"skill_level_min": True}, "skill_level_min"),
        ({"resorts": ["atlantis_peak"]}, "resorts"),
        ({"resorts": "yuzawa_naeba"}, "resorts"),
        ({"regions": ["Mars"]}, "regions"),
        (
            {
                "dates": [f"2027-01-{d:02d}" for d in range(1, 32)]
                + [f"2027-02-{d:02d}" for d in range(1, 29)]
                + ["2027-03-01", "2027-03-02"]
            },
            "dates",
        ),
        ({"dates": ["2027-02-30"]}, "dates"),
        ({"dates": ["next tuesday"]}, "dates"),
        ({"role": "instructor"}, "role"),
        ({"knowledge_score": 101}, "knowledge_score"),
        ({"include_knowledge_score": "yes"}, "include_knowledge_score"),
        ({"limit": 0}, "limit"),
        ({"required_certifications": ["CASI-3"]}, "required_certifications"),
        ({"vetting_required": True}, "vetting_required"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
    ],
)
def test_invalid_preferences_get_a_field_level_400(owner, resorts, change, field):
    response = owner.post("/matching/searches", {**VALID, **change})
    assert error_of(response, 400)["type"] == "validation_error"
    assert any(attr == field or attr.startswith(f"{field}.") for attr in error_attrs(response))
    assert Search.objects.count() == 0


@pytest.mark.parametrize("missing", ["role", "skill_level_min", "skill_level_max"])
def test_a_missing_required_field_is_named(owner, resorts, missing):
    body = {k: v for k, v in VALID.items() if k != missing}
    response = owner.post("/matching/searches", body)
    error_of(response, 400)
    assert missing in error_attrs(response)


def test_sixty_dates_are_allowed(owner, resorts):
    dates = (
        [f"2027-01-{d:02d}" for d in range(1, 32)]
        + [f"2027-02-{d:02d}" for d in range(1, 28)]
        + ["2027-03-01", "2027-03-02"]
    )
    assert len(dates) == 60
    assert owner.post("/matching/searches", {**VALID, "dates": dates}).status_code == 202


def test_a_vetted_coach_search_is_accepted_on_the_celery_engine_too(owner, resorts):
    response = owner.post("/matching/searches", {**VALID, "role": "coach", "vetting_required": True})
    assert response.status_code == 202
    assert response.json()["engine"] == "celery"
    assert Search.objects.get().preferences["vetting_required"] is True


def test_certifications_are_accepted_on_a_coach_search(owner, resorts):
    body = {**VALID, "role": "coach", "required_certifications": ["CASI-3"]}
    assert owner.post("/matching/searches", body).status_code == 202


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "null", '"text"', '{"role": "buddy",}'])
def test_malformed_or_non_object_json_is_a_400(owner, resorts, raw):
    response = owner.post("/matching/searches", raw=raw)
    error_of(response, 400)


def test_an_empty_body_is_a_400_that_says_what_to_send(owner, resorts):
    response = owner.post("/matching/searches", raw="")
    errors = error_of(response, 400)["errors"]
    assert "{}" in errors[0]["detail"]
    assert Search.objects.count() == 0


def test_a_body_over_64_kb_is_a_413(owner, resorts):
    body = json.dumps({**VALID, "padding": "x" * 70_000})
    response = owner.post("/matching/searches", raw=body)
    assert error_of(response, 413)["errors"][0]["code"] == "payload_too_large"
    assert Search.objects.count() == 0


def test_the_sixteenth_search_in_a_minute_is_throttled_per_user(owner, another_user, resorts):
    for _ in range(15):
        assert owner.post("/matching/searches", VALID).status_code == 202
    throttled = owner.post("/matching/searches", VALID)
    assert error_of(throttled, 429)["errors"][0]["code"] == "throttled"
    assert "Retry-After" in throttled.headers
    assert another_user.post("/matching/searches", VALID).status_code == 202


def test_reading_searches_is_not_throttled(owner, resorts):
    search_id = owner.post("/matching/searches", VALID).json()["search_id"]
    for _ in range(20):
        assert owner.get(f"/matching/searches/{search_id}").status_code == 200


def test_a_pending_search_reads_back_with_its_state_and_no_results(owner, resorts):
    search_id = owner.post("/matching/searches", VALID).json()["search_id"]
    body = owner.get(f"/matching/searches/{search_id}").json()
    assert body["search_id"] == search_id
    assert body["status"] == SearchStatus.PENDING
    assert body["results"] == []
    assert body["preferences"]["resorts"] == ["yuzawa_naeba"]
