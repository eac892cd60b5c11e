"""Match requests over the API (docs/contracts.md, "Match requests"): send, answer once, withdraw,
list by role; only the two parties see a request."""

from __future__ import annotations

import json
import uuid

import pytest

from matching.api.throttling import MatchRequestSendThrottle
from matching.models import MatchRequest, MatchRequestStatus, UserEvent
from tests.conftest import user_token
from tests.helpers.errors import error_attrs, error_codes

pytestmark = pytest.mark.django_db


class Party:
    """One user of SnowTrace's backend: its trusted key naming the user in X-User-Id."""

    def __init__(self, client, key: str, user_id: str):
        self.client, self.key, self.user_id = client, key, user_id

    def _headers(self):
        return {"X-API-Key": self.key, "X-User-Id": self.user_id}

    def send(self, target: str, **extra):
        body = json.dumps({"target_user_id": target, **extra})
        return self.client.post("/requests", body, content_type="application/json", headers=self._headers())

    def answer(self, request_id: str, action: str):
        body = json.dumps({"action": action})
        path = f"/requests/{request_id}"
        return self.client.put(path, body, content_type="application/json", headers=self._headers())

    def list(self, **params):
        return self.client.get("/requests", params, headers=self._headers())

    def get(self, request_id: str):
        return self.client.get(f"/requests/{request_id}", headers=self._headers())


@pytest.fixture
def alice(client, api_key):
    return Party(client, api_key, "alice-1")


@pytest.fixture
def bob(client, api_key):
    return Party(client, api_key, "bob-2")


@pytest.fixture
def carol(client, api_key):
    return Party(client, api_key, "carol-3")


def _sent(alice, target="bob-2") -> str:
    response = alice.send(target)
    assert response.status_code == 202, response.content
    return response.json()["request_id"]


def test_sending_answers_202_with_the_old_answer_and_stores_a_pending_request(alice):
    response = alice.send("bob-2")
    assert response.status_code == 202
    body = response.json()
    assert body.keys() == {"status", "request_id"} and body["status"] == "request sent"
    row = MatchRequest.objects.get(pk=body["request_id"])
    assert (row.requester_id, row.target_user_id, row.status) == ("alice-1", "bob-2", "pending")
    assert row.answered_at is None


def test_a_second_send_while_pending_returns_the_same_request(alice):
    first = _sent(alice)
    assert _sent(alice) == first
    assert MatchRequest.objects.count() == 1


def test_a_new_request_may_follow_an_answered_one(alice, bob):
    first = _sent(alice)
    assert bob.answer(first, "decline").status_code == 200
    assert _sent(alice) != first
    assert MatchRequest.objects.filter(status="pending").count() == 1


def test_requesting_yourself_is_a_400_naming_the_field(alice):
    response = alice.send("alice-1")
    assert response.status_code == 400
    assert error_codes(response) == {"self_request"} and error_attrs(response) == {"target_user_id"}
    assert not MatchRequest.objects.exists()


@pytest.mark.parametrize("body", [{}, {"target_user_id": ""}, {"target_user_id": "a b"}, {"target_user_id": 5}])
def test_a_send_without_a_valid_target_is_a_400(alice, body):
    response = alice.client.post(
        "/requests", json.dumps(body), content_type="application/json", headers=alice._headers()
    )
    assert response.status_code == 400
    assert error_attrs(response) == {"target_user_id"}


def test_fields_the_old_service_ignored_are_ignored(alice):
    assert alice.send("bob-2", message="hi!").status_code == 202


def test_the_target_accepts_once_and_a_second_answer_is_a_409(alice, bob):
    request_id = _sent(alice)
    response = bob.answer(request_id, "accept")
    assert response.status_code == 200 and response.json() == {"status": "request accepted"}
    row = MatchRequest.objects.get(pk=request_id)
    assert row.status == "accepted" and row.answered_at is not None
    for action in ("accept", "decline"):
        again = bob.answer(request_id, action)
        assert again.status_code == 409
        assert error_codes(again) == {"already_answered"} and "accepted" in again.json()["errors"][0]["detail"]
    assert MatchRequest.objects.get(pk=request_id).status == "accepted"


def test_the_target_declines_with_the_corrected_spelling(alice, bob):
    request_id = _sent(alice)
    response = bob.answer(request_id, "decline")
    # The old service answered "request declineed" (an f-string typo); the console spells it right.
    assert response.status_code == 200 and response.json() == {"status": "request declined"}
    assert MatchRequest.objects.get(pk=request_id).status == MatchRequestStatus.DECLINED


def test_only_the_target_may_answer(alice, bob, carol):
    request_id = _sent(alice)
    by_requester = alice.answer(request_id, "accept")
    assert by_requester.status_code == 403 and error_codes(by_requester) == {"permission_denied"}
    by_outsider = carol.answer(request_id, "accept")
    assert error_codes(by_outsider, 404) == {"not_found"}
    assert MatchRequest.objects.get(pk=request_id).status == "pending"


def test_the_requester_withdraws_and_then_nobody_can_answer(alice, bob):
    request_id = _sent(alice)
    assert bob.answer(request_id, "withdraw").status_code == 403
    response = alice.answer(request_id, "withdraw")
    assert response.status_code == 200 and response.json() == {"status": "request withdrawn"}
    assert bob.answer(request_id, "accept").status_code == 409
    assert alice.answer(request_id, "withdraw").status_code == 409
    assert MatchRequest.objects.get(pk=request_id).status == "withdrawn"


def test_an_unknown_action_is_a_400(alice, bob):
    request_id = _sent(alice)
    response = bob.answer(request_id, "maybe")
    assert response.status_code == 400 and error_attrs(response) == {"action"}


@pytest.mark.parametrize("request_id", ["req-1", str(uuid.uuid4())])
def test_an_unknown_request_is_a_404(bob, request_id):
    assert error_codes(bob.answer(request_id, "accept"), 404) == {"not_found"}
    assert error_codes(bob.get(request_id), 404) == {"not_found"}


def test_each_party_lists_its_own_by_role(alice, bob, carol):
    to_bob = _sent(alice, "bob-2")
    to_carol = _sent(alice, "carol-3")
    from_carol = _sent(carol, "alice-1")

    def ids(party, **params):
        response = party.list(**params)
        assert response.status_code == 200
        body = response.json()
        assert body.keys() == {"count", "next", "previous", "results"}
        return [r["request_id"] for r in body["results"]]

    assert ids(alice, role="sent") == [to_carol, to_bob]
    assert ids(alice, role="received") == [from_carol]
    assert set(ids(alice)) == {to_bob, to_carol, from_carol}
    assert ids(bob, role="received") == [to_bob] and ids(bob, role="sent") == []
    bob.answer(to_bob, "accept")
    assert ids(alice, role="sent", status="pending") == [to_carol]
    item = alice.list(role="sent", status="accepted").json()["results"][0]
    assert item.keys() == {"request_id", "requester_id", "target_user_id", "status", "created_at", "answered_at"}
    assert (item["requester_id"], item["target_user_id"], item["status"]) == ("alice-1", "bob-2", "accepted")
    assert alice.list(role="everyone").status_code == 400


def test_the_list_pages_like_the_search_list(alice, settings):
    for n in range(22):
        _sent(alice, f"target-{n}")
    first = alice.list(role="sent").json()
    assert first["count"] == 22 and len(first["results"]) == 20 and first["next"]
    assert len(alice.list(role="sent", page=2).json()["results"]) == 2
    assert error_codes(alice.list(role="sent", page=3), 404) == {"not_found"}


def test_another_users_request_is_a_404(alice, carol):
    request_id = _sent(alice)
    assert error_codes(carol.get(request_id), 404) == {"not_found"}
    assert alice.get(request_id).json()["status"] == "pending"


def test_a_bearer_user_and_an_upper_case_target_meet_as_one_user(client, api_key, jwt_secret, alice):
    target = str(uuid.uuid4())
    request_id = _sent(alice, target.upper())
    assert MatchRequest.objects.get(pk=request_id).target_user_id == target
    headers = {"X-API-Key": api_key, "Authorization": f"Bearer {user_token(target)}"}
    response = client.put(
        f"/requests/{request_id}", json.dumps({"action": "accept"}), content_type="application/json", headers=headers
    )
    assert response.status_code == 200


def test_sends_are_limited_per_user_and_refused_bodies_do_not_count(alice, bob, monkeypatch):
    monkeypatch.setitem(MatchRequestSendThrottle.THROTTLE_RATES, "match_request_send", "2/min")
    for _ in range(5):
        assert alice.send("alice-1").status_code == 400
    assert alice.send("bob-2").status_code == 202
    assert alice.send("carol-3").status_code == 202
    limited = alice.send("dave-4")
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert bob.send("alice-1").status_code == 202  # another user's own limit


def test_no_user_service_means_no_events_and_a_configured_one_gets_them_in_the_outbox(alice, bob, settings):
    settings.USER_CORE_API_URL = ""
    _sent(alice, "erin-5")
    assert not UserEvent.objects.exists()
    settings.USER_CORE_API_URL = "http://127.0.0.1:9"  # nothing listens: the request still succeeds
    request_id = _sent(alice, "carol-3")
    assert alice.answer(_sent(alice, "dave-4"), "withdraw").status_code == 200  # no event: user-core knows none
    to_bob = _sent(alice, "bob-2")
    assert bob.answer(to_bob, "decline").status_code == 200
    events = list(UserEvent.objects.order_by("pk"))
    assert [e.event_type for e in events] == [
        "snowbuddy.match.request.sent",
        "snowbuddy.match.request.sent",
        "snowbuddy.match.request.sent",
        "snowbuddy.match.request.declined",
    ]
    assert all(e.state == "pending" and e.next_attempt_at for e in events)
    body = events[0].body
    assert body.keys() == {"user_id", "source_project", "event_type", "occurred_at", "payload"}
    assert body["source_project"] == "snowbuddy-matching" and body["user_id"] == "alice-1"
    assert body["payload"] == {"request_id": request_id, "target_user_id": "carol-3"}
    # An answer is the responder's event, with the request's id, as the old service built it.
    assert events[3].body["user_id"] == "bob-2" and events[3].body["payload"] == {"request_id": to_bob}
