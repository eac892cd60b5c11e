"""Browsers call with a user token alone when MATCHING_REQUIRE_API_KEY is false, from the origins
CORS_ALLOWED_ORIGINS names, on the API paths only (issue 15, item 5)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from matching.api.throttling import SearchSubmitThrottle
from matching.models import Search
from tests.conftest import user_token
from tests.helpers.errors import error_codes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

ROOT = Path(__file__).resolve().parent.parent.parent
USER = str(uuid.UUID(int=15))
OTHER = str(uuid.UUID(int=16))
ORIGIN = "http://127.0.0.1:5173"


def _as(client, user_id):
    token = user_token(user_id)

    def call(method, path, body=None, **headers):
        return getattr(client, method)(
            path,
            body if body is not None else {},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}", **headers},
        )

    return call


def test_a_token_alone_cannot_write_while_the_key_is_required(client, jwt_secret, resorts, settings):
    settings.MATCHING_REQUIRE_API_KEY = True
    response = _as(client, USER)("post", "/matching/searches", {})
    assert (
        error_codes(response, 401) == {"authentication_failed"}
        and "X-API-Key" in response.json()["errors"][0]["detail"]
    )


def test_without_the_key_rule_a_token_alone_submits_cancels_and_is_limited_per_user(
    client, jwt_secret, resorts, settings, monkeypatch
):
    settings.MATCHING_REQUIRE_API_KEY = False
    monkeypatch.setitem(SearchSubmitThrottle.THROTTLE_RATES, "search_submit", "2/min")
    me, stranger = _as(client, USER), _as(client, OTHER)
    first = me("post", "/matching/searches", {"preferred_resorts": ["niseko"]})
    assert first.status_code == 202
    search = Search.objects.get(pk=first.json()["search_id"])
    assert search.seeker_id == USER and search.api_key is None
    assert error_codes(stranger("post", f"/matching/searches/{search.pk}/cancel"), 404) == {"not_found"}
    assert me("post", f"/matching/searches/{search.pk}/cancel").status_code == 202
    assert [me("post", "/matching/searches", {}).status_code for _ in range(2)] == [202, 429]
    assert stranger("post", "/matching/searches", {}).status_code == 202  # the limit is per user


def test_a_bad_token_is_still_a_401_without_the_key_rule(client, jwt_secret, resorts, settings):
    settings.MATCHING_REQUIRE_API_KEY = False
    response = client.post(
        "/matching/searches", {}, content_type="application/json", headers={"Authorization": "Bearer not.a.token"}
    )
    assert error_codes(response, 401) == {"authentication_failed"}
    anonymous = client.post("/matching/searches", {}, content_type="application/json")
    assert error_codes(anonymous, 401) == {"not_authenticated"}


def _require_api_key_setting(env: dict) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("REQUIRE_API_KEY")}
    code = "from django.conf import settings; print(settings.MATCHING_REQUIRE_API_KEY)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_key_rule_defaults_to_on_and_honours_the_old_services_name():
    assert _require_api_key_setting({}) == "True"
    assert _require_api_key_setting({"SNOWBUDDY_REQUIRE_API_KEY": "false"}) == "False"
    both = {"SNOWBUDDY_REQUIRE_API_KEY": "false", "MATCHING_REQUIRE_API_KEY": "true"}
    assert _require_api_key_setting(both) == "True"  # the console's own name wins


# --- CORS ------------------------------------------------------------------------------------------


def _preflight(client, path, origin=ORIGIN, method="POST"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_a_preflight_from_an_allowed_origin_is_answered_on_the_api_paths(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    for path, method in [("/matching/searches", "POST"), ("/requests/abc", "PUT"), ("/requests", "POST")]:
        response = _preflight(client, path, method=method)
        assert response.status_code == 200, path
        assert response["Access-Control-Allow-Origin"] == ORIGIN
        assert method in response["Access-Control-Allow-Methods"]
        assert {"authorization", "content-type"} <= set(response["Access-Control-Allow-Headers"].split(", "))
        assert "Access-Control-Allow-Credentials" not in response


def test_an_answer_to_an_allowed_origin_carries_the_cors_headers(client, jwt_secret, settings, resorts):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    response = client.get(
        "/matching/resorts", headers={"Origin": ORIGIN, "Authorization": f"Bearer {user_token(USER)}"}
    )
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == ORIGIN


def test_no_cors_for_another_origin_nor_on_the_admin(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    assert "Access-Control-Allow-Origin" not in _preflight(client, "/matching/searches", origin="http://evil.test")
    for path in ("/admin/", "/admin/login/", "/api/schema/", "/health"):
        response = client.get(path, headers={"Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in response, path
        assert "Access-Control-Allow-Origin" not in _preflight(client, path), path
