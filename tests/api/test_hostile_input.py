"""Bodies and requests a careless or hostile client sends: each is a 4xx in the one error shape."""

import json

import pytest

from matching.models import Search
from tests.helpers.bodies import BUDDY as VALID
from tests.helpers.errors import error_attrs, error_codes, error_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def test_deeply_nested_lists_under_64_kb_are_a_400_not_a_recursion_error(owner, resorts):
    raw = '{"resorts": ' + "[" * 30_000 + "]" * 30_000 + "}"
    assert len(raw) < 64 * 1024
    response = owner.post("/matching/searches", raw=raw)
    assert error_codes(response, 400) == {"too_deep"}
    assert Search.objects.count() == 0


def test_nesting_inside_strings_does_not_count_as_depth(owner, resorts):
    response = owner.post("/matching/searches", {**VALID, "resorts": ["[" * 50]})
    assert error_attrs(response) == {"resorts"}  # an unknown resort, not a parse error


def test_a_duplicate_key_is_a_400_naming_it(owner, resorts):
    raw = '{"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "role": "coach"}'
    response = owner.post("/matching/searches", raw=raw)
    error = error_of(response, 400)["errors"][0]
    assert error["code"] == "duplicate_key" and "'role'" in error["detail"]
    assert Search.objects.count() == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_a_400(owner, resorts, literal):
    raw = json.dumps(VALID)[:-1] + f', "knowledge_score": {literal}}}'
    assert error_codes(owner.post("/matching/searches", raw=raw)) == {"invalid_json"}


@pytest.mark.parametrize("text", ["CASI\\u0000-3", "\\udc00", "\\ud83d"])
def test_a_string_the_database_cannot_hold_is_a_400(owner, resorts, text):
    raw = json.dumps({**VALID, "role": "coach"})[:-1] + f', "required_certifications": ["{text}"]}}'
    assert error_codes(owner.post("/matching/searches", raw=raw), 400) == {"unsupported_character"}
    assert Search.objects.count() == 0


def test_a_surrogate_pair_is_text_like_any_other(owner, resorts):
    raw = json.dumps({**VALID, "role": "coach"})[:-1] + ', "required_certifications": ["\\ud83c\\udfbf"]}'
    assert owner.post("/matching/searches", raw=raw).status_code == 202


@pytest.mark.parametrize("date", ["20260101", "2026-W01-1", "2026-01-01T00:00", " 2026-01-01", "2026-1-1", 20260101])
def test_dates_must_be_written_yyyy_mm_dd(owner, resorts, date):
    response = owner.post("/matching/searches", {**VALID, "dates": [date]})
    error_of(response, 400)
    assert error_attrs(response) == {"dates.0"}


def test_an_unknown_api_path_is_a_json_404(owner):
    error = error_of(owner.get("/matching/nowhere"), 404)["errors"][0]
    assert error["code"] == "not_found"
    assert error_of(owner.client.get("/no/such/page"), 404)


def test_the_admin_keeps_its_html_404(admin_client):
    response = admin_client.get("/admin/matching/search/not-a-uuid/change/")
    assert response.status_code in (302, 404)
    assert not response["Content-Type"].startswith("application/json")


def test_an_unsupported_method_is_a_json_405(owner, resorts):
    search_id = owner.post("/matching/searches", VALID).json()["search_id"]
    response = owner.client.delete(
        f"/matching/searches/{search_id}", headers={"X-API-Key": owner.key, "X-User-Id": owner.user_id}
    )
    assert error_codes(response, 405) == {"method_not_allowed"}


def test_a_non_json_body_is_a_415(owner, resorts):
    response = owner.client.post(
        "/matching/searches",
        data="role=buddy",
        content_type="application/x-www-form-urlencoded",
        headers={"X-API-Key": owner.key, "X-User-Id": owner.user_id},
    )
    assert error_codes(response, 415) == {"unsupported_media_type"}


def test_a_malformed_content_length_is_a_400(client):
    response = client.generic("POST", "/matching/searches", b"{}", CONTENT_TYPE="application/json", CONTENT_LENGTH="x")
    assert error_codes(response, 400) == {"invalid_content_length"}


def test_a_chunked_body_without_a_length_is_a_411(client):
    # Django's test client always sets CONTENT_LENGTH; drop it to see what a WSGI server passes on
    # for `Transfer-Encoding: chunked` (tests/api/test_wsgi_server.py sends one through gunicorn).
    response = client.generic(
        "POST", "/matching/searches", b"", CONTENT_TYPE="application/json", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert error_codes(response, 411) == {"length_required"}


@pytest.mark.parametrize("path", ["/matching/searches", "/health", "/matching/searches/not-a-uuid"])
def test_api_answers_are_never_stored_by_caches(owner, resorts, path):
    assert "no-store" in owner.get(path)["Cache-Control"]


def test_an_error_answer_is_not_stored_either(client):
    assert "no-store" in client.get("/matching/searches")["Cache-Control"]


def test_the_root_leads_to_the_console(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_a_body_is_only_asked_for_a_length_where_it_is_read(owner):
    # A GET's body is never read: a chunked one changes nothing (the schema lists 411 for POST only).
    response = owner.client.generic(
        "GET",
        "/matching/searches",
        b"",
        HTTP_TRANSFER_ENCODING="chunked",
        headers={"X-API-Key": owner.key, "X-User-Id": owner.user_id},
    )
    assert response.status_code == 200
