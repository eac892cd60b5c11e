"""LOG_FORMAT=json: each line one JSON object carrying request_id, search_id, attempt, engine and
trace_id where known; one line per lifecycle transition, per outbox send, per staff action."""

from __future__ import annotations

import io
import json
import logging

import pytest

from matching.models import Search
from snowbuddy.logs import CONTEXT_FIELDS, ContextFilter, JsonFormatter, log_context
from workflows.staff_actions import search_staff_cancel

VALID = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}


@pytest.fixture
def json_lines():
    """The root logger's lines as the console's JSON handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        raw = stream.getvalue().splitlines()
        assert raw, "nothing was logged"
        return [json.loads(line) for line in raw]  # each line alone is one JSON object

    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.django_db(transaction=True)
def test_a_submit_and_a_staff_cancel_log_json_lines_with_their_ids(
    owner, staff_operator, settings, monkeypatch, json_lines
):
    settings.MATCHING_DISPATCH_RELAY = "inline"  # the send, and its line, inside the request
    settings.MATCHING_WORKFLOW_URL = ""
    monkeypatch.setattr("workflows.dispatch.submit._send_to_engine", lambda dispatch, quick: None)  # the broker's side

    response = owner.post("/matching/searches", VALID, headers={"X-Request-ID": "req-json-logs-1"})
    assert response.status_code == 202, response.content
    search_id = response.json()["search_id"]
    with log_context(request_id="req-staff-2"):
        result = search_staff_cancel(search=Search.objects.get(pk=search_id), user=staff_operator, reason="test")
    assert result.outcome == "done"

    lines = json_lines()
    for line in lines:
        assert {"time", "level", "logger", "message", *CONTEXT_FIELDS} <= line.keys(), line
        assert line["trace_id"] == ""  # no span is active
    transitions = [line for line in lines if line["logger"] == "matching.lifecycle"]
    assert [(t["event"], t["from_status"], t["to_status"]) for t in transitions] == [
        ("submitted", "", "pending"),
        ("dispatched", "pending", "dispatched"),
        ("cancelled", "dispatched", "cancelled"),
    ]
    for line in transitions:
        assert (line["search_id"], line["attempt"], line["engine"]) == (search_id, 1, "celery")
    assert [t["request_id"] for t in transitions] == ["req-json-logs-1", "req-json-logs-1", "req-staff-2"]
    [send] = [line for line in lines if line["logger"] == "matching.outbox"]
    assert (send["outbox"], send["outcome"], send["search_id"], send["request_id"]) == (
        "dispatch",
        "sent",
        search_id,
        "req-json-logs-1",
    )
    [staff] = [line for line in lines if line["logger"] == "matching.staff"]
    assert (staff["action"], staff["outcome"], staff["staff_user"], staff["search_id"], staff["attempt"]) == (
        "cancel",
        "done",
        "operator",
        search_id,
        1,
    )
    assert staff["request_id"] == "req-staff-2"


def test_text_lines_stay_readable(settings):
    """`make run` keeps the plain format (LOG_FORMAT unset)."""
    assert settings.LOG_FORMAT == "text"
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "plain"
