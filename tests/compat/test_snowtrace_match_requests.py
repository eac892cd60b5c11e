"""SnowTrace's match-request and trip calls, replayed over HTTP against the console under gunicorn:
the old service's own tests' calls to /requests and the browser client's sendMatchRequest,
respondToRequest and trip calls, under gunicorn (tests/compat/test_old_match_requests.py replays
them against the live server with the user-service events)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import user_token

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

REQUESTER = str(uuid.UUID(int=0xA5C))
TARGET = str(uuid.UUID(int=0x7A6))


def _bearer(user_id: str) -> dict:
    return {"Authorization": f"Bearer {user_token(user_id)}", "Content-Type": "application/json"}


# --- the old service's own tests ------------------------------------------------------------------


def test_old_test_send_match_request_requires_auth(served):
    assert requests.post(served() + "/requests", json={"target_user_id": "user_123"}, timeout=10).status_code == 401


def test_old_test_send_match_request_with_auth(served, api_key):
    """X-User-Id with SnowTrace's trusted key (the old test sent X-User-Id alone: a 401 here, on purpose)."""
    url = served() + "/requests"
    body = {"target_user_id": "user-123"}
    assert requests.post(url, json=body, headers={"X-User-Id": "test-user-456"}, timeout=10).status_code == 401
    response = requests.post(url, json=body, headers={"X-User-Id": "test-user-456", "X-API-Key": api_key}, timeout=10)
    assert response.status_code == 202
    assert response.json()["status"] == "request sent" and response.json()["request_id"]


def test_old_test_respond_to_request_requires_auth(served):
    assert (
        requests.put(served() + "/requests/some-request-id", json={"action": "accept"}, timeout=10).status_code == 401
    )


def test_old_test_respond_to_match_request_accepts_as_the_target(served, api_key):
    """The old test answered `req-1`, a request that never existed, and got 200; requests are records
    now: the target answers a request it was sent."""
    base = served()
    sent = requests.post(
        base + "/requests",
        json={"target_user_id": "test-user-123"},
        headers={"X-User-Id": "requester-9", "X-API-Key": api_key},
        timeout=10,
    ).json()
    response = requests.put(
        f"{base}/requests/{sent['request_id']}",
        json={"action": "accept"},
        headers={"X-User-Id": "test-user-123", "X-API-Key": api_key},
        timeout=10,
    )
    assert response.status_code == 200 and response.json() == {"status": "request accepted"}


# --- the browser client (snowbuddyApi.ts) ----------------------------------------------------------


def test_browser_send_match_request_and_respond_to_request(served):
    base = served(require_key=False)
    sent = requests.post(base + "/requests", json={"target_user_id": TARGET}, headers=_bearer(REQUESTER), timeout=10)
    assert sent.status_code == 202 and sent.json()["status"] == "request sent"
    answer = requests.put(
        f"{base}/requests/{sent.json()['request_id']}", json={"action": "decline"}, headers=_bearer(TARGET), timeout=10
    )
    assert answer.status_code == 200 and answer.json() == {"status": "request declined"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/trips/trip-1/apply"),  # applyToTrip
        ("put", "/trips/trip-1/applications/req-1"),  # respondToTripApplication
        ("delete", f"/trips/trip-1/participants/{REQUESTER}"),  # leaveTrip
    ],
)
def test_browser_trip_calls_are_not_the_consoles(served, method, path):
    """Trips moved to SnowTrace's user service (`/trip-planning/trips/...`): here a 404."""
    response = getattr(requests, method)(served(require_key=False) + path, headers=_bearer(REQUESTER), timeout=10)
    assert response.status_code == 404
