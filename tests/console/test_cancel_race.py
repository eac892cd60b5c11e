"""Cancel racing a finishing callback: one side wins cleanly, whichever comes first, and the page says which."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from django.urls import reverse

from matching.models import Engine, Search, SearchStatus, StaffAction
from tests.console.conftest import make_search
from tests.console.helpers import act_url, confirm_single, messages_of
from workflows.durable.signing import signature_headers
from workflows.durable_console.callbacks import workflow_callback_apply
from workflows.models import WebhookDelivery
from workflows.staff_actions import search_staff_cancel

SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3ODk="
BREAKDOWN = {"skill": 1.0, "location": 1.0, "availability": 1.0, "role": 1.0, "knowledge": None}
RESULTS = [{"user_id": "u000042", "nickname": "PowderKaze42", "score": 0.91, "rank": 1, "breakdown": BREAKDOWN}]


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.MATCHING_WEBHOOK_SECRET = SECRET


def succeeded_callback(client, search: Search):
    body = json.dumps({"search_id": str(search.pk), "attempt": 1, "status": "succeeded", "version": 5,
                       "payload": {"results": RESULTS, "error": None}}).encode()  # fmt: skip
    response = client.post(
        "/webhooks/matching", data=body, content_type="application/json", headers=signature_headers(SECRET, body)
    )
    assert response.status_code == 200
    return response.json()["outcome"]


@pytest.mark.django_db
def test_when_the_callback_finishes_first_the_cancel_is_skipped_and_says_so(operator_client, client):
    search = make_search(status="running", engine=Engine.DURABLE)
    # The operator opens the confirmation while the search still runs...
    assert "Cancel: 1 search" in operator_client.get(act_url(search, "cancel")).content.decode()
    # ...the workflow's signed callback lands first...
    assert succeeded_callback(client, search) == "applied"
    # ...then the operator confirms.
    response = confirm_single(operator_client, search, "cancel", reason="seeker withdrew")
    search.refresh_from_db()
    assert search.status == SearchStatus.SUCCEEDED and search.result_count == 1
    assert (
        "warning",
        f"Search {str(search.pk)[:8]}: skipped: it had already succeeded (durable-callback was first)",
    ) in messages_of(response)
    action = StaffAction.objects.get(search=search)
    assert (action.outcome, action.status_before, action.status_after) == ("skipped", "succeeded", "succeeded")
    page = operator_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert "Succeeded" in page and "skipped" in page and "u000042" in page


@pytest.mark.django_db
def test_when_the_cancel_comes_first_the_callback_changes_nothing(operator_client, client):
    search = make_search(status="running", engine=Engine.DURABLE)
    response = confirm_single(operator_client, search, "cancel", reason="seeker withdrew")
    assert ("success", f"Search {str(search.pk)[:8]}: done: cancelled; the durable execution is being stopped") in (
        messages_of(response)
    )
    assert succeeded_callback(client, search) == "ignored_terminal"
    search.refresh_from_db()
    assert search.status == SearchStatus.CANCELLED and search.result_count == 0 and not search.results.exists()
    assert WebhookDelivery.objects.get(search=search).outcome == "ignored_terminal"
    page = operator_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert "Cancelled" in page and "ignored_terminal" in page


@pytest.mark.django_db(transaction=True)
def test_a_cancel_and_a_callback_at_the_same_moment_have_exactly_one_winner(operator, settings):
    settings.MATCHING_WORKFLOW_URL = ""  # the durable stop after commit has nowhere to go; it is logged
    for round_ in range(4):
        search = make_search(status="running", engine=Engine.DURABLE)
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def cancel(search=search, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            outcomes["cancel"] = search_staff_cancel(search=search, user=operator, reason="race").outcome
            connection.close()

        def callback(search=search, barrier=barrier, outcomes=outcomes, round_=round_):
            body = {"search_id": str(search.pk), "attempt": 1, "status": "succeeded", "version": 5,
                    "payload": {"results": RESULTS}}  # fmt: skip
            barrier.wait()
            outcomes["callback"] = workflow_callback_apply(webhook_id=f"msg_race_{round_}", body=body)
            connection.close()

        threads = [threading.Thread(target=cancel), threading.Thread(target=callback)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        search.refresh_from_db()
        assert (outcomes["cancel"] == "done") != (outcomes["callback"] == "applied"), outcomes
        expected = SearchStatus.CANCELLED if outcomes["cancel"] == "done" else SearchStatus.SUCCEEDED
        assert search.status == expected
        assert search.results.exists() == (expected == SearchStatus.SUCCEEDED)
