"""`create_api_key NAME --from-env SNOWBUDDY_API_KEY` carries SnowTrace's existing key over: only its
hash is stored, and it authenticates as it is, whatever its format (issue 15, item 7)."""

import io
import uuid

import pytest
from django.core.management import CommandError, call_command

from matching.models import ApiClientKey, Search
from matching.services.keys import api_key_create, api_key_revoke, hash_api_key
from tests.conftest import user_token
from tests.helpers.errors import error_codes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

OLD_KEY = "snowtrace-shared-8Jq2v0Wm3x9ZtL4r"  # SnowTrace's own format, not the console's sbk_…
USER = str(uuid.UUID(int=7))


def _import(monkeypatch, value=OLD_KEY, *flags) -> str:
    monkeypatch.setenv("SNOWBUDDY_API_KEY", value)
    out = io.StringIO()
    call_command("create_api_key", "snowtrace-backend", "--from-env", "SNOWBUDDY_API_KEY", *flags, stdout=out)
    return out.getvalue()


def _submit(client, key, **headers):
    return client.post("/matching/searches", {}, content_type="application/json", headers={"X-API-Key": key, **headers})


def test_the_imported_key_is_stored_as_a_hash_and_authenticates_as_it_is(client, jwt_secret, resorts, monkeypatch):
    output = _import(monkeypatch, OLD_KEY, "--trusted-service")
    key = ApiClientKey.objects.get()
    assert OLD_KEY not in output and key.prefix in output
    assert key.key_hash == hash_api_key(OLD_KEY) and key.imported and key.is_trusted_service
    assert key.prefix.startswith("imp_") and key.prefix[4:] not in OLD_KEY
    # SnowTrace's backend, unchanged: the old key with the user's token, or naming the user.
    assert _submit(client, OLD_KEY, Authorization=f"Bearer {user_token(USER)}").status_code == 202
    assert _submit(client, OLD_KEY, **{"X-User-Id": "snowtrace-user-9"}).status_code == 202
    assert {s.api_key_id for s in Search.objects.all()} == {key.pk}


def test_a_wrong_or_revoked_imported_key_is_a_401(client, resorts, monkeypatch):
    _import(monkeypatch, OLD_KEY, "--trusted-service")
    assert error_codes(_submit(client, OLD_KEY[:-1] + "X", **{"X-User-Id": "u1"}), 401) == {"authentication_failed"}
    api_key_revoke(key=ApiClientKey.objects.get())
    assert error_codes(_submit(client, OLD_KEY, **{"X-User-Id": "u1"}), 401) == {"authentication_failed"}


def test_an_imported_key_is_untrusted_unless_marked(client, resorts, monkeypatch):
    _import(monkeypatch)
    response = _submit(client, OLD_KEY, **{"X-User-Id": "u1"})
    assert (
        error_codes(response, 401) == {"authentication_failed"}
        and "trusted service" in response.json()["errors"][0]["detail"]
    )


def test_console_keys_still_work_and_must_match_their_own_prefix(client, resorts, monkeypatch):
    _import(monkeypatch, OLD_KEY, "--trusted-service")
    _, console_key = api_key_create(name="console", is_trusted_service=True)
    assert _submit(client, console_key, **{"X-User-Id": "u1"}).status_code == 202


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not set"),
        ("short-key", "16-512 characters"),
        ("has a space in it 1234", "printable ASCII"),
    ],
)
def test_a_key_that_cannot_be_kept_is_refused(monkeypatch, value, message):
    with pytest.raises(CommandError, match=message):
        _import(monkeypatch, value)
    assert not ApiClientKey.objects.exists()


def test_importing_the_same_key_twice_is_refused(monkeypatch):
    _import(monkeypatch)
    with pytest.raises(CommandError, match="already stored"):
        _import(monkeypatch)
    assert ApiClientKey.objects.count() == 1


def test_without_from_env_a_new_console_key_is_printed_once(monkeypatch):
    out = io.StringIO()
    call_command("create_api_key", "partner", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("sbk_") and ApiClientKey.objects.get().key_hash == hash_api_key(raw)
