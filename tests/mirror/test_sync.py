"""Pull sync of the durable engine's state (moto DynamoDB in server mode) into the console's mirror."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from matching.models import Engine, Search, SearchEvent, SearchResult, SearchStatus
from matching.services.leases import search_claim
from matching.services.searches import search_succeed
from tests.mirror.conftest import RESULTS, ago, history_event
from workflows.durable_console.callbacks import workflow_callback_apply
from workflows.mirror.console_events import console_events_sync
from workflows.mirror.history import workflow_history_sync
from workflows.mirror.state import workflow_state_sync
from workflows.models import ExecutionTimelineEntry, SyncWatermark, WorkflowExecution

pytestmark = pytest.mark.django_db


def timeline_of(search: Search, attempt: int = 1) -> list[tuple[str, str, str]]:
    return list(
        ExecutionTimelineEntry.objects.filter(execution__search=search, execution__attempt=attempt)
        .order_by("at", "id")
        .values_list("source", "name", "event")
    )


def test_a_full_sync_mirrors_every_item_and_applies_its_status(state, make_search):
    running, vetting, done = (make_search(status="dispatched") for _ in range(3))
    state.put(running, status="running", version=2)
    state.put(
        vetting,
        status="awaiting_vetting",
        version=3,
        pending_callback={"callback_id": "cb-1", "name": "vetting", "deadline": ago(minutes=-30)},
    )
    state.put(
        done,
        status="succeeded",
        version=5,
        results=RESULTS,
        started_at=ago(minutes=2),
        finished_at=ago(minutes=1),
        callback_delivery={"state": "delivered", "attempts": 1, "delivered_at": ago(seconds=50)},
    )

    report = workflow_state_sync(full=True)

    assert (report.mode, report.fetched, report.applied, report.status_changes) == ("full", 3, 3, 3)
    for search, status in ((running, "running"), (vetting, "awaiting_vetting"), (done, "succeeded")):
        search.refresh_from_db()
        assert search.status == status
    mirror = WorkflowExecution.objects.get(search=done, attempt=1)
    assert (mirror.engine, mirror.status, mirror.version) == (Engine.DURABLE, "succeeded", 5)
    assert mirror.execution_name == f"{done.pk}-a1" and mirror.execution_arn == f"arn:local:durable:{done.pk}-a1"
    assert mirror.started_at and mirror.ended_at and mirror.last_synced_at
    assert list(SearchResult.objects.filter(search=done).values_list("user_id", "nickname", "rank")) == [
        ("u000042", "PowderKaze42", 1),
        ("u000007", "SoraRidge7", 2),
    ]
    assert set(timeline_of(done)) == {
        ("item", "start", "dispatched"),
        ("item", "mark-running", "running"),
        ("item", "callback", "delivered"),
    }
    assert SearchEvent.objects.filter(search=done, kind="succeeded", actor="durable-sync").exists()
    assert SyncWatermark.objects.get(name=f"dynamodb:{state.name}").last_full_sync_at is not None


def test_an_incremental_sync_reads_only_the_changed_items_across_many_pages(
    state, make_search, settings, dynamo_requests
):
    settings.MATCHING_MIRROR_PAGE_SIZE = 25
    searches = [make_search(status="running") for _ in range(250)]
    for i, search in enumerate(searches):  # a minute apart, the newest ten minutes ago
        state.put(search, status="running", version=2, updated_at=ago(minutes=260 - i))
    requests = dynamo_requests()

    first = workflow_state_sync()

    # Ten full pages (DynamoDB may answer an eleventh, empty one after a full last page).
    assert (first.fetched, first.applied) == (250, 250) and first.pages in (10, 11)
    assert len(requests) == first.pages and set(requests.operations) == {"Query"}
    assert WorkflowExecution.objects.filter(version=2, engine=Engine.DURABLE).count() == 250

    changed = searches[100:130]
    for search in changed:
        state.update(
            search,
            status="succeeded",
            results=RESULTS,
            timeline=[{"at": ago(), "step": "write-result", "event": "succeeded", "detail": None}],
        )
    requests.operations.clear()

    second = workflow_state_sync()

    # The 30 changed items, plus the newest unchanged one, which sits inside the skew overlap
    # below the watermark and is re-read (and ignored: its version is not newer).
    assert (second.fetched, second.applied, second.stale, second.pages) == (31, 30, 1, 2)
    assert len(requests) == 2
    assert set(Search.objects.filter(status="succeeded").values_list("pk", flat=True)) == {s.pk for s in changed}
    assert WorkflowExecution.objects.filter(version=3).count() == 30
    assert SearchResult.objects.count() == 60


def test_the_watermark_is_the_newest_item_applied_and_the_next_read_starts_a_skew_earlier(state, make_search):
    search = make_search(status="running")
    stamp = ago(minutes=3)
    state.put(search, updated_at=stamp)

    report = workflow_state_sync()
    assert report.watermark == stamp == SyncWatermark.objects.get(name=f"dynamodb:{state.name}").position

    # The overlap re-reads the newest item; the version rule makes that a no-op.
    again = workflow_state_sync()
    assert again.query_from < stamp and (again.fetched, again.stale, again.applied) == (1, 1, 0)
    assert again.watermark == stamp

    # An item the sync index had not shown yet, written just under the watermark, is still read.
    late = make_search(status="running")
    state.put(late, updated_at=ago(minutes=3, seconds=2))
    assert workflow_state_sync().applied == 1


def test_an_out_of_date_item_never_overwrites_a_newer_mirror_row(state, make_search, settings):
    search = make_search(status="running")
    settings.MATCHING_WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTAxMjM0NTY3ODk="
    body = {
        "search_id": str(search.pk),
        "attempt": 1,
        "status": "awaiting_vetting",
        "version": 6,
        "payload": {"results": None, "error": None},
    }
    assert workflow_callback_apply(webhook_id=f"msg_{search.pk}-a1_v6", body=body) == "applied"
    # DynamoDB's sync index still shows an older version of the item.
    state.put(search, status="running", version=5)

    report = workflow_state_sync(full=True)

    assert (report.applied, report.stale) == (0, 1)
    search.refresh_from_db()
    mirror = WorkflowExecution.objects.get(search=search, attempt=1)
    assert search.status == "awaiting_vetting" and (mirror.status, mirror.version) == ("awaiting_vetting", 6)

    # A newer terminal item does apply, and then an old one cannot reopen the search.
    state.put(search, status="succeeded", version=8, results=RESULTS)
    workflow_state_sync(full=True)
    state.put(search, status="running", version=7)
    workflow_state_sync(full=True)
    search.refresh_from_db()
    assert search.status == "succeeded" and WorkflowExecution.objects.get(search=search).version == 8


def test_a_finished_search_is_never_changed_by_a_newer_item(state, make_search):
    search = make_search(status="cancelled")
    state.put(search, status="succeeded", version=9, results=RESULTS)
    report = workflow_state_sync(full=True)
    search.refresh_from_db()
    assert search.status == "cancelled" and report.status_changes == 0 and not SearchResult.objects.exists()
    assert WorkflowExecution.objects.get(search=search).status == "succeeded"  # the mirror still shows the engine


def test_an_item_deleted_in_dynamodb_leaves_the_console_history_intact(state, make_search):
    search = make_search(status="running")
    state.put(search, status="succeeded", version=4, results=RESULTS)
    workflow_state_sync(full=True)
    before = timeline_of(search)
    assert before

    state.delete(search)
    workflow_state_sync(full=True)
    workflow_state_sync(since=ago(days=1))

    search.refresh_from_db()
    mirror = WorkflowExecution.objects.get(search=search)
    assert search.status == "succeeded" and search.result_count == 2
    assert (mirror.status, mirror.version) == ("succeeded", 4)
    assert timeline_of(search) == before


def test_repeated_syncs_add_each_timeline_entry_once(state, make_search):
    search = make_search(status="running")
    state.put(search, version=2)
    workflow_state_sync(full=True)
    count = ExecutionTimelineEntry.objects.count()

    workflow_state_sync(full=True)
    workflow_state_sync(since=ago(hours=1))
    assert ExecutionTimelineEntry.objects.count() == count

    state.update(
        search,
        status="awaiting_vetting",
        timeline=[{"at": ago(), "step": "vetting", "event": "awaiting_vetting", "detail": {"candidate_ids": ["u1"]}}],
    )
    report = workflow_state_sync()
    assert report.timeline_added == 1 and ExecutionTimelineEntry.objects.count() == count + 1
    entry = ExecutionTimelineEntry.objects.get(name="vetting")
    assert (entry.kind, entry.event, entry.detail) == ("callback", "awaiting_vetting", {"candidate_ids": ["u1"]})


def test_a_new_attempt_keeps_each_attempts_timeline_apart(state, make_search):
    search = make_search(status="running")
    Search.objects.filter(pk=search.pk).update(attempt=2)
    WorkflowExecution.objects.create(search=search, attempt=1, engine=Engine.DURABLE, status="failed", version=4)
    first = ago(minutes=10)
    state.put(
        search,
        attempt=2,
        version=6,
        timeline=[
            {"at": first, "step": "start", "event": "dispatched", "detail": {"attempt": 1}},
            {"at": ago(minutes=9), "step": "write-result", "event": "failed", "detail": {"code": "scoring_failed"}},
            {"at": ago(minutes=2), "step": "start", "event": "dispatched", "detail": {"attempt": 2}},
            {"at": ago(minutes=1), "step": "mark-running", "event": "running", "detail": None},
        ],
    )
    workflow_state_sync(full=True)
    assert [e for e in timeline_of(search, 1) if e[0] == "item"] == [
        ("item", "start", "dispatched"),
        ("item", "write-result", "failed"),
    ]
    assert [e for e in timeline_of(search, 2) if e[0] == "item"] == [
        ("item", "start", "dispatched"),
        ("item", "mark-running", "running"),
    ]


def test_items_of_unknown_searches_are_counted_and_skipped(state):
    state.put("not-a-console-search")
    state.put("5b0c7d43-0000-4000-8000-000000000000")
    report = workflow_state_sync(full=True)
    assert report.unknown == 2 and not WorkflowExecution.objects.exists()


def test_the_command_prints_progress_lines_and_a_summary(state, make_search, settings):
    settings.MATCHING_MIRROR_PAGE_SIZE = 2
    for _ in range(5):
        state.put(make_search(status="running"))
    out = io.StringIO()
    call_command("sync_workflow_state", "--full", "--no-history", "--progress-every", "0", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0].strip() for line in lines[:3]] == ["page 1", "page 2", "page 3"]
    assert lines[-1].startswith("full: 3 pages, 5 items") and "5 applied" in lines[-1]


def test_the_command_reads_since_a_given_time(state, make_search):
    old, recent = make_search(status="running"), make_search(status="running")
    state.put(old, updated_at=ago(hours=3))
    state.put(recent, updated_at=ago(minutes=20))
    out = io.StringIO()
    call_command("sync_workflow_state", "--since", "1h", "--no-history", stdout=out)
    assert "1 items" in out.getvalue()
    assert list(WorkflowExecution.objects.filter(version__gt=0).values_list("search", flat=True)) == [recent.pk]


def test_celery_attempts_are_mirrored_from_the_searchs_own_transitions(make_search, settings):
    search = make_search(engine=Engine.CELERY)
    assert search_claim(search_id=search.pk, attempt=1, worker="celery:w1")
    assert search_succeed(search_id=search.pk, attempt=1, matches=[])
    SearchEvent.objects.filter(search=search).update(at=timezone.now() - timedelta(seconds=10))

    added = console_events_sync(lag_seconds=5)
    assert added == 3 and console_events_sync(lag_seconds=5) == 0

    mirror = WorkflowExecution.objects.get(search=search, attempt=1)
    assert (mirror.engine, mirror.status) == (Engine.CELERY, "succeeded")
    assert mirror.started_at and mirror.ended_at and mirror.last_synced_at
    assert [(s, e) for s, _, e in timeline_of(search)] == [
        ("console", "submitted"),
        ("console", "claimed"),
        ("console", "succeeded"),
    ]


def test_console_events_younger_than_the_skew_wait_for_the_next_sync(make_search):
    search = make_search(engine=Engine.CELERY)
    assert console_events_sync(lag_seconds=60) == 0
    SearchEvent.objects.filter(search=search).update(at=timezone.now() - timedelta(seconds=61))
    assert console_events_sync(lag_seconds=60) == 1


def test_webhook_deliveries_join_the_timeline_of_their_attempt(state, make_search, settings):
    search = make_search(status="running")
    state.put(search, version=2)
    workflow_state_sync(full=True)
    body = {
        "search_id": str(search.pk),
        "attempt": 1,
        "status": "succeeded",
        "version": 7,
        "payload": {"results": RESULTS},
    }
    webhook_id = f"msg_{search.pk}-a1_v7"
    assert workflow_callback_apply(webhook_id=webhook_id, body=json.loads(json.dumps(body))) == "applied"
    assert workflow_callback_apply(webhook_id=webhook_id, body=body) == "duplicate"

    console_events_sync(lag_seconds=0)

    entry = ExecutionTimelineEntry.objects.get(execution__search=search, source="webhook")
    assert (entry.kind, entry.name, entry.event, entry.detail) == (
        "webhook",
        "succeeded",
        "applied",
        {"webhook_id": webhook_id, "version": 7},
    )


def test_durable_execution_history_is_copied_once_every_page_followed(state, make_search, lambda_api, settings):
    search = make_search(status="running")
    item = state.put(search, version=3)
    arn = item["execution_arn"]
    lambda_api.add(
        arn,
        "SUCCEEDED",
        events=[
            history_event(1, "ExecutionStarted", seconds_ago=60, ExecutionStartedDetails={"ExecutionTimeout": 3600}),
            history_event(2, "StepStarted", "mark-running", seconds_ago=59),
            history_event(3, "StepSucceeded", "mark-running", seconds_ago=58),
            history_event(
                4,
                "StepFailed",
                "fetch-candidates-1",
                seconds_ago=57,
                StepFailedDetails={
                    "Error": {"Payload": {"ErrorType": "HTTPError", "ErrorMessage": "503"}},
                    "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 5},
                },
            ),
            history_event(
                5,
                "WaitStarted",
                "backoff",
                seconds_ago=56,
                WaitStartedDetails={"Duration": 5, "ScheduledEndTimestamp": 0},
            ),
            history_event(6, "WaitSucceeded", "backoff", seconds_ago=51),
            history_event(
                7,
                "CallbackStarted",
                "vetting create callback id",
                seconds_ago=50,
                CallbackStartedDetails={"CallbackId": "cb-1"},
            ),
            history_event(8, "CallbackSucceeded", "vetting create callback id", seconds_ago=20),
            history_event(9, "ExecutionSucceeded", seconds_ago=10),
        ],
    )
    workflow_state_sync(full=True)
    settings.MATCHING_MIRROR_HISTORY_PER_CYCLE = 10
    from workflows.durable_console.history import DurableExecutionsReader, LambdaReadConfig

    reader = DurableExecutionsReader(LambdaReadConfig(region="us-east-1", history_page_size=4))

    report = workflow_history_sync(reader=reader)

    assert (report.executions, report.events_added, report.completed) == (1, 9, 1)
    assert [r for r in lambda_api.requests if r[0] == "history"] == [("history", arn)] * 3  # 4 + 4 + 1
    history = ExecutionTimelineEntry.objects.filter(source="history").order_by("at")
    assert [(e.kind, e.event) for e in history][:5] == [
        ("execution", "ExecutionStarted"),
        ("step", "StepStarted"),
        ("step", "StepSucceeded"),
        ("step", "StepFailed"),
        ("wait", "WaitStarted"),
    ]
    failed = history.get(event="StepFailed")
    assert failed.detail == {
        "error": {"type": "HTTPError", "message": "503"},
        "retry": {"attempt": 1, "next_delay_seconds": 5},
    }
    assert history.get(event="CallbackStarted").detail == {"callback_id": "cb-1"}
    assert WorkflowExecution.objects.get(search=search).history_complete

    # Complete: not read again, even when the item moves on.
    lambda_api.requests.clear()
    assert workflow_history_sync(reader=reader).executions == 0 and not lambda_api.requests


def test_history_of_a_running_execution_is_read_again_only_after_its_item_changes(state, make_search, lambda_api):
    search = make_search(status="running")
    arn = state.put(search, version=2)["execution_arn"]
    execution = lambda_api.add(arn, events=[history_event(1, "ExecutionStarted", seconds_ago=30)])
    workflow_state_sync(full=True)
    assert workflow_history_sync().events_added == 1
    assert workflow_history_sync().executions == 0

    execution.events.append(history_event(2, "StepStarted", "score", seconds_ago=5))
    state.update(search, status="awaiting_vetting")
    workflow_state_sync()
    report = workflow_history_sync()
    assert (report.executions, report.events_added, report.completed) == (1, 1, 0)


def test_the_periodic_task_syncs_and_skips_while_another_run_holds_the_lock(state, make_search):
    from workflows.mirror.refresh import single_flight
    from workflows.tasks.mirror import sync_workflow_state

    search = make_search(status="dispatched")
    state.put(search, status="running", version=2)
    with single_flight("sync-workflow-state", timeout=60) as mine:
        assert mine
        assert sync_workflow_state.run().startswith("skipped")
    assert sync_workflow_state.run().startswith("incremental: 1 pages, 1 items")
    search.refresh_from_db()
    assert search.status == SearchStatus.RUNNING


def test_the_periodic_task_leaves_dynamodb_alone_when_the_durable_engine_is_not_in_use(state, make_search, settings):
    from workflows.tasks.mirror import sync_workflow_state

    settings.MATCHING_WORKFLOW_URL = ""
    finished = make_search(status="succeeded")  # a durable search from before a rollback, finished
    state.put(finished, status="succeeded", version=9)
    assert sync_workflow_state.run().startswith("durable engine not in use")
    assert not WorkflowExecution.objects.filter(search=finished, version=9).exists()

    waiting = make_search(status="awaiting_vetting")  # still unfinished: the mirror keeps following it
    state.put(waiting, status="running", version=3)
    assert sync_workflow_state.run().startswith("incremental")
