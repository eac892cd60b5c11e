"""The local Durable API's request authentication: SigV4 recomputed with botocore, and API keys.

Requests are signed by botocore's own ``SigV4Auth``, exactly as the console's client signs
them, and sent over HTTP to a Durable API server whose handler is a stub.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devtools.durable_local import durable_api_server
from devtools.durable_local.sigv4 import (
    ApiKeyConfig,
    AuthConfig,
    AuthError,
    SigV4Config,
    verify_sigv4,
)

ACCESS_KEY = "AKIDTESTLOCAL"
SECRET = "test-secret-key"
REGION = "us-east-1"
SERVICE = "lambda"
API_KEY = "test-api-key"
CALLBACK_PATH = "/workflows/matching/vetting-callback"


class StubApi:
    """Records the Function URL events it is handed and answers like the real API."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"path": event["rawPath"]}),
        }


@pytest.fixture
def stub_api() -> StubApi:
    return StubApi()


@pytest.fixture
def server_url(stub_api: StubApi) -> Iterator[str]:
    auth = AuthConfig(
        sigv4=SigV4Config(credentials={ACCESS_KEY: SECRET}, region=REGION, service=SERVICE),
        api_key=ApiKeyConfig(keys=frozenset({API_KEY})),
    )
    running = durable_api_server.start_in_thread(
        auth=auth, handler=stub_api, region=REGION, public_paths=(CALLBACK_PATH,)
    )
    yield running.url
    running.stop()


def sign(
    url: str,
    body: bytes = b'{"search_id": "s1"}',
    *,
    method: str = "POST",
    access_key: str = ACCESS_KEY,
    secret: str = SECRET,
    region: str = REGION,
    service: str = SERVICE,
    at: dt.datetime | None = None,
    extra_headers: dict[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json", **(extra_headers or {})}
    )
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    if at is None:
        signer.add_auth(request)
    else:
        # botocore stamps X-Amz-Date from this clock; sign "in the past".
        with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
            signer.add_auth(request)
    prepared = request.prepare()
    return dict(prepared.headers), body


def send(method: str, url: str, headers: dict[str, str], body: bytes) -> requests.Response:
    return requests.request(method, url, headers=headers, data=body, timeout=10)


def test_a_request_signed_by_botocore_reaches_the_handler_as_a_function_url_event(
    server_url: str, stub_api: StubApi
) -> None:
    url = f"{server_url}/workflows/matching/status:batch?include_results=true"
    headers, body = sign(url)

    response = send("POST", url, headers, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"path": "/workflows/matching/status:batch"}
    event = stub_api.events[-1]
    assert event["version"] == "2.0"
    assert event["rawQueryString"] == "include_results=true"
    assert event["queryStringParameters"] == {"include_results": "true"}
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == ACCESS_KEY
    assert event["headers"]["content-type"] == "application/json"
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"search_id": "s1"}


def test_a_signed_get_without_a_body_passes(server_url: str) -> None:
    url = f"{server_url}/workflows/matching/s1?include_candidates=true"
    headers, body = sign(url, b"", method="GET")
    assert send("GET", url, headers, body).status_code == 200


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda h, b: ({**h, "Authorization": h["Authorization"][:-4] + "0000"}, b), "signature mismatch"),
        (lambda h, b: (h, b'{"search_id": "s2"}'), "signature mismatch"),
        (
            lambda h, b: ({**h, "X-Amz-Content-SHA256": "0" * 64}, b),
            "X-Amz-Content-SHA256 does not match the body",
        ),
    ],
    ids=["wrong-signature", "changed-body", "lying-payload-hash"],
)
def test_a_tampered_request_is_refused(server_url: str, stub_api: StubApi, tamper: Any, reason: str) -> None:
    url = f"{server_url}/workflows/matching/start"
    headers, body = tamper(*sign(url))

    response = send("POST", url, headers, body)

    assert response.status_code == 403
    assert response.json() == {"Message": "Forbidden", "reason": reason}
    assert stub_api.events == []


def test_a_changed_body_with_a_recomputed_payload_hash_is_still_refused(server_url: str) -> None:
    url = f"{server_url}/workflows/matching/start"
    original = b'{"search_id": "s1"}'
    headers, _ = sign(url, original, extra_headers={"X-Amz-Content-SHA256": hashlib.sha256(original).hexdigest()})
    forged = b'{"search_id": "s2"}'
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(forged).hexdigest()

    response = send("POST", url, headers, forged)

    # The hash header matches the forged body, but it was signed with the original value.
    assert (response.status_code, response.json()["reason"]) == (403, "signature mismatch")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"region": "eu-west-1"}, "credential scope names another region"),
        ({"service": "execute-api"}, "credential scope names another service"),
        ({"access_key": "AKIDUNKNOWN"}, "unknown access key"),
        ({"secret": "not-the-secret"}, "signature mismatch"),
        ({"at": -dt.timedelta(minutes=6)}, "X-Amz-Date is too far from the server clock"),
        ({"at": dt.timedelta(minutes=6)}, "X-Amz-Date is too far from the server clock"),
    ],
    ids=["wrong-region", "wrong-service", "unknown-key", "wrong-secret", "six-minutes-old", "six-minutes-ahead"],
)
def test_a_request_signed_for_something_else_is_refused(
    server_url: str, overrides: dict[str, Any], reason: str
) -> None:
    url = f"{server_url}/workflows/matching/start"
    if "at" in overrides:
        # An offset from now, taken when the test runs (not when it was collected).
        overrides = {**overrides, "at": dt.datetime.now(dt.UTC) + overrides["at"]}
    headers, body = sign(url, **overrides)

    response = send("POST", url, headers, body)

    assert response.status_code == 403
    assert response.json()["reason"] == reason


def test_a_four_minute_old_signature_is_still_accepted(server_url: str) -> None:
    url = f"{server_url}/workflows/matching/start"
    headers, body = sign(url, at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4))
    assert send("POST", url, headers, body).status_code == 200


def test_the_api_key_header_is_accepted_and_a_wrong_or_missing_key_refused(server_url: str) -> None:
    url = f"{server_url}/workflows/matching/s1"
    assert requests.get(url, headers={"X-API-Key": API_KEY}, timeout=10).status_code == 200
    assert requests.get(url, headers={"x-api-key": API_KEY}, timeout=10).status_code == 200
    wrong = requests.get(url, headers={"X-API-Key": API_KEY + "x"}, timeout=10)
    assert (wrong.status_code, wrong.json()["reason"]) == (403, "invalid API key")
    missing = requests.get(url, timeout=10)
    assert (missing.status_code, missing.json()["Message"]) == (403, "Forbidden")


def test_a_bad_signature_is_not_rescued_by_a_good_api_key(server_url: str) -> None:
    url = f"{server_url}/workflows/matching/start"
    headers, body = sign(url, secret="not-the-secret")
    assert send("POST", url, {**headers, "X-API-Key": API_KEY}, body).status_code == 403


def test_the_provider_callback_path_skips_platform_auth(server_url: str, stub_api: StubApi) -> None:
    # GlobalCoach cannot sign; the handler checks its per-search token instead.
    response = requests.post(f"{server_url}{CALLBACK_PATH}", json={"token": "t"}, timeout=10)
    assert response.status_code == 200
    assert "authorizer" not in stub_api.events[-1]["requestContext"]


def test_only_the_configured_modes_are_accepted(stub_api: StubApi) -> None:
    key_only = durable_api_server.start_in_thread(
        auth=AuthConfig(api_key=ApiKeyConfig(keys=frozenset({API_KEY}))), handler=stub_api
    )
    try:
        url = f"{key_only.url}/workflows/matching/start"
        headers, body = sign(url)
        refused = send("POST", url, headers, body)
        assert (refused.status_code, refused.json()["reason"]) == (403, "SigV4 is not accepted here")
    finally:
        key_only.stop()


def test_verification_is_pinned_to_the_request_target_and_method() -> None:
    config = SigV4Config(credentials={ACCESS_KEY: SECRET}, region=REGION, service=SERVICE)
    headers, body = sign("http://127.0.0.1:9/workflows/matching/s1/cancel", b'{"reason": "x"}')
    pairs = [*headers.items(), ("Host", "127.0.0.1:9")]

    assert (
        verify_sigv4(method="POST", raw_path="/workflows/matching/s1/cancel", headers=pairs, body=body, config=config)
        == ACCESS_KEY
    )
    with pytest.raises(AuthError, match="signature mismatch"):
        verify_sigv4(method="POST", raw_path="/workflows/matching/s2/cancel", headers=pairs, body=body, config=config)
    with pytest.raises(AuthError, match="signature mismatch"):
        verify_sigv4(method="PUT", raw_path="/workflows/matching/s1/cancel", headers=pairs, body=body, config=config)
