"""A vetted coach search on the Celery engine, end to end: the live console, a real worker, and the
simulated GlobalCoach on loopback calling the console back over HTTP."""

from __future__ import annotations

import os
import signal

import pytest
from django.db import connection
from django.utils import timezone

from matching.models import Search, SearchStatus, SearchVetting
from tests.compat.conftest import stored_search
from tests.conftest import CONSOLE_ANSWERS, start_celery_worker, stop_celery_worker
from tests.helpers.bodies import E2E_COACH
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.polling import wait_for
from workflows.services import dispatch_relay, search_intervene
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


def test_a_worker_killed_while_the_search_waits_loses_nothing(
    worker_env, tmp_path, snowtrace, profiles, globalcoach, monkeypatch
):
    """Nothing holds a task while a search waits: the worker that parked it is SIGKILLed, and
    GlobalCoach's answer alone (through the web process) finishes the search."""
    globalcoach.set_mode("approve_all", delay_seconds=3)
    stub_dispatch_send(monkeypatch)  # run it on our own worker
    search_id = _submit(snowtrace)
    # The relay sends after commit, in its own thread: let it finish with the stub before undoing it,
    # or the real send hands the search to the session's worker instead of ours.
    assert dispatch_relay.wait_idle(timeout=15)
    monkeypatch.undo()
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
