"""The metrics exposition: names and labels, the counters and histogram a finished search moves,
the database gauges and what they cost, and /metrics behind its bearer token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import snowbuddy.metrics
from matching.models import MatchRequest, Search, SearchNotification, SearchStatus, UserEvent
from tests.helpers.bodies import OPEN_BUDDY as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from workflows.celery_engine.run import search_run_on_celery
from workflows.dispatch.submit import search_submit
from workflows.metrics_collector import ConsoleStateCollector
from workflows.models import SearchDispatch

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-0123456789"


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_CACHE_SECONDS = 0
    snowbuddy.metrics._registries.clear()  # built again with this test's settings
    yield
    snowbuddy.metrics._registries.clear()


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def test_a_finished_search_moves_the_counters_and_the_histogram(
    resorts, monkeypatch, django_capture_on_commit_callbacks
):
    stub_dispatch_send(monkeypatch)  # the broker is the far side here
    before = {
        "submitted": value("snowbuddy_searches_submitted_total", engine="celery"),
        "claimed": value("snowbuddy_searches_claimed_total", engine="celery"),
        "finished": value("snowbuddy_searches_finished_total", engine="celery", status="succeeded"),
        "count": value("snowbuddy_search_duration_seconds_count", engine="celery", shape="plain", status="succeeded"),
        "inf": value(
            "snowbuddy_search_duration_seconds_bucket", engine="celery", shape="plain", status="succeeded", le="+Inf"
        ),
        "stage": value("snowbuddy_search_stage_seconds_count", engine="celery", stage="search"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        search = search_submit(seeker_id="owner-1", preferences=PREFS)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = search_run_on_celery(search_id=str(search.pk), attempt=1)
    assert outcome.startswith("succeeded"), outcome
    assert value("snowbuddy_searches_submitted_total", engine="celery") == before["submitted"] + 1
    assert value("snowbuddy_searches_claimed_total", engine="celery") == before["claimed"] + 1
    assert value("snowbuddy_searches_finished_total", engine="celery", status="succeeded") == before["finished"] + 1
    assert (
        value("snowbuddy_search_duration_seconds_count", engine="celery", shape="plain", status="succeeded")
        == before["count"] + 1
    )
    assert (
        value("snowbuddy_search_duration_seconds_bucket", engine="celery", shape="plain", status="succeeded", le="+Inf")
        == before["inf"] + 1
    )
    for stage in ("claim", "candidates", "search", "store"):
        assert value("snowbuddy_search_stage_seconds_count", engine="celery", stage=stage) >= 1
    assert value("snowbuddy_search_stage_seconds_count", engine="celery", stage="search") == before["stage"] + 1


def test_a_rolled_back_transition_is_not_counted(resorts, monkeypatch):
    """Counters move after commit: without it (the test's transaction never commits) nothing moves."""
    stub_dispatch_send(monkeypatch)
    before = value("snowbuddy_searches_submitted_total", engine="celery")
    search_submit(seeker_id="owner-2", preferences=PREFS)
    assert value("snowbuddy_searches_submitted_total", engine="celery") == before


def test_the_exposition_names_its_series_with_low_cardinality_labels(client, metrics_on, resorts):
    client.get("/health")
    families = scrape(client)
    expected = {
        "snowbuddy_searches_submitted": {"engine"},
        "snowbuddy_searches_finished": {"engine", "status"},
        "snowbuddy_search_duration_seconds": {"engine", "shape", "status"},
        "snowbuddy_search_stage_seconds": {"engine", "stage"},
        "snowbuddy_workflow_callbacks": {"outcome"},
        "snowbuddy_lease_recoveries": {"outcome"},
        "snowbuddy_failovers": set(),
        "snowbuddy_http_requests": {"route", "method", "status"},
        "snowbuddy_http_request_duration_seconds": {"route", "method"},
        "snowbuddy_searches_active": {"engine", "status"},
        "snowbuddy_searches_stuck": {"engine"},
        "snowbuddy_outbox_depth": {"outbox"},
        "snowbuddy_outbox_oldest_age_seconds": {"outbox"},
        "snowbuddy_notifications_dead_lettered": set(),
        "snowbuddy_user_events_dead_lettered": set(),
        "snowbuddy_callbacks_dead_lettered_searches": set(),
        "snowbuddy_drift_flagged_searches": set(),
        "snowbuddy_vetting_pending": set(),
        "snowbuddy_vetting_overdue": set(),
        "snowbuddy_durable_breaker_state": {"state"},
        "snowbuddy_warm_index_profiles": set(),
        "snowbuddy_warm_index_load_seconds": set(),
        "snowbuddy_metrics_read_queries": set(),
    }
    for name, labels in expected.items():
        assert name in families, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} <= labels, (name, sample.labels)
    requests_total = [s for s in families["snowbuddy_http_requests"].samples if s.name.endswith("_total")]
    health = [s for s in requests_total if s.labels["route"] == "health"]
    assert health and health[0].labels["method"] == "GET" and health[0].labels["status"] == "200"
    # No label value carries an id: every route is a pattern.
    for sample in families["snowbuddy_http_requests"].samples:
        assert not any(ch.isdigit() for ch in sample.labels["route"].replace("v2", "")), sample.labels


def test_the_database_gauges(client, metrics_on, resorts):
    now = timezone.now()
    stuck = Search.objects.create(
        seeker_id="s", preferences=PREFS, engine="celery", status=SearchStatus.DISPATCHED, deadline_at=now
    )
    Search.objects.filter(pk=stuck.pk).update(updated_at=now - timedelta(hours=2))
    done = Search.objects.create(
        seeker_id="d", preferences=PREFS, engine="celery", status=SearchStatus.SUCCEEDED, deadline_at=now,
        callback_dead_lettered=True,
    )  # fmt: skip
    SearchDispatch.objects.create(search=stuck, attempt=1, engine="celery")
    SearchNotification.objects.create(search=done, attempt=1, status="succeeded", state="dead_letter")
    request = MatchRequest.objects.create(requester_id="r", target_user_id="t")
    for state in ("pending", "dead_letter", "dead_letter", "delivered"):
        UserEvent.objects.create(match_request=request, event_type="snowbuddy.match.request.sent", body={}, state=state)
    families = scrape(client)

    def sample(family: str, **labels) -> float:
        found = [s.value for s in families[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (family, labels, families[family].samples)
        return found[0]

    assert sample("snowbuddy_searches_stuck", engine="celery") == 1
    assert sample("snowbuddy_searches_stuck", engine="durable") == 0
    assert sample("snowbuddy_searches_active", engine="celery", status="dispatched") == 1
    assert sample("snowbuddy_outbox_depth", outbox="dispatch") == 1
    assert sample("snowbuddy_outbox_oldest_age_seconds", outbox="dispatch") >= 0
    assert sample("snowbuddy_notifications_dead_lettered") == 1
    assert sample("snowbuddy_user_events_dead_lettered") == 2
    assert sample("snowbuddy_outbox_depth", outbox="user_event") == 1
    assert sample("snowbuddy_callbacks_dead_lettered_searches") == 1
    assert sample("snowbuddy_celery_waiting_oldest_age_seconds") > 3600
    assert sample("snowbuddy_durable_breaker_state", state="closed") == 1


def test_a_scrape_costs_a_few_queries_and_is_cached(resorts):
    collector = ConsoleStateCollector(cache_seconds=60)
    with CaptureQueriesContext(connection) as first:
        list(collector.collect())
    assert 0 < len(first) <= 8, [q["sql"] for q in first]
    assert collector.last_queries == len(first)
    with CaptureQueriesContext(connection) as second:
        list(collector.collect())
    assert len(second) == 0


def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize("authorization", [None, "", f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_missing_or_wrong_token(client, metrics_on, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["code"] == "not_authenticated"
    assert b"snowbuddy_" not in response.content


def test_every_answer_carries_a_request_id(client):
    assert len(client.get("/health")["X-Request-ID"]) == 32
    assert client.get("/health", HTTP_X_REQUEST_ID="req-abc-12345")["X-Request-ID"] == "req-abc-12345"
    assert client.get("/health", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"] != "bad id\n"


def test_a_service_start_drops_the_files_of_processes_gone_but_keeps_the_living(tmp_path, monkeypatch):
    import os

    dead_pid = 2**22 + 17  # above pid_max's default: no such process
    files = {
        f"counter_{dead_pid}.db": False,
        f"histogram_{dead_pid}.db": False,
        f"gauge_livemax_{dead_pid}.db": False,
        f"counter_{os.getpid()}.db": True,
        "counter_1.db": True,  # pid 1 lives
    }
    for name in files:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    snowbuddy.metrics.multiprocess_dir_reset()
    assert {p.name for p in tmp_path.iterdir()} == {name for name, kept in files.items() if kept}


def test_metrics_answer_other_methods_with_a_405_in_the_error_shape(client, metrics_on):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "method_not_allowed"
