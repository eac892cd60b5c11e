import pytest

from matching.models import ApiClientKey
from matching.services import api_key_revoke

pytestmark = pytest.mark.django_db

VALID = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}


def test_a_request_without_an_api_key_is_a_401(client, resorts):
    response = client.post("/matching/searches", VALID, content_type="application/json", headers={"X-User-Id": "u1"})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    "key",
    ["nope", "sbk_00000000_" + "a" * 43, "sbk_zzzz_short"],
)
def test_a_wrong_api_key_is_a_401(client, api_key, resorts, key):
    response = client.get("/matching/searches", headers={"X-API-Key": key, "X-User-Id": "u1"})
    assert response.status_code == 401


def test_a_key_with_the_right_prefix_but_wrong_secret_is_a_401(client, api_key, resorts):
    tampered = api_key[:-4] + ("AAAA" if not api_key.endswith("AAAA") else "BBBB")
    response = client.get("/matching/searches", headers={"X-API-Key": tampered, "X-User-Id": "u1"})
    assert response.status_code == 401


def test_a_revoked_key_is_a_401(client, api_key, resorts):
    key = ApiClientKey.objects.get()
    api_key_revoke(key=key)
    response = client.get("/matching/searches", headers={"X-API-Key": api_key, "X-User-Id": "u1"})
    assert response.status_code == 401


@pytest.mark.parametrize("user_id", ["", "has space", "x" * 65])
def test_a_missing_or_malformed_acting_user_is_a_401(client, api_key, resorts, user_id):
    response = client.get("/matching/searches", headers={"X-API-Key": api_key, "X-User-Id": user_id})
    assert response.status_code == 401


def test_keys_are_stored_only_as_hashes(api_key):
    stored = ApiClientKey.objects.get()
    assert api_key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


def test_create_api_key_command_prints_a_working_key(client, resorts, capsys):
    from django.core.management import call_command

    call_command("create_api_key", "partner")
    key = capsys.readouterr().out.strip()
    response = client.get("/matching/searches", headers={"X-API-Key": key, "X-User-Id": "u1"})
    assert response.status_code == 200
