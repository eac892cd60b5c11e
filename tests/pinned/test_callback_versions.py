"""A workflow callback's `version` is compared with the versions of its own attempt: a late, older
callback of attempt 2 is refused as stale, and attempt 2 is not held to attempt 1's versions."""

import pytest

from matching.models import SearchStatus
from tests.workflows.test_webhook import SECRET, deliver, fixture_body
from workflows.dispatch.submit import search_retry, search_submit
from workflows.models import WebhookDelivery, WorkflowExecution

pytestmark = pytest.mark.django_db

PREFS = {"role": "coach", "skill_level_min": 5, "skill_level_max": 10, "vetting_required": True}


@pytest.fixture(autouse=True)
def _durable_engine(settings, monkeypatch):
    settings.MATCHING_WEBHOOK_SECRET = SECRET
    # New searches and retries go to the durable engine (its start is never sent: dispatch is stubbed).
    settings.MATCHING_WORKFLOW_URL = "http://127.0.0.1:9"
    settings.MATCHING_WORKFLOW_AUTH_MODE = "api_key"
    settings.MATCHING_WORKFLOW_API_KEY = "k"
    monkeypatch.setattr("workflows.dispatch.submit.dispatch_send", lambda **kw: True)


def second_attempt(client, resorts, *, first_attempt_ends_at_version: int):
    search = search_submit(seeker_id="owner-1", preferences=PREFS)
    failed = fixture_body("failed", search, version=first_attempt_ends_at_version)
    assert deliver(client, failed).json()["outcome"] == "applied"
    assert search_retry(search=search, acting_user="staff:op", reason="try again", engine="durable")
    search.refresh_from_db()
    assert (search.attempt, search.status) == (2, SearchStatus.PENDING)
    return search


def test_a_late_older_callback_of_the_second_attempt_is_refused_as_stale(client, resorts):
    search = second_attempt(client, resorts, first_attempt_ends_at_version=1)
    assert deliver(client, fixture_body("awaiting_vetting", search, attempt=2)).json()["outcome"] == "applied"

    late = deliver(client, fixture_body("running", search, attempt=2), msg_id="msg_late")  # version 2 < 4

    assert late.json()["outcome"] == "stale_version"
    assert WebhookDelivery.objects.get(webhook_id="msg_late").outcome == "stale_version"
    search.refresh_from_db()
    assert search.status == SearchStatus.AWAITING_VETTING
    mirrored = WorkflowExecution.objects.get(search=search, attempt=2)
    assert (mirrored.status, mirrored.version) == ("awaiting_vetting", 4)


def test_the_second_attempt_is_not_held_to_the_first_attempts_versions(client, resorts):
    search = second_attempt(client, resorts, first_attempt_ends_at_version=9)

    running = deliver(client, fixture_body("running", search, attempt=2))  # version 2, the new attempt's first

    assert running.json()["outcome"] == "applied"
    search.refresh_from_db()
    assert search.status == SearchStatus.RUNNING
    assert WorkflowExecution.objects.get(search=search, attempt=1).version == 9
