"""The search list runs the same small number of queries whatever it shows: each filter choice, a
search term, one row or many (a query per row would be 50 more queries on a full page)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse
from django.utils import timezone

from matching.models import Engine, Role, Search, SearchNotification, SearchStatus
from tests.console.conftest import make_search
from tests.console.helpers import CHANGELIST
from tests.helpers.factories import SearchResultFactory
from workflows.models import SearchDispatch, WebhookDelivery

pytestmark = pytest.mark.django_db

MAX_QUERIES = 8  # session, user, permissions, the capped count, the rows, and a little room


def every_filter_choice(user) -> dict[str, str]:
    """Each choice of each list filter of the registered Search admin, as its changelist builds them
    (as bench/admin_bench.py finds them), so a filter added later is covered without editing this test."""
    model_admin = admin.site._registry[Search]
    url = reverse(CHANGELIST)
    request = RequestFactory().get(url)
    request.user, request.resolver_match, request.session = user, resolve(url), {}
    changelist = model_admin.get_changelist_instance(request)
    choices = {"no filter": ""}
    for spec in changelist.filter_specs:
        for choice in spec.choices(changelist):
            query = choice.get("query_string") or "?"
            if query not in ("?", ""):
                choices[f"{spec.title}: {choice['display']}"] = query
    return choices


def searches_for_every_choice() -> None:
    """At least one search behind every filter choice: each status on each engine (the sought roles
    taken in turn), a stuck one, a flagged one, a dead-lettered one, a vetting request past half its
    deadline, and one that a candidate was a result in."""
    roles = list(Role.values)
    for i, (status, engine) in enumerate((s, e) for s in SearchStatus.values for e in Engine.values):
        preferences = {"role": roles[i % len(roles)], "skill_level_min": 3, "skill_level_max": 7}
        make_search(status=status, engine=engine, seeker_id="seeker-many", preferences=preferences)
    make_search(status="running", engine=Engine.CELERY, idle_seconds=3600)
    Search.objects.filter(pk=make_search(status="failed", engine=Engine.DURABLE).pk).update(drift_flagged=True)
    Search.objects.filter(pk=make_search(status="succeeded").pk).update(callback_dead_lettered=True)
    make_search(status="awaiting_vetting", engine=Engine.DURABLE, idle_seconds=1800,
                deadline_at=timezone.now() + timedelta(minutes=10))  # fmt: skip
    SearchResultFactory(search=make_search(status="succeeded"), user_id="friend-7")


def queries_and_rows(client, query: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200, query
    return len(ctx.captured_queries), len(response.context["cl"].result_list)


def test_each_filter_choice_runs_the_same_few_queries_however_many_rows_it_shows(reviewer_client, reviewer):
    pages = {**every_filter_choice(reviewer), "search: seeker id": "?q=seeker-many",
             "search: candidate user id": "?q=friend-7"}  # fmt: skip
    searches_for_every_choice()
    before = {label: queries_and_rows(reviewer_client, query) for label, query in pages.items()}
    assert [label for label, (_, rows) in before.items() if rows == 0] == []  # every choice shows rows

    searches_for_every_choice()  # twice the rows behind every choice
    after = {label: queries_and_rows(reviewer_client, query) for label, query in pages.items()}

    assert all(after[label][1] > before[label][1] for label in pages if label != "search: candidate user id")
    assert {label: n for label, (n, _) in after.items()} == {label: n for label, (n, _) in before.items()}
    assert {label: n for label, (n, _) in after.items() if n > MAX_QUERIES} == {}


def test_the_role_filter_keeps_the_role_column_without_reading_each_rows_preferences(reviewer_client):
    for _ in range(3):
        make_search(status="succeeded", preferences={"role": "coach", "skill_level_min": 6, "skill_level_max": 10})
    make_search(status="succeeded")  # a buddy search, filtered out

    page = reviewer_client.get(reverse(CHANGELIST), {"role": "coach"})

    assert [row.sought_role for row in page.context["cl"].result_list] == ["coach"] * 3
    assert all("preferences" in row.get_deferred_fields() for row in page.context["cl"].result_list)


@pytest.mark.parametrize(
    "changelist",
    ["admin:matching_search_changelist", "admin:matching_searchnotification_changelist",
     "admin:workflows_searchdispatch_changelist", "admin:workflows_webhookdelivery_changelist"],
)  # fmt: skip
def test_the_capped_count_neither_sorts_nor_reads_more_than_the_primary_key(admin_client, changelist):
    search = make_search(status="succeeded")
    SearchNotification.objects.create(search=search, attempt=1, status="succeeded")
    SearchDispatch.objects.create(search=search, attempt=1, engine=Engine.CELERY)
    WebhookDelivery.objects.create(webhook_id="wh-1", search=search, status="succeeded", version=3, outcome="applied")

    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(reverse(changelist)).status_code == 200

    counts = [q["sql"] for q in ctx.captured_queries if q["sql"].upper().startswith("SELECT COUNT(")]
    assert len(counts) == 1
    assert "ORDER BY" not in counts[0].upper()
    selected = counts[0].split(" FROM (", 1)[1].split(" FROM ", 1)[0]  # the capped subquery's columns
    assert "," not in selected and selected.endswith('AS "pk"')
