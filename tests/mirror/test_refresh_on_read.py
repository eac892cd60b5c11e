"""Reads served from the mirror: one bounded DynamoDB read when the mirror is older than the bound."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from matching.models import Engine, SearchStatus
from tests.mirror.conftest import RESULTS
from workflows.durable_console.dynamo import DynamoConfig
from workflows.mirror.refresh import mirror_refresh_if_stale
from workflows.mirror.state import workflow_state_sync
from workflows.models import WorkflowExecution

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _bounds(settings):
    settings.MATCHING_MIRROR_STALENESS_SECONDS = 5
    settings.MATCHING_MIRROR_REFRESH_TIMEOUT_MS = 500


def age_mirror(search, seconds: float) -> None:
    WorkflowExecution.objects.filter(search=search).update(last_synced_at=timezone.now() - timedelta(seconds=seconds))


def test_a_stale_mirror_is_refreshed_from_the_item_before_the_read(state, make_search):
    search = make_search(status="running")
    state.put(search, status="running", version=2)
    workflow_state_sync(full=True)
    state.update(search, status="succeeded", results=RESULTS)
    age_mirror(search, 6)

    assert mirror_refresh_if_stale(search=search) is True

    assert search.status == SearchStatus.SUCCEEDED and search.result_count == 2  # refreshed in place
    assert WorkflowExecution.objects.get(search=search).version == 3


def test_a_fresh_mirror_is_served_without_asking_dynamodb(state, make_search, dynamo_requests):
    search = make_search(status="running")
    state.put(search, status="running", version=2)
    workflow_state_sync(full=True)
    state.update(search, status="succeeded", results=RESULTS)
    age_mirror(search, 2)
    requests = dynamo_requests(DynamoConfig.for_reads_on_request())

    assert mirror_refresh_if_stale(search=search) is False

    assert len(requests) == 0
    search.refresh_from_db()
    assert search.status == SearchStatus.RUNNING


def test_an_unchanged_item_only_renews_the_sync_time(state, make_search, dynamo_requests):
    search = make_search(status="running")
    state.put(search, status="running", version=2)
    workflow_state_sync(full=True)
    age_mirror(search, 60)
    requests = dynamo_requests(DynamoConfig.for_reads_on_request())

    assert mirror_refresh_if_stale(search=search) is False
    assert mirror_refresh_if_stale(search=search) is False  # now fresh: no second read

    assert requests.operations == ["GetItem"]
    synced = WorkflowExecution.objects.get(search=search).last_synced_at
    assert timezone.now() - synced < timedelta(seconds=5)


def test_finished_and_celery_searches_are_served_as_they_are(state, make_search, dynamo_requests):
    finished = make_search(status="succeeded")
    celery = make_search(engine=Engine.CELERY, status="running")
    requests = dynamo_requests(DynamoConfig.for_reads_on_request())
    assert not mirror_refresh_if_stale(search=finished) and not mirror_refresh_if_stale(search=celery)
    assert len(requests) == 0


def test_a_search_not_started_on_the_durable_side_is_not_asked_again_within_the_bound(
    state, make_search, dynamo_requests
):
    search = make_search(status="pending")
    requests = dynamo_requests(DynamoConfig.for_reads_on_request())
    assert mirror_refresh_if_stale(search=search) is False
    assert mirror_refresh_if_stale(search=search) is False
    assert requests.operations == ["GetItem"]


def test_dynamodb_down_is_logged_and_the_console_copy_served(make_search, monkeypatch, settings, caplog):
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    search = make_search(status="running")

    with caplog.at_level(logging.WARNING, logger="workflows.mirror"):
        assert mirror_refresh_if_stale(search=search) is False

    assert "DynamoDB read failed" in caplog.text
    search.refresh_from_db()
    assert search.status == SearchStatus.RUNNING


def test_a_dynamodb_that_never_answers_costs_the_read_one_bounded_wait(make_search, monkeypatch, settings, caplog):
    settings.MATCHING_MIRROR_REFRESH_TIMEOUT_MS = 300
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(0.05)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept_and_never_answer() -> None:
        while not done.is_set():  # stops when the test does
            try:
                accepted.append(silent.accept()[0])
            except (TimeoutError, OSError):
                continue

    acceptor = threading.Thread(target=accept_and_never_answer, daemon=True)
    acceptor.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{silent.getsockname()[1]}")
    search = make_search(status="awaiting_vetting")
    try:
        started = time.monotonic()
        assert mirror_refresh_if_stale(search=search) is False
        elapsed = time.monotonic() - started
    finally:
        done.set()
        acceptor.join(timeout=5)
        for conn in accepted:
            conn.close()
        silent.close()
    # One try (no retries on a request's path), bounded by the read timeout; the elapsed bound is
    # generous because a loaded machine adds its own delay, the connection count is exact.
    assert len(accepted) == 1, f"{len(accepted)} connections in {elapsed:.2f}s"
    assert elapsed < 0.3 + 2.0, f"the read waited {elapsed:.2f}s"
    assert "DynamoDB read failed" in caplog.text


def test_a_missing_table_is_logged_and_the_console_copy_served(state, make_search, settings, caplog):
    settings.MATCHING_WORKFLOW_STATE_TABLE = "no-such-table"
    search = make_search(status="running")
    assert mirror_refresh_if_stale(search=search) is False
    assert "ResourceNotFoundException" in caplog.text


def test_get_answers_with_the_item_when_the_mirror_is_stale(state, make_search, owner):
    search = make_search(status="running")
    state.put(search, status="running", version=2)
    workflow_state_sync(full=True)
    state.update(search, status="succeeded", results=RESULTS)
    age_mirror(search, 6)

    body = owner.get(f"/matching/searches/{search.pk}").json()

    assert body["status"] == "succeeded" and len(body["results"]) == 2
