"""The signed workflow callback, replayed from named JSON fixtures."""

import json
import time
from pathlib import Path

import pytest

from matching.models import Search, SearchEvent, SearchResult, SearchStatus
from tests.helpers.bodies import VETTED_COACH as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.durable import durable_engine_never_reached
from tests.helpers.errors import error_codes
from workflows.dispatch.submit import search_submit
from workflows.durable.signing import signature_headers
from workflows.models import WebhookDelivery, WorkflowExecution

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3ODk="


@pytest.fixture(autouse=True)
def _webhook_secret(settings, monkeypatch):
    settings.MATCHING_WEBHOOK_SECRET = SECRET
    # New searches go to the durable engine (its start is never sent: dispatch is stubbed).
    durable_engine_never_reached(settings)
    stub_dispatch_send(monkeypatch)


@pytest.fixture
def search(resorts):
    return search_submit(seeker_id="owner-1", preferences=PREFS)


def fixture_body(name: str, search: Search, **changes) -> bytes:
    body = json.loads((FIXTURES / f"{name}.json").read_text().replace("{{search_id}}", str(search.pk)))
    body.update(changes)
    return json.dumps(body).encode()


def deliver(client, body: bytes, *, secret=SECRET, msg_id=None, timestamp=None, headers=None):
    signed = signature_headers(secret, body, msg_id=msg_id, timestamp=timestamp)
    return client.post(
        "/webhooks/matching", data=body, content_type="application/json", headers={**signed, **(headers or {})}
    )


def test_a_signed_success_callback_stores_the_ranked_results(client, search, owner):
    response = deliver(client, fixture_body("succeeded", search))
    assert response.status_code == 200 and response.json() == {"outcome": "applied"}
    search.refresh_from_db()
    assert search.status == SearchStatus.SUCCEEDED and search.result_count == 2
    body = owner.get(f"/matching/searches/{search.pk}").json()
    assert [(r["user_id"], r["score"], r["nickname"]) for r in body["results"]] == [
        ("u000042", 0.91, "PowderKaze42"),
        ("u000007", 0.74, "SoraRidge7"),
    ]
    assert WorkflowExecution.objects.get(search=search).version == 7


def test_a_wrong_signature_is_a_401_and_leaves_the_search_untouched(client, search):
    response = deliver(client, fixture_body("succeeded", search), secret="whsec_" + "d3Jvbmctc2VjcmV0")
    assert error_codes(response, 401) == {"bad_signature"}
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING
    assert not WebhookDelivery.objects.exists()


def test_a_body_changed_after_signing_is_a_401(client, search):
    body = fixture_body("succeeded", search)
    signed = signature_headers(SECRET, body)
    tampered = body.replace(b"0.91", b"0.99")
    response = client.post("/webhooks/matching", data=tampered, content_type="application/json", headers=signed)
    assert error_codes(response, 401) == {"bad_signature"}
    assert not SearchResult.objects.exists()


# 330, not 301: a future timestamp 301 s ahead is within tolerance by the time a loaded machine
# verifies it a second later.
@pytest.mark.parametrize("skew", [-330, 330, -3600])
def test_a_timestamp_more_than_five_minutes_off_is_a_401(client, search, skew):
    response = deliver(client, fixture_body("succeeded", search), timestamp=int(time.time()) + skew)
    assert error_codes(response, 401) == {"timestamp_out_of_tolerance"}
    assert response.json()["errors"][0]["code"] == "timestamp_out_of_tolerance"
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING


def test_missing_signature_headers_are_a_401(client, search):
    response = client.post(
        "/webhooks/matching", data=fixture_body("succeeded", search), content_type="application/json"
    )
    assert error_codes(response, 401) == {"missing_headers"}


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"search_id": "nope", "attempt": 1, "status": "running", "version": 1}',
        b'{"search_id": "8d3e4c52-9d43-4c2e-9c1a-4f0f9a9b7c11", "attempt": 1, "status": "exploded", "version": 1}',
        b'{"search_id": "8d3e4c52-9d43-4c2e-9c1a-4f0f9a9b7c11", "attempt": "1", "status": "running", "version": 1}',
    ],
)
def test_a_malformed_but_signed_body_is_a_400(client, search, body):
    response = deliver(client, body)
    assert response.status_code == 400
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING


def test_a_replayed_callback_changes_state_once(client, search):
    body = fixture_body("succeeded", search)
    outcomes = [deliver(client, body, msg_id="msg_replayed").json()["outcome"] for _ in range(3)]
    assert outcomes == ["applied", "duplicate", "duplicate"]
    assert SearchResult.objects.filter(search=search).count() == 2
    assert SearchEvent.objects.filter(search=search, kind="succeeded").count() == 1


def test_an_older_version_arriving_late_is_ignored(client, search):
    assert deliver(client, fixture_body("awaiting_vetting", search)).json()["outcome"] == "applied"
    late = deliver(client, fixture_body("running", search))  # version 2 < 4
    assert late.json()["outcome"] == "stale_version"
    search.refresh_from_db()
    assert search.status == SearchStatus.AWAITING_VETTING


def test_nothing_changes_a_search_after_it_finished(client, search):
    deliver(client, fixture_body("succeeded", search))
    later = deliver(client, fixture_body("failed", search))  # newer version, but the search is terminal
    assert later.json()["outcome"] == "ignored_terminal"
    search.refresh_from_db()
    assert search.status == SearchStatus.SUCCEEDED and search.error == ""


def test_a_late_failure_after_success_leaves_the_execution_mirror_as_it_was(client, search):
    deliver(client, fixture_body("succeeded", search))
    before = WorkflowExecution.objects.get(search=search)

    later = deliver(client, fixture_body("failed", search))  # version 9 > 7, after the search finished

    assert later.json()["outcome"] == "ignored_terminal"
    after = WorkflowExecution.objects.get(search=search)
    assert (after.status, after.version, after.error, after.ended_at) == (
        "succeeded",
        7,
        "",
        before.ended_at,
    )


def test_a_structured_workflow_error_keeps_its_code_and_message(client, search):
    body = json.loads(fixture_body("failed", search))
    body["payload"]["error"] = {"code": "vetting_rejected", "message": "no candidate was approved"}

    assert deliver(client, json.dumps(body).encode()).json()["outcome"] == "applied"

    search.refresh_from_db()
    assert search.error == "vetting_rejected: no candidate was approved"
    assert WorkflowExecution.objects.get(search=search).error == "vetting_rejected: no candidate was approved"


def test_a_signed_callback_for_a_search_on_the_celery_engine_is_refused(client, search):
    Search.objects.filter(pk=search.pk).update(engine="celery")

    response = deliver(client, fixture_body("succeeded", search))

    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "wrong_engine"
    search.refresh_from_db()
    assert search.status == SearchStatus.PENDING
    assert not SearchResult.objects.exists() and not WorkflowExecution.objects.filter(version__gt=0).exists()


def test_a_callback_of_the_same_version_under_another_id_changes_nothing(client, search):
    assert deliver(client, fixture_body("awaiting_vetting", search), msg_id="msg_a").json()["outcome"] == "applied"
    running_again = fixture_body("running", search, version=4)

    assert deliver(client, running_again, msg_id="msg_b").json()["outcome"] == "stale_version"

    search.refresh_from_db()
    assert search.status == SearchStatus.AWAITING_VETTING
    assert WorkflowExecution.objects.get(search=search).status == "awaiting_vetting"


def test_a_failure_callback_records_the_workflows_error(client, search):
    deliver(client, fixture_body("failed", search))
    search.refresh_from_db()
    assert search.status == SearchStatus.FAILED
    assert search.error.startswith("vetting_rejected")


def test_a_callback_for_an_older_attempt_is_ignored(client, search):
    Search.objects.filter(pk=search.pk).update(attempt=2)
    assert deliver(client, fixture_body("succeeded", search)).json()["outcome"] == "superseded_attempt"
    assert not SearchResult.objects.exists()


def test_a_callback_for_an_unknown_search_is_a_404(client, search):
    body = fixture_body("succeeded", search, search_id="8d3e4c52-9d43-4c2e-9c1a-4f0f9a9b7c11")
    assert error_codes(deliver(client, body), 404) == {"unknown_search"}


def test_without_a_configured_secret_callbacks_are_refused(client, search, settings):
    settings.MATCHING_WEBHOOK_SECRET = ""
    assert deliver(client, fixture_body("succeeded", search)).status_code == 503
