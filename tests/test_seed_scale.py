import os
import subprocess
import sys
from collections import Counter
from io import StringIO
from itertools import pairwise
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, F, Max, Min

from devtools.seed_scale.command import Command as SeedScale
from matching.engine.types import SearchRequest
from matching.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Engine,
    NotificationState,
    Search,
    SearchEvent,
    SearchNotification,
    SearchResult,
    SearchStatus,
    StaffAction,
    StaffActionKind,
)
from tests.helpers.factories import SearchFactory
from workflows.models import (
    DriftState,
    ExecutionTimelineEntry,
    SearchDispatch,
    TimelineSource,
    WebhookDelivery,
    WorkflowExecution,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
UNTIL = "2026-11-28T12:00:00+00:00"


def seed(*extra: str, searches: int = 2000) -> str:
    # Ten days instead of ninety: the 20 newest hours then hold enough searches for 100 active ones.
    out = StringIO()
    call_command(
        SeedScale(), "--searches", str(searches), "--days", "10", "--until", UNTIL, "--active", "100", *extra,
        stdout=out,
    )  # fmt: skip
    return out.getvalue()


def test_seed_scale_fills_every_table_and_reports_each_with_its_time():
    out = seed()

    assert Search.objects.count() == 2000
    assert 3.5 * 2000 <= SearchEvent.objects.count() <= 4.5 * 2000
    assert 0.8 * 2000 <= SearchResult.objects.count() <= 1.3 * 2000
    assert SearchDispatch.objects.count() >= 2000  # one per attempt
    assert WebhookDelivery.objects.exists() and ExecutionTimelineEntry.objects.exists()
    for table in ("searches", "search events", "search results", "workflow executions", "foreign-key checks"):
        assert table in out
    assert "Done: " in out and " s." in out


def test_seeded_searches_have_realistic_statuses_engines_and_attempts():
    seed()

    statuses = Counter(Search.objects.values_list("status", flat=True))
    assert set(statuses) <= set(SearchStatus.values)
    assert set(TERMINAL_STATUSES) <= set(statuses)
    assert statuses[SearchStatus.SUCCEEDED] > 0.8 * 2000
    active = sum(statuses[s] for s in ACTIVE_STATUSES)
    assert 60 <= active <= 180  # --active 100, plus the few in flight
    assert statuses[SearchStatus.AWAITING_VETTING] > 0
    assert set(Search.objects.values_list("engine", flat=True)) == set(Engine.values)
    assert Search.objects.filter(attempt__lt=1).count() == 0
    assert Search.objects.filter(attempt__gt=1).exists()
    assert not Search.objects.filter(status__in=TERMINAL_STATUSES, finished_at__isnull=True).exists()
    assert not Search.objects.filter(status__in=ACTIVE_STATUSES, finished_at__isnull=False).exists()
    assert Search.objects.aggregate(first=Min("created_at"), last=Max("created_at"))["last"].isoformat() < UNTIL
    # Stuck: active and untouched for longer than the Celery threshold (15 minutes).
    assert Search.objects.filter(status__in=[SearchStatus.RUNNING, SearchStatus.DISPATCHED]).count() > 10
    for search in Search.objects.all()[:500]:
        SearchRequest.from_preferences(search.seeker_id, search.preferences)  # the engine accepts them


def test_seeded_events_are_ordered_and_tell_each_search_story():
    seed()

    previous: dict = {}
    last_transition: dict = {}
    for search_id, at, to_status in SearchEvent.objects.order_by("id").values_list("search_id", "at", "to_status"):
        assert previous.get(search_id) is None or previous[search_id] <= at
        previous[search_id] = at
        if to_status:
            last_transition[search_id] = (to_status, at)
    searches = {s.pk: s for s in Search.objects.all()}
    for search_id, (to_status, at) in last_transition.items():
        assert searches[search_id].status == to_status
        assert searches[search_id].updated_at == at
    first = SearchEvent.objects.filter(kind="submitted", at=F("search__created_at"))
    assert first.count() == 2000
    assert SearchEvent.objects.filter(attempt__gt=F("search__attempt")).count() == 0


def test_seeded_results_are_unique_ranked_and_counted():
    seed()

    assert not (
        SearchResult.objects.values("search", "attempt", "rank").annotate(n=Count("id")).filter(n__gt=1).exists()
    )
    counts = dict(SearchResult.objects.values_list("search").annotate(n=Count("id")))
    for search in Search.objects.filter(result_count__gt=0):
        assert counts[search.pk] == search.result_count
        scores = list(
            SearchResult.objects.filter(search=search, attempt=search.attempt)
            .order_by("rank")
            .values_list("score", "rank")
        )
        assert [r for _, r in scores] == list(range(1, search.result_count + 1))
        assert all(a >= b for (a, _), (b, _) in pairwise(scores))
    assert not SearchResult.objects.exclude(search__status=SearchStatus.SUCCEEDED).exists()


def test_seeded_executions_mirror_each_dispatched_attempt_with_some_flagged():
    seed()

    dispatched = SearchDispatch.objects.filter(sent_at__isnull=False).count()
    assert WorkflowExecution.objects.count() == dispatched
    flagged = WorkflowExecution.objects.filter(drift_state__in=[DriftState.FLAGGED, DriftState.ACKNOWLEDGED])
    assert flagged.filter(drift_state=DriftState.FLAGGED).exists()
    assert flagged.count() == SearchEvent.objects.filter(kind="drift_flagged").count()
    durable = WorkflowExecution.objects.filter(engine=Engine.DURABLE)
    assert not durable.filter(execution_arn="").exists()
    assert ExecutionTimelineEntry.objects.filter(source=TimelineSource.HISTORY).exists()
    assert ExecutionTimelineEntry.objects.filter(source=TimelineSource.CONSOLE).exists()


def test_seed_scale_is_deterministic_for_a_seed_and_an_end_time():
    seed()
    searches = list(Search.objects.order_by("search_id").values_list())
    events = list(
        SearchEvent.objects.order_by("search_id", "at").values_list("search_id", "kind", "at", "actor", "detail")
    )
    results = list(
        SearchResult.objects.order_by("search_id", "rank").values_list("search_id", "rank", "user_id", "score")
    )

    seed("--replace")

    assert list(Search.objects.order_by("search_id").values_list()) == searches
    assert (
        list(SearchEvent.objects.order_by("search_id", "at").values_list("search_id", "kind", "at", "actor", "detail"))
        == events
    )
    assert (
        list(SearchResult.objects.order_by("search_id", "rank").values_list("search_id", "rank", "user_id", "score"))
        == results
    )


def test_seed_scale_refuses_a_database_that_already_has_searches():
    SearchFactory()

    with pytest.raises(CommandError, match=r"--append .* --replace"):
        seed()
    assert Search.objects.count() == 1


def test_seed_scale_appends_new_searches_when_asked():
    seed(searches=300)
    seed("--append", searches=300)

    assert Search.objects.count() == 600


def test_seed_scale_refuses_sqlite(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")

    with pytest.raises(CommandError, match="needs PostgreSQL"):
        seed()


def test_the_module_entry_point_sets_django_up_and_runs_the_command(tmp_path):
    # `make seed-scale` runs `python -m devtools.seed_scale` (no manage.py command: dev tooling is not
    # installed in a deployment). On SQLite it gets as far as the command's own refusal.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'seed.sqlite3'}"}
    done = subprocess.run(
        [sys.executable, "-m", "devtools.seed_scale", "--searches", "10"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    assert "seed_scale needs PostgreSQL (DATABASE_URL points at sqlite)" in done.stderr


def test_seeded_attention_markers_notifications_and_audit_trail_agree_with_the_events():
    seed()

    still_flagged = WorkflowExecution.objects.filter(drift_state=DriftState.FLAGGED)
    assert Search.objects.filter(drift_flagged=True).count() == still_flagged.count() > 0
    acknowledged = SearchEvent.objects.filter(kind="drift_acknowledged").values("search")
    assert not Search.objects.filter(pk__in=acknowledged, drift_flagged=True).exists()
    assert not Search.objects.filter(pk__in=acknowledged, callback_dead_lettered=True).exists()
    finished_attempts = SearchEvent.objects.filter(to_status__in=TERMINAL_STATUSES).count()
    assert SearchNotification.objects.count() == finished_attempts
    assert SearchNotification.objects.filter(state=NotificationState.DELIVERED).count() > 0.99 * finished_attempts
    staff_events = SearchEvent.objects.filter(
        actor__startswith="staff:", kind__in=["retried", "cancelled", "intervened", "drift_acknowledged"]
    )
    assert StaffAction.objects.count() == staff_events.count() > 0
    assert set(StaffAction.objects.values_list("action", flat=True)) <= set(StaffActionKind.values)
    assert not StaffAction.objects.filter(reason="").exists()
    assert not Search.objects.filter(api_key=None).exists()
