"""Every staff action through the admin, on one search (its page's button) and in bulk (the list)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from matching.models import Engine, Search, SearchEvent, SearchStatus, StaffAction
from tests.console.catalogue import english_left
from tests.console.conftest import make_search, with_results
from tests.console.helpers import CHANGELIST, act_url, confirm_bulk, confirm_single, messages_of, texts
from workflows.durable_console.reconcile import Outcome, _conclude
from workflows.models import DriftState, WorkflowExecution

pytestmark = pytest.mark.django_db


def audit(search: Search) -> StaffAction:
    return StaffAction.objects.get(search=search)


# --- the confirmation page ------------------------------------------------------------------------


def test_a_bulk_action_first_shows_how_many_searches_and_what_it_will_do(operator_client):
    searches = [make_search(status="failed") for _ in range(3)]
    response = operator_client.post(
        reverse(CHANGELIST), {"action": "retry", "_selected_action": [str(s.pk) for s in searches]}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Retry: 3 searches" in page
    assert "start a new attempt of each finished search" in page
    assert all(str(s.pk)[:8] in page for s in searches)
    assert not StaffAction.objects.exists() and Search.objects.filter(attempt=2).count() == 0


def test_the_search_page_button_opens_the_same_confirmation_for_one_search(operator_client):
    search = make_search(status="running")
    response = operator_client.get(act_url(search, "cancel"))
    assert response.status_code == 200
    assert "Cancel: 1 search" in response.content.decode()
    search.refresh_from_db()
    assert search.status == "running"


def test_an_action_without_a_reason_is_not_run(operator_client):
    search = make_search(status="running")
    response = confirm_single(operator_client, search, "cancel", reason="  ")
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    search.refresh_from_db()
    assert search.status == "running" and not StaffAction.objects.exists()


# --- retry and rerun ------------------------------------------------------------------------------


def test_retry_starts_a_new_attempt_on_the_same_engine_and_audits_it(operator_client, operator, celery_only):
    search = make_search(status="failed", engine=Engine.CELERY)
    response = confirm_single(operator_client, search, "retry", reason="worker bug fixed")
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:matching_search_change", args=[search.pk]
    )
    search.refresh_from_db()
    assert (search.attempt, search.status, search.engine) == (2, "pending", "celery")
    retried = SearchEvent.objects.get(search=search, kind="retried")
    assert retried.actor == "staff:olga-operator" and "rerunning attempt 1" in retried.detail
    row = audit(search)
    assert (row.user, row.action, row.attempt, row.reason) == (operator, "retry", 1, "worker bug fixed")
    assert (row.status_before, row.status_after, row.outcome) == ("failed", "pending", "done")
    assert row.parameters == {"engine": "celery", "rerun_of_attempt": 1}
    assert ("success", f"Search {str(search.pk)[:8]}: done: attempt 2 started on celery") in messages_of(response)


def test_rerun_on_durable_moves_a_celery_search_to_the_durable_engine(operator_client, durable_api):
    search = make_search(status="failed", engine=Engine.CELERY)
    confirm_single(operator_client, search, "rerun_durable")
    search.refresh_from_db()
    assert (search.attempt, search.engine) == (2, "durable")
    assert search.dispatches.get(attempt=2).engine == "durable"
    assert audit(search).parameters["engine"] == "durable"


def test_rerun_on_celery_moves_a_durable_search_to_celery(operator_client, durable_api):
    search = make_search(status="timed_out", engine=Engine.DURABLE)
    confirm_single(operator_client, search, "rerun_celery")
    search.refresh_from_db()
    assert (search.attempt, search.engine) == (2, "celery")


def test_rerun_on_durable_fails_readably_when_the_durable_engine_is_not_configured(operator_client, celery_only):
    search = make_search(status="failed", engine=Engine.CELERY)
    response = confirm_single(operator_client, search, "rerun_durable")
    search.refresh_from_db()
    assert search.attempt == 1
    first = messages_of(response)
    assert any(level == "error" and "durable engine is not configured" in text for level, text in first)
    assert audit(search).outcome == "failed"
    stored = audit(search).detail
    assert stored == ("cannot run on durable: the durable engine is not configured here "
                      "(MATCHING_WORKFLOW_URL is not set)")  # fmt: skip
    # In Chinese, the same result in words; the audit trail keeps its English.
    operator_client.post(reverse("staff-preference"), {"sb-language": "zh-hant", "sb-time_zone": "UTC", "sb-next": "/"})
    said = messages_of(confirm_single(operator_client, search, "rerun_durable"))[len(first) :]  # not yet shown: kept
    assert any(level == "error" and "無法在 Durable 上執行" in text for level, text in said)
    assert english_left(" ".join(text for _, text in said)) == []


def test_a_vetted_search_is_rerun_on_celery_like_any_other(operator_client, durable_api):
    """Both engines vet (issue 8); that the rerun then vets on a real worker is
    tests/compat/test_celery_vetting_end_to_end.py's."""
    prefs = {"role": "coach", "skill_level_min": 6, "skill_level_max": 10, "vetting_required": True}
    search = make_search(status="failed", engine=Engine.DURABLE, preferences=prefs)
    response = confirm_single(operator_client, search, "rerun_celery")
    search.refresh_from_db()
    assert (search.attempt, search.status, search.engine) == (2, "pending", "celery")
    assert search.dispatches.get(attempt=2).engine == "celery"
    assert ("success", f"Search {str(search.pk)[:8]}: done: attempt 2 started on celery") in messages_of(response)


def test_bulk_retry_reports_each_search_done_or_skipped(operator_client, celery_only):
    failed = [make_search(status="failed"), make_search(status="cancelled")]
    running = make_search(status="running")
    response = confirm_bulk(operator_client, [*failed, running], "retry")
    assert response.status_code == 302
    said = messages_of(response)
    assert said[0] == ("warning", "Retry: 2 done, 1 skipped.")
    assert ("warning", f"Search {str(running.pk)[:8]}: skipped: it is running, not finished") in said
    assert [Search.objects.get(pk=s.pk).attempt for s in failed] == [2, 2]
    assert Search.objects.get(pk=running.pk).attempt == 1
    assert StaffAction.objects.filter(action="retry").count() == 3


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_stops_a_running_celery_search_and_revokes_its_task(
    operator_client, operator, django_capture_on_commit_callbacks
):
    search = make_search(status="running")
    WorkflowExecution.objects.create(search=search, attempt=1, engine="celery", celery_task_id="task-123")
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_single(operator_client, search, "cancel", reason="seeker asked")
    search.refresh_from_db()
    assert search.status == "cancelled" and search.error == "cancelled: seeker asked"
    assert SearchEvent.objects.filter(
        search=search, kind="remote_cancel", detail="celery task task-123 revoked"
    ).exists()
    row = audit(search)
    assert (row.status_before, row.status_after, row.outcome, row.username) == (
        "running", "cancelled", "done", "olga-operator",
    )  # fmt: skip
    assert "done: cancelled; its Celery task is being revoked" in texts(response)


def test_cancel_of_a_durable_search_stops_its_execution_after_commit(
    operator_client, durable_api, django_capture_on_commit_callbacks
):
    search = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    with django_capture_on_commit_callbacks(execute=True):
        confirm_single(operator_client, search, "cancel", reason="duplicate search")
    assert durable_api.posts("/cancel") == [(f"/workflows/matching/{search.pk}/cancel", {"reason": "duplicate search"})]
    assert SearchEvent.objects.filter(search=search, kind="remote_cancel", detail="durable execution stopped").exists()


def test_bulk_cancel_skips_what_already_finished(operator_client):
    running, pending = make_search(status="running"), make_search(status="pending")
    done = make_search(status="succeeded")
    response = confirm_bulk(operator_client, [running, pending, done], "cancel")
    assert messages_of(response)[0] == ("warning", "Cancel: 2 done, 1 skipped.")
    assert f"{str(done.pk)[:8]}: skipped: it had already succeeded" in texts(response)
    assert {Search.objects.get(pk=s.pk).status for s in (running, pending)} == {"cancelled"}
    assert Search.objects.get(pk=done.pk).status == "succeeded"


# --- answering vetting ----------------------------------------------------------------------------


def test_approving_a_chosen_subset_sends_those_ids_to_the_durable_api(operator_client, durable_api):
    durable_api.candidates = [{"user_id": "u000001", "nickname": "Ann", "score": 0.9},
                              {"user_id": "u000002", "nickname": "Ben", "score": 0.8}]  # fmt: skip
    search = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    page = operator_client.get(act_url(search, "intervene") + "?decision=approve_some").content.decode()
    assert "u000001 Ann score 0.9" in page and "u000002 Ben score 0.8" in page
    response = confirm_single(
        operator_client, search, "intervene", decision="approve_some", approved=["u000002"], reason="Ben checked"
    )
    assert durable_api.posts("/intervene") == [
        (f"/workflows/matching/{search.pk}/intervene",
         {"decision": "approve", "note": "Ben checked", "approved_user_ids": ["u000002"]}),
    ]  # fmt: skip
    assert "done: approved 1 candidate(s)" in texts(response)
    row = audit(search)
    assert row.parameters == {"decision": "approve", "approved_user_ids": ["u000002"]} and row.reason == "Ben checked"
    assert SearchEvent.objects.filter(search=search, kind="intervened", actor="staff:olga-operator").exists()


@pytest.mark.parametrize("engine", [Engine.DURABLE, Engine.CELERY])
def test_the_answer_vetting_button_is_offered_on_either_engine(operator_client, durable_api, engine):
    waiting = make_search(status="awaiting_vetting", engine=engine)
    running = make_search(status="running", engine=engine)
    page = operator_client.get(reverse("admin:matching_search_change", args=[waiting.pk])).content.decode()
    assert act_url(waiting, "intervene") in page
    page = operator_client.get(reverse("admin:matching_search_change", args=[running.pk])).content.decode()
    assert act_url(running, "intervene") not in page


def test_approving_a_subset_needs_at_least_one_candidate(operator_client, durable_api):
    search = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    response = confirm_single(operator_client, search, "intervene", decision="approve_some")
    assert response.status_code == 200 and "Choose at least one candidate" in response.content.decode()
    assert durable_api.posts("/intervene") == []


def test_bulk_approve_and_reject_answer_every_waiting_search(operator_client, durable_api):
    waiting = [make_search(status="awaiting_vetting", engine=Engine.DURABLE) for _ in range(2)]
    finished = make_search(status="succeeded", engine=Engine.DURABLE)
    response = confirm_bulk(operator_client, [*waiting, finished], "approve_vetting", decision="approve_all")
    assert messages_of(response)[0] == ("warning", "Answer vetting: 2 done, 1 skipped.")
    assert [body for _, body in durable_api.posts("/intervene")] == [{"decision": "approve", "note": "ticket 4711"}] * 2
    confirm_bulk(operator_client, waiting[:1], "reject_vetting", decision="reject", reason="not certified")
    assert durable_api.posts("/intervene")[-1][1] == {"decision": "reject", "note": "not certified"}


def test_an_answer_that_lost_to_the_provider_is_skipped(operator_client, durable_api):
    durable_api.intervene_status = 409
    search = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    response = confirm_single(operator_client, search, "intervene", decision="reject")
    assert "skipped: the vetting request was already answered (already_answered)" in texts(response)
    assert audit(search).outcome == "skipped"


# --- acknowledge a drift flag ---------------------------------------------------------------------


def _flagged(search: Search) -> Search:
    WorkflowExecution.objects.create(
        search=search, attempt=1, engine="durable", drift_state=DriftState.FLAGGED, drift_reason="no item"
    )
    Search.objects.filter(pk=search.pk).update(drift_flagged=True)
    search.refresh_from_db()
    return search


def test_acknowledging_a_drift_flag_clears_the_marker_and_records_the_note(operator_client):
    search = _flagged(make_search(status="running", engine=Engine.DURABLE, idle_seconds=900))
    response = confirm_single(operator_client, search, "acknowledge", reason="known emulator restart")
    search.refresh_from_db()
    assert not search.drift_flagged
    assert WorkflowExecution.objects.get(search=search).drift_state == DriftState.ACKNOWLEDGED
    event = SearchEvent.objects.get(search=search, kind="drift_acknowledged")
    assert (event.actor, event.detail) == ("staff:olga-operator", "known emulator restart")
    assert "done: flag acknowledged" in texts(response)
    # The drift check keeps the acknowledgement while the attempt is still off...
    _conclude(search, 1, Outcome.FLAGGED, "no item, still")
    search.refresh_from_db()
    assert not search.drift_flagged
    assert WorkflowExecution.objects.get(search=search).drift_state == DriftState.ACKNOWLEDGED
    # ...and an "ok" verdict ends it.
    _conclude(search, 1, Outcome.OK, "fine now")
    assert WorkflowExecution.objects.get(search=search).drift_state == DriftState.OK


def test_acknowledging_a_search_with_nothing_flagged_is_skipped(operator_client):
    search = make_search(status="running")
    assert "skipped: nothing is flagged on it" in texts(confirm_single(operator_client, search, "acknowledge"))


def test_a_new_drift_flag_raises_the_search_marker(db):
    search = make_search(status="running", engine=Engine.DURABLE)
    _conclude(search, 1, Outcome.FLAGGED, "the durable execution does not exist")
    search.refresh_from_db()
    assert search.drift_flagged


def test_bulk_acknowledge(operator_client):
    flagged = [_flagged(make_search(status="failed", engine=Engine.DURABLE)) for _ in range(2)]
    response = confirm_bulk(operator_client, flagged, "acknowledge")
    assert messages_of(response)[0] == ("success", "Acknowledge flag: 2 done.")
    assert not Search.objects.filter(drift_flagged=True).exists()


# --- export ---------------------------------------------------------------------------------------


def test_export_csv_of_one_search(operator_client):
    search = with_results(make_search(status="succeeded"), 3)
    response = operator_client.post(act_url(search, "export_csv"), {"confirm": "yes", "reason": "support ticket"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["rank"], r["user_id"]) for r in rows] == [("1", "u000001"), ("2", "u000002"), ("3", "u000003")]
    assert rows[0]["search_id"] == str(search.pk) and rows[0]["skill"] == "1.0"
    row = audit(search)
    assert (row.action, row.parameters, row.reason) == ("export", {"format": "csv"}, "support ticket")


def test_export_json_of_selected_searches(operator_client):
    searches = [with_results(make_search(status="succeeded"), n) for n in (1, 2)]
    response = confirm_bulk(operator_client, searches, "export_json")
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    body = {entry["search_id"]: entry for entry in json.loads(response.content)}
    assert {sid: len(e["results"]) for sid, e in body.items()} == {str(searches[0].pk): 1, str(searches[1].pk): 2}
    assert body[str(searches[1].pk)]["results"][1]["breakdown"]["role"] == 1.0
    assert StaffAction.objects.filter(action="export").count() == 2


def test_bulk_export_csv(operator_client):
    searches = [with_results(make_search(status="succeeded"), 2) for _ in range(2)]
    response = confirm_bulk(operator_client, searches, "export_csv")
    assert len(list(csv.DictReader(io.StringIO(response.content.decode())))) == 4


def test_a_bulk_action_refuses_more_than_its_limit(operator_client, monkeypatch):
    monkeypatch.setattr("matching.admin.searches.MAX_BULK", 2)
    searches = [make_search(status="failed") for _ in range(3)]
    response = confirm_bulk(operator_client, searches, "retry")
    assert ("error", "Select at most 2 searches for one action.") in messages_of(response)
    assert not Search.objects.filter(attempt=2).exists()


@pytest.mark.parametrize("status", [SearchStatus.SUCCEEDED])
def test_every_audit_record_names_who_when_what_why_and_the_statuses(operator_client, status):
    search = make_search(status=status)
    confirm_single(operator_client, search, "cancel", reason="why not")
    row = audit(search)
    assert row.at and row.username == "olga-operator" and row.action == "cancel" and row.reason == "why not"
    assert (row.status_before, row.status_after, row.outcome) == ("succeeded", "succeeded", "skipped")


def test_a_bulk_action_from_the_top_action_bar_confirms_the_right_action(operator_client):
    # The list has two action bars; the browser posts both selects and the index of the one used.
    searches = [make_search(status="running") for _ in range(2)]
    ids = [str(s.pk) for s in searches]
    page = operator_client.post(
        reverse(CHANGELIST), {"action": ["cancel", ""], "index": "0", "_selected_action": ids}
    ).content.decode()
    assert '<input type="hidden" name="action" value="cancel">' in page
    response = confirm_bulk(operator_client, searches, "cancel")
    assert messages_of(response)[0] == ("success", "Cancel: 2 done.")
