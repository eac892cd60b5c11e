import uuid

import pytest

from matching.models import ApiClientKey, Search
from matching.services.keys import api_key_revoke
from tests.conftest import user_token
from tests.helpers.bodies import BUDDY as VALID
from tests.helpers.errors import error_codes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def test_a_request_without_an_api_key_is_a_401(client, resorts):
    response = client.post("/matching/searches", VALID, content_type="application/json", headers={"X-User-Id": "u1"})
    assert error_codes(response, 401) == {"not_authenticated"}
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    "key",
    ["nope", "sbk_00000000_" + "a" * 43, "sbk_zzzz_short"],
)
def test_a_wrong_api_key_is_a_401(client, api_key, resorts, key):
    response = client.get("/matching/searches", headers={"X-API-Key": key, "X-User-Id": "u1"})
    assert error_codes(response, 401) == {"authentication_failed"}


def test_a_key_with_the_right_prefix_but_wrong_secret_is_a_401(client, api_key, resorts):
    tampered = api_key[:-4] + ("AAAA" if not api_key.endswith("AAAA") else "BBBB")
    response = client.get("/matching/searches", headers={"X-API-Key": tampered, "X-User-Id": "u1"})
    assert error_codes(response, 401) == {"authentication_failed"}


def test_a_revoked_key_is_a_401(client, api_key, resorts):
    key = ApiClientKey.objects.get()
    api_key_revoke(key=key)
    response = client.get("/matching/searches", headers={"X-API-Key": api_key, "X-User-Id": "u1"})
    assert error_codes(response, 401) == {"authentication_failed"}


@pytest.mark.parametrize("user_id", ["", "has space", "x" * 65])
def test_a_missing_or_malformed_acting_user_is_a_401(client, api_key, resorts, user_id):
    response = client.get("/matching/searches", headers={"X-API-Key": api_key, "X-User-Id": user_id})
    assert error_codes(response, 401) == {"authentication_failed"}


def test_keys_are_stored_only_as_hashes(api_key):
    stored = ApiClientKey.objects.get()
    assert api_key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


@pytest.mark.parametrize("trusted", [True, False])
def test_create_api_key_command_prints_a_working_key(client, resorts, capsys, trusted):
    from django.core.management import call_command

    call_command("create_api_key", "partner", *(["--trusted-service"] if trusted else []))
    key = capsys.readouterr().out.strip()
    response = client.get("/matching/searches", headers={"X-API-Key": key, "X-User-Id": "u1"})
    assert response.status_code == (200 if trusted else 401)


# --- X-User-Id only from trusted services; bearer tokens for everyone ------------------------

USER = str(uuid.uuid4())


def test_a_key_that_is_not_a_trusted_service_cannot_name_the_user(client, untrusted_api_key, resorts):
    response = client.get("/matching/searches", headers={"X-API-Key": untrusted_api_key, "X-User-Id": "u1"})
    assert error_codes(response, 401) == {"authentication_failed"}
    assert "trusted service" in response.json()["errors"][0]["detail"]


def test_a_bearer_token_names_the_user_for_any_valid_key(client, untrusted_api_key, resorts, jwt_secret):
    headers = {"X-API-Key": untrusted_api_key, "Authorization": f"Bearer {user_token(USER)}"}
    response = client.post("/matching/searches", VALID, content_type="application/json", headers=headers)
    assert response.status_code == 202
    assert Search.objects.get().seeker_id == USER


def test_the_tokens_sub_is_stored_in_its_canonical_form(client, api_key, resorts, jwt_secret):
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {user_token(USER.upper())}"}
    assert client.post("/matching/searches", VALID, content_type="application/json", headers=headers).status_code == 202
    assert Search.objects.get().seeker_id == USER


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: user_token(USER, ttl=-30), "expired"),
        (lambda: user_token(USER, audience="someone_else"), "audience"),
        (lambda: user_token(USER, secret="another-secret-of-at-least-thirty-two-bytes"), "signature"),
        (lambda: user_token("not-a-uuid"), "UUID"),
        (lambda: user_token(USER, ttl=None), "'exp'"),
        (lambda: "not.a.token", "malformed"),
    ],
)
def test_a_bad_token_is_a_401_that_says_why_and_nothing_of_the_secret(
    client, api_key, resorts, jwt_secret, token, reason
):
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {token()}"}
    response = client.get("/matching/searches", headers=headers)
    assert error_codes(response, 401) == {"authentication_failed"}
    assert reason in response.json()["errors"][0]["detail"]
    assert jwt_secret not in response.content.decode()


def test_a_token_signed_with_the_old_secret_verifies_during_a_rotation(client, api_key, resorts, jwt_secret, settings):
    old = "the-previous-secret-that-is-also-32-bytes-long"
    token = user_token(USER, secret=old)
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {token}"}
    assert error_codes(client.get("/matching/searches", headers=headers), 401) == {"authentication_failed"}
    settings.JWT_FALLBACK_SECRET = old
    assert client.get("/matching/searches", headers=headers).status_code == 200


def test_a_wrong_issuer_is_refused_when_an_issuer_is_configured(client, api_key, resorts, jwt_secret, settings):
    settings.JWT_ISSUER = "user-core"
    good = {"X-API-Key": api_key, "Authorization": f"Bearer {user_token(USER, iss='user-core')}"}
    bad = {"X-API-Key": api_key, "Authorization": f"Bearer {user_token(USER, iss='elsewhere')}"}
    assert client.get("/matching/searches", headers=good).status_code == 200
    response = client.get("/matching/searches", headers=bad)
    assert (
        error_codes(response, 401) == {"authentication_failed"} and "issuer" in response.json()["errors"][0]["detail"]
    )


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 wants a longer key
def test_a_token_with_another_algorithm_is_refused(client, api_key, resorts, jwt_secret):
    import jwt

    token = jwt.encode({"sub": USER, "aud": "user_core", "exp": 2**40}, jwt_secret, algorithm="HS512")
    response = client.get("/matching/searches", headers={"X-API-Key": api_key, "Authorization": f"Bearer {token}"})
    assert error_codes(response, 401) == {"authentication_failed"} and "HS256" in response.json()["errors"][0]["detail"]


def test_x_user_id_must_agree_with_the_token(client, api_key, resorts, jwt_secret):
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {user_token(USER)}", "X-User-Id": "someone-else"}
    response = client.get("/matching/searches", headers=headers)
    assert (
        error_codes(response, 401) == {"authentication_failed"}
        and "another user" in response.json()["errors"][0]["detail"]
    )


def test_a_token_alone_reads_but_cannot_submit(client, resorts, jwt_secret):
    headers = {"Authorization": f"Bearer {user_token(USER)}"}
    assert client.get("/matching/searches", headers=headers).status_code == 200
    response = client.post("/matching/searches", VALID, content_type="application/json", headers=headers)
    assert (
        error_codes(response, 401) == {"authentication_failed"}
        and "X-API-Key" in response.json()["errors"][0]["detail"]
    )


def test_a_token_is_refused_while_no_secret_is_configured(client, api_key, resorts, settings):
    settings.JWT_SECRET_KEY = ""
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {user_token(USER)}"}
    response = client.get("/matching/searches", headers=headers)
    assert (
        error_codes(response, 401) == {"authentication_failed"}
        and "no token secret" in response.json()["errors"][0]["detail"]
    )


def test_a_bad_key_is_refused_even_with_a_good_token(client, resorts, jwt_secret):
    headers = {"X-API-Key": "sbk_00000000_" + "a" * 43, "Authorization": f"Bearer {user_token(USER)}"}
    assert error_codes(client.get("/matching/searches", headers=headers), 401) == {"authentication_failed"}
