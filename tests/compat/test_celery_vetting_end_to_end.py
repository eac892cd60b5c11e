"""A vetted coach search on the Celery engine, end to end: the live console, a real worker, and the
simulated GlobalCoach on loopback calling the console back over HTTP."""

from __future__ import annotations

import os
import signal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from matching.models import Engine, Search, SearchStatus, SearchVetting, StaffAction
from tests.compat.conftest import stored_search
from tests.conftest import CONSOLE_ANSWERS, start_celery_worker, stop_celery_worker
from tests.console.conftest import OPERATORS, ensure_console_groups
from tests.console.helpers import act_url, confirm_single
from tests.helpers.bodies import E2E_COACH
from tests.helpers.dispatch import stub_dispatch_send, stub_dispatch_send_undo
from tests.helpers.polling import wait_for
from workflows.staff_actions import search_intervene
from workflows.tasks import expire_overdue_searches, run_search

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

COACH = {**E2E_COACH, "limit": 20}


def _status(search_id: str) -> str:
    return stored_search(search_id).status


def _submit(snowtrace) -> str:
    response = snowtrace.post("/matching/searches", COACH, Accept=CONSOLE_ANSWERS)
    assert response.status_code == 202, response.text
    assert response.json()["engine"] == "celery"
    return response.json()["search_id"]


def _wait_for(search_id: str, status: str, timeout: float = 30) -> Search:
    wait_for(lambda: _status(search_id) == status, timeout=timeout, message=f"{search_id} to be {status}")
    return stored_search(search_id)


def _vetting(search_id: str) -> SearchVetting:
    connection.close()
    return SearchVetting.objects.get(search_id=search_id)


def test_globalcoach_approves_the_best_and_they_are_the_results(snowtrace, profiles, globalcoach, settings):
    globalcoach.set_mode("approve_fraction", delay_seconds=0.3, fraction=0.6)
    search_id = _submit(snowtrace)
    search = _wait_for(search_id, SearchStatus.SUCCEEDED)
    vetting = _vetting(search_id)
    assert len(vetting.candidate_ids) == 10 and vetting.answered_by == "globalcoach"
    approved = vetting.candidate_ids[:6]
    assert list(search.results.order_by("rank").values_list("rank", "user_id")) == list(enumerate(approved, 1))
    answer = snowtrace.get(f"/matching/searches/{search_id}").json()
    assert answer["status"] == "completed" and [r["user_id"] for r in answer["results"]] == approved


def test_globalcoach_rejects_everyone_and_the_search_fails(snowtrace, profiles, globalcoach):
    globalcoach.set_mode("reject_all", delay_seconds=0.3)
    search_id = _submit(snowtrace)
    search = _wait_for(search_id, SearchStatus.FAILED)
    assert search.error.startswith("vetting_rejected")
    # The old vocabulary's `failed` (SnowTrace's browser page reads it): nobody to show.
    answer = snowtrace.get(f"/matching/searches/{search_id}").json()
    assert answer == {"status": "failed", "results": [], "matches": []}


def test_no_answer_before_the_deadline_and_the_periodic_task_times_it_out(snowtrace, profiles, globalcoach):
    globalcoach.set_mode("staff")  # never answers
    search_id = _submit(snowtrace)
    _wait_for(search_id, SearchStatus.AWAITING_VETTING)
    Search.objects.filter(pk=search_id).update(deadline_at=timezone.now())
    expire_overdue_searches.delay()  # what beat runs, on the worker
    search = _wait_for(search_id, SearchStatus.TIMED_OUT)
    assert search.error.startswith("vetting_timeout")


def test_staff_answer_in_globalcoachs_place(snowtrace, profiles, globalcoach):
    globalcoach.set_mode("staff")
    search_id = _submit(snowtrace)
    search = _wait_for(search_id, SearchStatus.AWAITING_VETTING)
    picked = _vetting(search_id).candidate_ids[2:4]
    search_intervene(search=search, decision="approve", acting_user="staff:operator", approved_user_ids=picked)
    search = _wait_for(search_id, SearchStatus.SUCCEEDED)
    assert list(search.results.order_by("rank").values_list("user_id", flat=True)) == picked


@pytest.fixture
def staff_client(client, django_user_model):
    """An operator signed in to the admin (the console's staff door, in-process)."""
    ensure_console_groups()
    user = django_user_model.objects.create_user("olga-operator", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))
    client.force_login(user)
    return client


@pytest.mark.parametrize(("action", "last_engine"), [("rerun_celery", Engine.DURABLE), ("retry", Engine.CELERY)])
def test_a_staff_rerun_of_a_vetted_search_runs_on_celery_and_vets(
    snowtrace, profiles, globalcoach, staff_client, action, last_engine
):
    """One rule on both engines: a vetted search that failed (here GlobalCoach rejected everyone;
    its last attempt ran on `last_engine`) is rerun on Celery, and the worker vets attempt 2."""
    globalcoach.set_mode("reject_all", delay_seconds=0.2)
    search_id = _submit(snowtrace)
    _wait_for(search_id, SearchStatus.FAILED)
    Search.objects.filter(pk=search_id).update(engine=last_engine)
    globalcoach.set_mode("approve_all", delay_seconds=0.2)
    response = confirm_single(staff_client, stored_search(search_id), action, reason="certificates renewed")
    assert response.status_code == 302
    assert StaffAction.objects.get(search_id=search_id).outcome == "done", StaffAction.objects.get().detail
    search = _wait_for(search_id, SearchStatus.SUCCEEDED)
    assert (search.attempt, search.engine) == (2, "celery")
    vetting = SearchVetting.objects.get(search_id=search_id, attempt=2)
    assert vetting.answered_by == "globalcoach" and len(vetting.candidate_ids) == 10
    assert list(search.results.filter(attempt=2).order_by("rank").values_list("user_id", flat=True)) == (
        vetting.candidate_ids
    )
    assert StaffAction.objects.get(search_id=search_id).parameters["engine"] == "celery"


def test_staff_answer_vetting_from_the_admin_on_a_celery_search(snowtrace, profiles, globalcoach, staff_client):
    globalcoach.set_mode("staff")  # never answers
    search_id = _submit(snowtrace)
    search = _wait_for(search_id, SearchStatus.AWAITING_VETTING)
    page = staff_client.get(reverse("admin:matching_search_change", args=[search_id])).content.decode()
    assert act_url(search, "intervene") in page  # the button is offered
    picked = _vetting(search_id).candidate_ids[1:3]
    response = confirm_single(
        staff_client, search, "intervene", decision="approve_some", approved=picked, reason="checked by hand"
    )
    assert response.status_code == 302
    search = _wait_for(search_id, SearchStatus.SUCCEEDED)
    assert list(search.results.order_by("rank").values_list("user_id", flat=True)) == picked
    assert _vetting(search_id).answered_by == "staff:olga-operator"
    row = StaffAction.objects.get(search_id=search_id)
    assert (row.action, row.outcome, row.detail_code["code"]) == ("intervene", "done", "approved_some_celery")
    answer = snowtrace.get(f"/matching/searches/{search_id}").json()
    assert answer["status"] == "completed" and [r["user_id"] for r in answer["results"]] == picked


def test_a_worker_killed_while_the_search_waits_loses_nothing(
    worker_env, tmp_path, snowtrace, profiles, globalcoach, monkeypatch
):
    """Nothing holds a task while a search waits: the worker that parked it is SIGKILLed, and
    GlobalCoach's answer alone (through the web process) finishes the search."""
    globalcoach.set_mode("approve_all", delay_seconds=3)
    stub_dispatch_send(monkeypatch)  # run it on our own worker
    search_id = _submit(snowtrace)
    # Or the real send would hand the search to the session's worker instead of ours.
    stub_dispatch_send_undo(monkeypatch)
    own = start_celery_worker(tmp_path / "vetting-worker.log", worker_env, queues="vetting-crash", pool="prefork")
    try:
        run_search.apply_async(args=[search_id, 1], queue="vetting-crash")
        _wait_for(search_id, SearchStatus.AWAITING_VETTING)
        wait_for(lambda: _vetting(search_id).requested_at, timeout=15, message="the request to reach GlobalCoach")
        os.killpg(own.pid, signal.SIGKILL)
        own.wait(timeout=10)
        killed_at = timezone.now()
    finally:
        if own.poll() is None:
            stop_celery_worker(own)
    assert _vetting(search_id).answered_at is None  # still waiting when its worker died
    search = _wait_for(search_id, SearchStatus.SUCCEEDED, timeout=30)
    vetting = _vetting(search_id)
    assert vetting.answered_at > killed_at
    assert search.result_count == len(vetting.candidate_ids)
