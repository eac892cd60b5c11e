"""Resync a search's mirror from DynamoDB (moto in server mode) from the admin."""

from __future__ import annotations

import pytest

from matching.models import Engine, Search, StaffAction
from tests.console.conftest import make_search
from tests.console.helpers import confirm_bulk, confirm_single, messages_of, texts
from tests.mirror.conftest import aws_env, moto_endpoint, state  # noqa: F401 - fixtures
from workflows.models import WorkflowExecution

pytestmark = pytest.mark.django_db


def test_resync_applies_a_newer_item_now(operator_client, state):  # noqa: F811
    search = make_search(status="running", engine=Engine.DURABLE)
    state.put(search, status="awaiting_vetting", version=4,
              callback_delivery={"state": "pending", "attempts": 0})  # fmt: skip
    response = confirm_single(operator_client, search, "resync", reason="page looked stale")
    search.refresh_from_db()
    assert search.status == "awaiting_vetting"
    assert WorkflowExecution.objects.get(search=search).version == 4
    said = texts(response)
    assert "done: applied item v4 (awaiting_vetting)" in said and "went from running to awaiting vetting" in said
    row = StaffAction.objects.get(search=search)
    assert (row.action, row.status_before, row.status_after, row.outcome) == (
        "resync", "running", "awaiting_vetting", "done",
    )  # fmt: skip
    again = confirm_single(operator_client, search, "resync")
    assert "done: already at item v4" in texts(again)


def test_resync_learns_of_a_dead_lettered_callback(operator_client, state):  # noqa: F811
    search = make_search(status="succeeded", engine=Engine.DURABLE)
    state.put(search, status="succeeded", version=9, results=[],
              callback_delivery={"state": "dead_letter", "attempts": 10, "last_error": "HTTP 502"})  # fmt: skip
    confirm_single(operator_client, search, "resync")
    assert Search.objects.get(pk=search.pk).callback_dead_lettered


def test_resync_of_a_celery_search_is_skipped_and_a_dynamodb_outage_fails(operator_client, state, settings):  # noqa: F811
    celery = make_search(status="running", engine=Engine.CELERY)
    durable = make_search(status="running", engine=Engine.DURABLE)
    settings.MATCHING_WORKFLOW_STATE_TABLE = "no-such-table"
    response = confirm_bulk(operator_client, [celery, durable], "resync")
    said = messages_of(response)
    assert said[0] == ("error", "Resync mirror: 1 skipped, 1 failed.")
    assert any(level == "warning" and "ran on Celery only" in text for level, text in said)
    assert any(level == "error" and "DynamoDB could not be read" in text for level, text in said)
