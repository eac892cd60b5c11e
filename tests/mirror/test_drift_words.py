"""The drift reconciler's reasons in the staff member's language: each verdict stores its English
reason and, beside it, a code with the values it names (WorkflowExecution.drift_reason_code); the
console words the code (matching.admin.words.DRIFT_REASONS). Same setups as test_reconcile.py."""

# ruff: noqa: RUF001 (the Traditional Chinese expected is written with its own full-width punctuation)

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from matching.admin.words import DRIFT_REASONS, drift_words
from matching.models import Engine, Search
from tests.console.catalogue import english_left
from tests.mirror.conftest import RESULTS
from workflows.durable_console.dynamo import WorkflowStateReader
from workflows.durable_console.reconcile import ReconcileConfig, search_reconcile
from workflows.mirror.state import workflow_state_sync
from workflows.models import WorkflowExecution

pytestmark = pytest.mark.django_db

CONFIG = ReconcileConfig(durable_start_grace_seconds=120, batch=50, min_age_seconds=30)


# Each scenario sets a search up as test_reconcile.py does and returns it; its reason's code and a
# piece of its Traditional Chinese follow.
def _repaired_from_item(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    state.put(search, status="succeeded", version=7, results=RESULTS)
    return search


def _repaired_from_execution(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "FAILED")
    return search


def _finished_meanwhile(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "STOPPED")
    read, reads = WorkflowStateReader.get, []

    def read_then_finish(reader, search_id):
        # The search finishes in the console just after the reconciler re-reads the item (its last callback, say).
        reads.append(search_id)
        item = read(reader, search_id)
        if len(reads) == 2:
            Search.objects.filter(pk=search.pk).update(status="succeeded")
        return item

    monkeypatch.setattr(WorkflowStateReader, "get", read_then_finish)
    return search


def _succeeded_unfinished(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "SUCCEEDED")
    return search


def _execution_missing(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    state.put(search, status="running", version=2)
    return search


def _live(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "RUNNING")
    return search


def _live_without_item(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    arn = state.put(search, status="running", version=2)["execution_arn"]
    workflow_state_sync(full=True)
    state.delete(search)
    lambda_api.add(arn, "RUNNING")
    return search


def _execution_other(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "PENDING")
    return search


def _no_item(state, make_search, lambda_api, settings, monkeypatch):
    return make_search(status="dispatched", idle_seconds=600)


def _execution_starting(state, make_search, lambda_api, settings, monkeypatch):
    return make_search(status="dispatched", idle_seconds=10)


def _no_execution_arn(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="dispatched", idle_seconds=600)
    state.put(search, status="dispatched", version=1, execution_arn="", dispatch={"state": "sending"})
    return search


def _attempt_never_started(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="dispatched", idle_seconds=600)
    Search.objects.filter(pk=search.pk).update(attempt=2)
    state.put(search, attempt=1, status="failed", version=6)
    return search


def _attempt_starting(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="dispatched", idle_seconds=10)
    Search.objects.filter(pk=search.pk).update(attempt=2)
    state.put(search, attempt=1, status="failed", version=6)
    return search


def _item_newer_attempt(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    state.put(search, attempt=3, status="running", version=9)
    return search


def _execution_unreadable(state, make_search, lambda_api, settings, monkeypatch):
    search = make_search(status="running", idle_seconds=600)
    lambda_api.add(state.put(search, status="running", version=2)["execution_arn"], "STOPPED")
    lambda_api.failing = True
    return search


def _dynamo_unreadable(state, make_search, lambda_api, settings, monkeypatch):
    settings.MATCHING_WORKFLOW_STATE_TABLE = "no-such-table"
    return make_search(status="running", idle_seconds=600)


def _celery(status: str, *, lease_seconds: float | None = None, owner: str = ""):
    def scenario(state, make_search, lambda_api, settings, monkeypatch):
        search = make_search(engine=Engine.CELERY, status=status, idle_seconds=3600)
        if lease_seconds is not None:
            expires = timezone.now() + timedelta(seconds=lease_seconds)
            Search.objects.filter(pk=search.pk).update(lease_expires_at=expires, lease_owner=owner)
        return search

    return scenario


SCENARIOS = {
    "repaired_from_item": (_repaired_from_item, "主控台原為「執行中」；DynamoDB 項目（v7）為「已完成」"),
    "repaired_from_execution": (
        _repaired_from_execution,
        "主控台原為「執行中」（項目「執行中」v2），但 Durable 執行為 FAILED：現為「失敗」",
    ),
    "finished_meanwhile": (_finished_meanwhile, "檢查期間已結束（已完成）"),
    "succeeded_unfinished": (_succeeded_unfinished, "Durable 執行已成功，但項目「執行中」v2尚未結束"),
    "execution_missing": (_execution_missing, "Durable 執行不存在（已過期、已刪除或從未啟動），而主控台顯示「執行中」"),
    "live": (_live, "執行 RUNNING，項目「執行中」v2"),
    "live_without_item": (_live_without_item, "Durable 執行為 RUNNING，但沒有項目"),
    "execution_other": (_execution_other, "Durable 執行為 PENDING；項目「執行中」v2"),
    "no_item": (_no_item, "秒，沒有 DynamoDB 項目"),
    "execution_starting": (_execution_starting, "：Durable 執行正在啟動"),
    "no_execution_arn": (_no_execution_arn, "秒，項目沒有執行 ARN（派送 sending）"),
    "attempt_never_started": (
        _attempt_never_started,
        "DynamoDB 仍保存第 1 次執行（失敗）：第 2 次執行從未在 Durable 引擎上啟動",
    ),
    "attempt_starting": (_attempt_starting, "第 2 次執行正在啟動"),
    "item_newer_attempt": (_item_newer_attempt, "DynamoDB 保存的是第 3 次執行，比主控台的第 1 次更新"),
    "execution_unreadable": (_execution_unreadable, "無法讀取 Durable 執行："),
    "dynamo_unreadable": (_dynamo_unreadable, "無法讀取 DynamoDB 項目："),
    "celery_leased": (_celery("running", lease_seconds=15, owner="worker-7"), "：租約由 worker-7 持有，還有 1"),
    "celery_lease_expired": (_celery("running", lease_seconds=-40), "：佇列 的租約已於 4"),
    "celery_lease_resend": (_celery("running"), "：租約巡檢正在重新送出"),
    "celery_sweeper": (_celery("pending"), "：交由派送巡檢處理"),
    "celery_awaiting_vetting": (_celery("awaiting_vetting"), "「等待審核」：等候 GlobalCoach 回覆"),
}


def test_every_worded_reason_has_a_scenario():
    assert set(SCENARIOS) == set(DRIFT_REASONS)


@pytest.mark.parametrize("code", SCENARIOS)
def test_each_reason_is_stored_in_english_with_its_code_and_worded_in_the_readers_language(
    code, state, make_search, lambda_api, settings, monkeypatch
):
    setup, chinese = SCENARIOS[code]
    search = setup(state, make_search, lambda_api, settings, monkeypatch)

    search_reconcile(search=search, config=CONFIG)

    row = WorkflowExecution.objects.get(search_id=search.pk, attempt=Search.objects.get(pk=search.pk).attempt)
    assert row.drift_reason_code["code"] == code
    with translation.override("en"):
        english = drift_words(row.drift_reason_code)
    # The English words say what the stored English says (statuses as their labels: "awaiting vetting").
    assert english == row.drift_reason.replace("awaiting_vetting", "awaiting vetting")
    with translation.override("zh-hant"):
        worded = drift_words(row.drift_reason_code)
    assert chinese in worded, worded
    assert english_left(worded) == [], worded
