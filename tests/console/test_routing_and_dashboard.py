"""The routing switch and the dashboard."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from matching.models import Engine, Search, StaffAction
from tests.console.conftest import make_search
from tests.console.helpers import messages_of
from workflows.dispatch import routing
from workflows.dispatch.engine_choice import choose_engine
from workflows.models import EngineRouting, WorkflowExecution

pytestmark = pytest.mark.django_db

ROUTING = "admin:matching_search_routing"
DASHBOARD = "admin:matching_search_dashboard"


def test_staff_send_new_searches_to_celery_and_back_without_a_restart(operator_client, durable_api, owner, resorts):
    assert choose_engine() == Engine.DURABLE
    response = operator_client.post(reverse(ROUTING), {"mode": "celery", "reason": "durable API incident"})
    assert response.status_code == 302
    assert ("success", "Routing: done: new searches now go: all new searches to celery") in messages_of(response)
    assert choose_engine() == Engine.CELERY
    answer = owner.post("/matching/searches", {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7})
    assert answer.status_code == 202 and answer.json()["engine"] == "celery"
    operator_client.post(reverse(ROUTING), {"mode": "environment", "reason": "incident over"})
    assert choose_engine() == Engine.DURABLE
    audit = list(StaffAction.objects.filter(action="routing").order_by("at").values_list(
        "username", "status_before", "status_after", "reason", "outcome"))  # fmt: skip
    assert audit == [
        ("olga-operator", "environment", "celery", "durable API incident", "done"),
        ("olga-operator", "celery", "environment", "incident over", "done"),
    ]


def test_another_process_sees_the_flip_within_the_cache_bound(durable_api, monkeypatch):
    monkeypatch.setattr(routing, "ROUTING_CACHE_SECONDS", 1.0)  # room for a loaded machine's row write
    assert choose_engine() == Engine.DURABLE  # read and remembered
    # Another process flips the switch (a row write it made; this process's memory is untouched).
    EngineRouting.objects.update_or_create(pk=1, defaults={"mode": "celery"})
    assert choose_engine() == Engine.DURABLE  # still within the bound
    deadline = time.monotonic() + 5
    while choose_engine() != Engine.CELERY and time.monotonic() < deadline:
        time.sleep(0.05)
    assert choose_engine() == Engine.CELERY


def test_the_environment_stays_the_default(durable_api):
    assert not EngineRouting.objects.exists() and choose_engine() == Engine.DURABLE


def test_switching_to_the_mode_in_force_is_skipped_and_audited(operator_client):
    response = operator_client.post(reverse(ROUTING), {"mode": "environment", "reason": "just checking"})
    assert "skipped" in messages_of(response)[0][1]
    assert StaffAction.objects.get(action="routing").outcome == "skipped"


def test_the_routing_switch_needs_a_reason(operator_client):
    response = operator_client.post(reverse(ROUTING), {"mode": "celery", "reason": ""})
    assert response.status_code == 200 and not EngineRouting.objects.exists()


def test_the_dashboard_counts_charts_and_lists(reviewer_client, settings):
    settings.MATCHING_CELERY_STUCK_SECONDS = 900
    now = timezone.now()
    for _ in range(3):
        make_search(status="succeeded", engine=Engine.CELERY, finished_at=None)
    make_search(status="failed", engine=Engine.DURABLE)
    stuck = make_search(status="running", engine=Engine.CELERY, idle_seconds=3600)
    flagged = make_search(status="failed", engine=Engine.DURABLE)
    WorkflowExecution.objects.create(search=flagged, attempt=1, engine="durable", drift_state="flagged",
                                     drift_reason="the durable execution does not exist")  # fmt: skip
    Search.objects.filter(pk=flagged.pk).update(drift_flagged=True)
    dead = make_search(status="succeeded", engine=Engine.DURABLE)
    Search.objects.filter(pk=dead.pk).update(callback_dead_lettered=True)
    later = make_search(status="awaiting_vetting", engine=Engine.DURABLE, deadline_at=now + timedelta(minutes=40))
    sooner = make_search(status="awaiting_vetting", engine=Engine.DURABLE, deadline_at=now + timedelta(minutes=5))
    old = make_search(status="succeeded")
    Search.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=2))
    # Durations submit → finish: 1 s, 2 s, 3 s on Celery.
    for seconds, search in zip((1, 2, 3), Search.objects.filter(status="succeeded", engine="celery")
                               .exclude(pk=old.pk).order_by("pk"), strict=True):  # fmt: skip
        Search.objects.filter(pk=search.pk).update(finished_at=search.created_at + timedelta(seconds=seconds))

    response = reviewer_client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    ctx = response.context
    grid = {row["status"]: row["counts"] for row in ctx["statuses"]}
    assert grid["succeeded"] == [3, 1] and grid["failed"] == [0, 2] and grid["awaiting_vetting"] == [0, 2]
    assert ctx["window_total"] == 9  # the search from two days ago is outside the window
    assert ctx["chart"]["total"] == 9 and len(ctx["chart"]["bars"]) == 24
    assert ctx["chart"]["bars"][-1]["n"] == 9
    celery = next(p for p in ctx["percentiles"] if p["engine"] == "Celery")
    assert celery["count"] == 3 and celery["p50"] == pytest.approx(2.0) and celery["p95"] == pytest.approx(2.9)
    assert [s.pk for s in ctx["stuck"]] == [stuck.pk]
    assert [s.pk for s in ctx["drift"]] == [flagged.pk]
    assert [s.pk for s in ctx["dead_letters"]] == [dead.pk]
    assert [s.pk for s in ctx["vetting"]] == [sooner.pk, later.pk]
    page = response.content.decode()
    assert "<svg" in page and "the durable execution does not exist" in page
    assert 'New searches go to <b id="sb-engine-in-force">celery</b>' in page


def test_the_dashboard_offers_operators_approve_and_reject_in_the_inbox(operator_client):
    waiting = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    page = operator_client.get(reverse(DASHBOARD)).content.decode()
    url = reverse("admin:matching_search_act", args=[waiting.pk, "intervene"])
    assert f"{url}?decision=approve_all" in page and f"{url}?decision=reject" in page


def test_the_admin_index_links_the_dashboard(reviewer_client):
    page = reviewer_client.get(reverse("admin:index")).content.decode()
    assert reverse(DASHBOARD) in page


def test_the_dashboard_runs_a_bounded_number_of_queries(reviewer_client, django_assert_max_num_queries):
    for _ in range(20):
        make_search(status="succeeded")
    with django_assert_max_num_queries(15):
        reviewer_client.get(reverse(DASHBOARD))
