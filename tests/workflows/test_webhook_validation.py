"""A signed callback is checked whole before anything is applied: a bad one is a 400 naming the
field, the search is untouched and no delivery is recorded (so a corrected redelivery applies)."""

import json

import pytest

from matching.models import SearchStatus
from tests.helpers.bodies import VETTED_COACH as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.durable import durable_engine_never_reached
from tests.helpers.errors import error_attrs, error_codes, error_of
from tests.workflows.test_webhook import SECRET, deliver, fixture_body
from workflows.dispatch.submit import search_submit
from workflows.durable.signing import signature_headers
from workflows.models import WebhookDelivery, WorkflowExecution

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _webhook_secret(settings, monkeypatch):
    settings.MATCHING_WEBHOOK_SECRET = SECRET
    # Callbacks apply to durable searches only: new searches go to the durable engine (never sent).
    durable_engine_never_reached(settings)
    stub_dispatch_send(monkeypatch)


@pytest.fixture
def search(resorts):
    return search_submit(seeker_id="owner-1", preferences=PREFS)


def _succeeded(search, mutate) -> bytes:
    body = json.loads(fixture_body("succeeded", search))
    mutate(body)
    return json.dumps(body).encode()


def _result(body, i=0):
    return body["payload"]["results"][i]


CASES = {
    "duplicate ranks": (lambda b: _result(b, 1).update(rank=1), "payload.results.1.rank"),
    "duplicate users": (lambda b: _result(b, 1).update(user_id="u000042"), "payload.results.1.user_id"),
    "non-numeric score": (lambda b: _result(b).update(score="high"), "payload.results.0.score"),
    "boolean score": (lambda b: _result(b).update(score=True), "payload.results.0.score"),
    "score over 1": (lambda b: _result(b).update(score=7), "payload.results.0.score"),
    "list as breakdown": (lambda b: _result(b).update(breakdown=[1, 1, 1, 1]), "payload.results.0.breakdown"),
    "breakdown missing a dimension": (
        lambda b: _result(b)["breakdown"].pop("skill"),
        "payload.results.0.breakdown.skill",
    ),
    "text in breakdown": (lambda b: _result(b)["breakdown"].update(role="yes"), "payload.results.0.breakdown.role"),
    "rank zero": (lambda b: _result(b).update(rank=0), "payload.results.0.rank"),
    "user id too long": (lambda b: _result(b).update(user_id="u" * 65), "payload.results.0.user_id"),
    "nickname not text": (lambda b: _result(b).update(nickname=["x"]), "payload.results.0.nickname"),
    "result not an object": (lambda b: b["payload"]["results"].append("u1"), "payload.results.2"),
    "results not a list": (lambda b: b["payload"].update(results={"u1": 1}), "payload.results"),
    "too many results": (lambda b: b["payload"].update(results=[_result(b)] * 101), "payload.results"),
    "unknown result field": (lambda b: _result(b).update(extra=1), "payload.results.0.extra"),
    "version beyond bigint": (lambda b: b.update(version=2**63), "version"),
    "negative version": (lambda b: b.update(version=-1), "version"),
    "boolean version": (lambda b: b.update(version=True), "version"),
    "fractional version": (lambda b: b.update(version=7.5), "version"),
    "fractional rank": (lambda b: _result(b).update(rank=1.5), "payload.results.0.rank"),
    "status an object": (lambda b: b.update(status={}), "status"),
    "search id without hyphens": (lambda b: b.update(search_id=b["search_id"].replace("-", "")), "search_id"),
    "attempt beyond integer": (lambda b: b.update(attempt=2**31), "attempt"),
    "attempt zero": (lambda b: b.update(attempt=0), "attempt"),
    "search id not a uuid": (lambda b: b.update(search_id="not-a-uuid"), "search_id"),
    "search id a number": (lambda b: b.update(search_id=12), "search_id"),
    "unknown status": (lambda b: b.update(status="exploded"), "status"),
    "payload a list": (lambda b: b.update(payload=[]), "payload"),
    "error a number": (lambda b: b["payload"].update(error=42), "payload.error"),
    "error object without a code": (lambda b: b["payload"].update(error={"message": "x"}), "payload.error.code"),
    "pending callback a string": (lambda b: b["payload"].update(pending_callback="x"), "payload.pending_callback"),
    "unknown top-level field": (lambda b: b.update(admin=True), "admin"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_signed_callback_is_a_400_that_changes_nothing(client, search, case):
    mutate, attr = CASES[case]
    response = deliver(client, _succeeded(search, mutate))
    assert error_of(response, 400)["type"] == "validation_error"
    assert attr in error_attrs(response)
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING and search.result_count == 0
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "too_deep"),
        (b'{"search_id": "a", "search_id": "b"}', "duplicate_key"),
        (b'{"version": NaN}', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        # PostgreSQL text holds neither (each was a 500 at the first write).
        (b'{"search_id": "a", "payload": {"results": [{"nickname": "a\\u0000b"}]}}', "unsupported_character"),
        (b'{"search_id": "a", "payload": {"error": "\\ud800"}}', "unsupported_character"),
        (b'{"search_id": "a", "payload": {"error": {"code": "x"}, "\\u0000": 1}}', "unsupported_character"),
        (b"", "invalid_json"),
    ],
)
def test_a_signed_body_that_is_not_strict_json_is_a_400(client, search, raw, code):
    assert error_codes(deliver(client, raw), 400) == {code}


def test_a_version_written_7_0_is_the_integer_7_as_json_schema_counts_it(client, search):
    response = deliver(client, _succeeded(search, lambda b: b.update(version=7.0, attempt=1.0)))
    assert response.json() == {"outcome": "applied"}
    assert WorkflowExecution.objects.get(search=search).version == 7
    stale = _succeeded(search, lambda b: b.update(version=7.0))
    assert deliver(client, stale).json() == {"outcome": "stale_version"}


@pytest.mark.parametrize("msg_id", ["msg_\x00", "msg\t1", "msg_" + "x" * 197, "msg_é"])
def test_a_webhook_id_that_cannot_be_stored_whole_is_a_400(client, search, msg_id):
    response = deliver(client, fixture_body("succeeded", search), msg_id=msg_id)
    assert error_codes(response, 400) == {"invalid_webhook_id"}
    assert not WebhookDelivery.objects.exists()


def test_a_webhook_id_of_200_characters_is_the_key_as_sent(client, search):
    msg_id = "msg_" + "x" * 196
    assert deliver(client, fixture_body("succeeded", search), msg_id=msg_id).json() == {"outcome": "applied"}
    assert WebhookDelivery.objects.get().webhook_id == msg_id


def test_a_corrected_redelivery_after_a_400_is_applied(client, search):
    bad = _succeeded(search, lambda b: _result(b, 1).update(rank=1))
    assert deliver(client, bad, msg_id="msg_fixed_later").status_code == 400
    response = deliver(client, fixture_body("succeeded", search), msg_id="msg_fixed_later")
    assert response.json() == {"outcome": "applied"}


def test_an_error_object_from_the_workflow_is_accepted(client, search):
    body = fixture_body(
        "failed", search, payload={"results": None, "error": {"code": "vetting_rejected", "message": "no"}}
    )
    assert deliver(client, body).status_code == 200


def test_a_get_on_the_webhook_is_a_json_405(client):
    response = client.get("/webhooks/matching")
    assert error_codes(response, 405) == {"method_not_allowed"}
    assert response["Allow"] == "POST"


def test_an_unsigned_callback_is_a_401_in_the_error_shape(client, search):
    response = client.post(
        "/webhooks/matching", data=fixture_body("succeeded", search), content_type="application/json"
    )
    assert error_of(response, 401)["type"] == "client_error"


def test_a_signature_over_other_bytes_is_a_401_whatever_the_body(client, search):
    signed = signature_headers(SECRET, b"{}")
    response = client.post("/webhooks/matching", data=b"[" * 5000, content_type="application/json", headers=signed)
    assert error_codes(response, 401) == {"bad_signature"}
