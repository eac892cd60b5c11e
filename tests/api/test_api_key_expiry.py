"""API keys that expire, are revoked, and rotate: two keys live at once for one client, and a 401
that says which of expired or revoked (only to a caller holding the whole key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from matching.models import ApiClientKey
from matching.services.keys import TooManyActiveKeys, api_key_create, api_key_revoke
from tests.helpers.errors import error_codes

pytestmark = pytest.mark.django_db

LIST = "/matching/searches"


def _get(client, raw_key: str):
    return client.get(LIST, headers={"X-API-Key": raw_key, "X-User-Id": "u1"})


def _detail(response) -> str:
    return response.json()["errors"][0]["detail"]


def _expire(raw_key: str, at: datetime) -> None:
    ApiClientKey.objects.filter(prefix=raw_key.split("_")[1]).update(expires_at=at)


def test_a_key_before_its_expiry_works_and_after_it_is_a_401_saying_when(client, resorts):
    _, raw = api_key_create(name="snowtrace", is_trusted_service=True, expires_at=timezone.now() + timedelta(days=1))
    assert _get(client, raw).status_code == 200
    _expire(raw, datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    response = _get(client, raw)
    assert error_codes(response, 401) == {"authentication_failed"}
    assert _detail(response) == "This API key expired on 2026-03-01 09:30 UTC."
    assert "WWW-Authenticate" in response.headers


def test_a_revoked_key_is_a_401_saying_so(client, resorts):
    key, raw = api_key_create(name="snowtrace", is_trusted_service=True)
    api_key_revoke(key=key)
    response = _get(client, raw)
    assert error_codes(response, 401) == {"authentication_failed"}
    assert _detail(response) == "This API key was revoked."


def test_only_the_whole_key_learns_its_state(client, resorts):
    """A caller with the prefix but not the secret gets the plain answer, whether the key is live,
    revoked or expired: the state is not an oracle for guessed prefixes."""
    key, raw = api_key_create(name="snowtrace", is_trusted_service=True)
    wrong = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    answers = [_detail(_get(client, wrong))]
    api_key_revoke(key=key)
    answers.append(_detail(_get(client, wrong)))
    ApiClientKey.objects.filter(pk=key.pk).update(revoked_at=None, expires_at=timezone.now() - timedelta(days=1))
    answers.append(_detail(_get(client, wrong)))
    assert answers == ["Invalid API key."] * 3
    assert _detail(_get(client, raw)).startswith("This API key expired on")


def test_last_use_is_written_at_most_once_a_minute(client, resorts):
    key, raw = api_key_create(name="snowtrace", is_trusted_service=True)
    assert _get(client, raw).status_code == 200
    first = ApiClientKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    assert _get(client, raw).status_code == 200
    assert ApiClientKey.objects.get(pk=key.pk).last_used_at == first
    ApiClientKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(seconds=61))
    assert _get(client, raw).status_code == 200
    assert ApiClientKey.objects.get(pk=key.pk).last_used_at > first


def test_a_client_may_hold_two_live_keys_but_not_three(client, resorts):
    old, old_raw = api_key_create(name="snowtrace", is_trusted_service=True)
    _, new_raw = api_key_create(name="snowtrace", is_trusted_service=True)
    assert [_get(client, raw).status_code for raw in (old_raw, new_raw)] == [200, 200]
    with pytest.raises(TooManyActiveKeys, match="snowtrace already has 2 keys in use"):
        api_key_create(name="snowtrace", is_trusted_service=True)
    api_key_create(name="another-client")  # another client's keys are its own
    # Revoked and expired keys are not in use: the rotation can go on.
    api_key_revoke(key=old)
    _, third_raw = api_key_create(name="snowtrace", is_trusted_service=True)
    _expire(third_raw, timezone.now() - timedelta(seconds=1))
    api_key_create(name="snowtrace")
    assert ApiClientKey.objects.filter(name="snowtrace").count() == 4


def test_a_new_key_cannot_expire_in_the_past(db):
    with pytest.raises(ValueError, match="in the past"):
        api_key_create(name="snowtrace", expires_at=timezone.now() - timedelta(minutes=1))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_create_api_key_expires_after_a_duration(db, capsys, given, expected):
    before = timezone.now()
    call_command("create_api_key", "snowtrace", "--expires", given, "--note", "held by the SnowTrace team")
    raw = capsys.readouterr().out.strip()
    key = ApiClientKey.objects.get(prefix=raw.split("_")[1])
    assert before + expected <= key.expires_at <= timezone.now() + expected
    assert key.note == "held by the SnowTrace team"


def test_create_api_key_expires_on_a_date_or_at_a_time(db, capsys):
    call_command("create_api_key", "a", "--expires", "2099-03-01")
    call_command("create_api_key", "b", "--expires", "2099-03-01T12:30+02:00")
    expiries = dict(ApiClientKey.objects.values_list("name", "expires_at"))
    assert expiries == {"a": datetime(2099, 3, 1, tzinfo=UTC), "b": datetime(2099, 3, 1, 10, 30, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("given", "message"), [("soon", "expected a duration"), ("2001-01-01", "in the past"), ("0x", "expected")]
)
def test_create_api_key_refuses_a_bad_expiry(db, given, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "snowtrace", "--expires", given)
    assert not ApiClientKey.objects.exists()


def test_create_api_key_refuses_a_third_live_key(db, capsys):
    call_command("create_api_key", "snowtrace")
    call_command("create_api_key", "snowtrace")
    with pytest.raises(CommandError, match="revoke the old one"):
        call_command("create_api_key", "snowtrace")


@pytest.mark.django_db(transaction=True)
def test_a_rotation_over_http(live_server, resorts):
    """Against a real HTTP server: the old and the new key both work during the rotation; once the
    old one is revoked, it is a 401 saying so while the new one goes on; an expired key says when."""

    def get(raw: str) -> requests.Response:
        return requests.get(live_server.url + LIST, headers={"X-API-Key": raw, "X-User-Id": "u1"}, timeout=10)

    old, old_raw = api_key_create(name="snowtrace", is_trusted_service=True)
    _, new_raw = api_key_create(
        name="snowtrace", is_trusted_service=True, expires_at=timezone.now() + timedelta(days=90)
    )
    assert [get(old_raw).status_code, get(new_raw).status_code] == [200, 200]
    api_key_revoke(key=old)
    revoked = get(old_raw)
    assert (
        error_codes(revoked, 401) == {"authentication_failed"}
        and revoked.json()["errors"][0]["detail"] == "This API key was revoked."
    )
    assert get(new_raw).status_code == 200
    _expire(new_raw, datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    expired = get(new_raw)
    assert error_codes(expired, 401) == {"authentication_failed"}
    assert expired.json()["errors"][0]["detail"] == "This API key expired on 2026-11-30 23:59 UTC."
    assert "no-store" in expired.headers["Cache-Control"]
