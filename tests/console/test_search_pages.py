"""The search list and the read-only search page, as staff read them."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from matching.models import Engine, Search, SearchEvent, StaffAction
from matching.services.profiles import profile_upsert
from tests.console.conftest import make_search, with_results
from tests.console.helpers import CHANGELIST
from tests.helpers.factories import SearchResultFactory
from workflows.models import ExecutionTimelineEntry, SearchDispatch, WebhookDelivery, WorkflowExecution

pytestmark = pytest.mark.django_db


def listed(client, **params) -> set:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def test_the_list_shows_short_ids_badges_and_time_left_on_vetting(reviewer_client):
    waiting = make_search(status="awaiting_vetting", engine=Engine.DURABLE,
                          deadline_at=timezone.now() + timedelta(minutes=30))  # fmt: skip
    page = reviewer_client.get(reverse(CHANGELIST)).content.decode()
    assert f">{str(waiting.pk)[:8]}</a>" in page
    assert 'class="sb-badge sb-amber">Awaiting vetting' in page
    assert "min left" in page
    assert "date_hierarchy" not in page and 'class="xfull"' not in page


def test_filters_by_status_engine_role_created_and_attention(reviewer_client):
    now = timezone.now()
    coach = make_search(status="succeeded", engine=Engine.DURABLE,
                        preferences={"role": "coach", "skill_level_min": 6, "skill_level_max": 10})  # fmt: skip
    old = make_search(status="failed")
    Search.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=3))
    stuck = make_search(status="running", engine=Engine.CELERY, idle_seconds=3600)
    flagged = make_search(status="failed", engine=Engine.DURABLE)
    Search.objects.filter(pk=flagged.pk).update(drift_flagged=True)
    dead = make_search(status="succeeded", engine=Engine.DURABLE)
    Search.objects.filter(pk=dead.pk).update(callback_dead_lettered=True)
    late_vetting = make_search(status="awaiting_vetting", engine=Engine.DURABLE, idle_seconds=1800,
                               deadline_at=now + timedelta(minutes=10))  # fmt: skip
    early_vetting = make_search(status="awaiting_vetting", engine=Engine.DURABLE, idle_seconds=60,
                                deadline_at=now + timedelta(minutes=50))  # fmt: skip
    fresh = make_search(status="running", engine=Engine.CELERY)

    assert listed(reviewer_client, status__exact="failed") == {old.pk, flagged.pk}
    assert listed(reviewer_client, engine__exact="celery") == {old.pk, stuck.pk, fresh.pk}
    assert listed(reviewer_client, role="coach") == {coach.pk}
    assert old.pk not in listed(reviewer_client, created="24h") and old.pk in listed(reviewer_client, created="7d")
    assert listed(reviewer_client, attention="stuck") == {stuck.pk}
    assert listed(reviewer_client, attention="drift") == {flagged.pk}
    assert listed(reviewer_client, attention="dead_letter") == {dead.pk}
    assert listed(reviewer_client, attention="vetting") == {late_vetting.pk}
    assert listed(reviewer_client, attention="any") == {stuck.pk, flagged.pk, dead.pk, late_vetting.pk}
    assert early_vetting.pk not in listed(reviewer_client, attention="any")


def test_a_durable_search_is_stuck_after_the_start_grace_period(reviewer_client, settings):
    settings.MATCHING_DURABLE_START_GRACE_SECONDS = 300
    late = make_search(status="dispatched", engine=Engine.DURABLE, idle_seconds=400)
    make_search(status="dispatched", engine=Engine.DURABLE, idle_seconds=100)
    assert listed(reviewer_client, attention="stuck") == {late.pk}


def test_search_by_id_prefix_seeker_or_candidate(reviewer_client):
    a = make_search(status="succeeded", seeker_id="seeker-a")
    b = make_search(status="succeeded", seeker_id="seeker-b")
    SearchResultFactory(search=b, user_id="friend-7")
    assert listed(reviewer_client, q=str(a.pk)[:6]) >= {a.pk}
    assert listed(reviewer_client, q=str(a.pk)) == {a.pk}
    assert listed(reviewer_client, q=str(a.pk).upper()) == {a.pk}
    assert listed(reviewer_client, q="seeker-b") == {b.pk}
    assert listed(reviewer_client, q="friend-7") == {b.pk}
    assert listed(reviewer_client, q="nobody") == set()


def test_the_list_runs_a_bounded_number_of_queries(reviewer_client, django_assert_max_num_queries):
    for _ in range(30):
        make_search(status="succeeded")
    with django_assert_max_num_queries(12):
        reviewer_client.get(reverse(CHANGELIST), {"attention": "any"})
    with django_assert_max_num_queries(12):
        reviewer_client.get(reverse(CHANGELIST))


def test_the_search_page_reads_preferences_results_and_reasons(reviewer_client, resorts):
    prefs = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "resorts": ["yuzawa_naeba"],
             "dates": ["2027-01-15"]}  # fmt: skip
    search = make_search(status="succeeded", preferences=prefs)
    profile_upsert(user_id="u000042", nickname="Powder", skill_level=5, role="coach", resorts=["yuzawa_naeba"],
                   available_dates=["2027-01-15"])  # fmt: skip
    breakdown = {"skill": 1.0, "location": 1.0, "availability": 1.0, "role": 0.8, "knowledge": None}
    SearchResultFactory(search=search, rank=1, user_id="u000042", nickname="Powder", score=0.97, breakdown=breakdown)
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert "levels 3 to 7" in page and "Naeba" in page and "2027-01-15" in page
    assert "same resort: Naeba" in page
    assert "shared date 2027-01-15" in page
    assert "coach for a buddy search" in page
    assert "skill 5 within 3 to 7" in page


def test_the_search_page_merges_every_source_into_one_timeline_to_the_millisecond(reviewer_client, operator):
    search = make_search(status="succeeded", engine=Engine.DURABLE)
    execution = WorkflowExecution.objects.create(
        search=search, attempt=1, engine="durable", execution_name=f"{search.pk}-a1",
        execution_arn="arn:local:durable:x-a1", drift_state="ok",
    )  # fmt: skip
    base = timezone.now().replace(microsecond=123000) - timedelta(minutes=1)
    ExecutionTimelineEntry.objects.create(execution=execution, key="history:1", at=base, source="history",
                                          kind="wait", name="vetting", event="WaitStarted")  # fmt: skip
    ExecutionTimelineEntry.objects.create(execution=execution, key="item:2", at=base + timedelta(milliseconds=1500),
                                          source="item", kind="step", name="score", event="succeeded")  # fmt: skip
    WebhookDelivery.objects.create(webhook_id=f"msg_{search.pk}-a1_v7", search=search, status="succeeded", version=7,
                                   outcome="applied")  # fmt: skip
    SearchDispatch.objects.create(search=search, attempt=1, engine="durable", sent_at=timezone.now(), send_count=1)
    StaffAction.objects.create(username="olga-operator", action="resync", search=search, attempt=1, reason="check",
                               outcome="done", status_before="succeeded", status_after="succeeded")  # fmt: skip
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    # In the staff member's zone (STAFF_TIME_ZONE, Asia/Taipei, for one who has not chosen), which it names.
    taipei = base.astimezone(ZoneInfo("Asia/Taipei"))
    assert taipei.strftime("%Y-%m-%d %H:%M:%S") + ".123 UTC+0800" in page
    assert "+1.500 s" in page
    expected = ["durable history", "DynamoDB item", "WaitStarted", "webhook", "applied", "queued", "sent",
                "arn:local:durable:x-a1", f"{search.pk}-a1", "submitted", "Resync mirror: Done",
                "olga-operator"]  # fmt: skip
    for text in expected:
        assert text in page, text


def test_a_console_event_the_mirror_copied_is_shown_once(reviewer_client):
    search = make_search(status="running")
    event = SearchEvent.objects.filter(search=search, kind="running").get()
    execution = WorkflowExecution.objects.create(search=search, attempt=1, engine="celery")
    ExecutionTimelineEntry.objects.create(execution=execution, key=f"event:{event.pk}", at=event.at, source="console",
                                          kind="transition", name="system", event="running")  # fmt: skip
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert page.count("<b>running</b>") == 1


def test_a_celery_attempt_says_it_has_no_dynamodb_item_instead_of_a_stale_mirror_status(reviewer_client):
    # A Celery attempt's mirror row is only a holder for copied console events: its status lags the
    # search's until the periodic sync, so the page does not show it as the attempt's state.
    celery = make_search(status="succeeded", engine=Engine.CELERY)
    WorkflowExecution.objects.create(search=celery, attempt=1, engine="celery", status="dispatched", version=0)
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[celery.pk])).content.decode()
    assert "a Celery attempt has no DynamoDB item" in page
    assert "dispatched · item v0" not in page
    durable = make_search(status="succeeded", engine=Engine.DURABLE)
    WorkflowExecution.objects.create(search=durable, attempt=1, engine="durable", status="succeeded", version=7)
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[durable.pk])).content.decode()
    assert "succeeded · item v7" in page


def test_a_retried_search_shows_each_attempt(operator_client, celery_only):
    from tests.console.helpers import confirm_single

    search = make_search(status="failed")
    confirm_single(operator_client, search, "retry", reason="again")
    page = operator_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert "Attempt 2 on celery — rerun of attempt 1" in page and "Attempt 1" in page


def test_why_not_names_the_filter_that_excluded_a_person(reviewer_client, resorts):
    search = with_results(make_search(status="succeeded"), 3)
    profile_upsert(user_id="friend-1", nickname="Kai", skill_level=9, role="buddy")
    url = reverse("admin:matching_search_change", args=[search.pk])
    page = reviewer_client.get(url, {"why": "friend-1"}).content.decode()
    assert "excluded — skill level 9 is outside the search&#x27;s range 3 to 7" in page


def test_why_not_gives_the_score_and_the_rank_they_would_have_had(reviewer_client, resorts):
    search = with_results(make_search(status="succeeded"), 3)  # scores 0.8, 0.7, 0.6
    profile_upsert(user_id="friend-2", nickname="Mio", skill_level=5, role="buddy")
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk]), {"why": "friend-2"})
    verdict = page.context["verdict"]
    assert (
        verdict.excluded_by is None and verdict.score == 0.55 and verdict.rank == 4
    )  # 0.545, rounded as the old service did
    assert "a match — scored 0.55: would rank 4 of the current results" in page.content.decode()


def test_why_not_says_below_the_cap_when_the_results_are_full(reviewer_client, resorts):
    prefs = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "limit": 2}
    search = make_search(status="succeeded", preferences=prefs)
    SearchResultFactory(search=search, rank=1, user_id="a", score=0.9)
    SearchResultFactory(search=search, rank=2, user_id="b", score=0.8)
    profile_upsert(user_id="friend-3", nickname="Ren", skill_level=5, role="student")
    verdict = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk]),
                                  {"why": "friend-3"}).context["verdict"]  # fmt: skip
    assert verdict.excluded_by == "cap" and verdict.rank == 3
    assert "below the top-2 cap" in verdict.reason


def test_why_not_for_an_unknown_user(reviewer_client):
    search = make_search(status="succeeded")
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk]), {"why": "ghost"})
    assert "no profile with this user id" in page.content.decode()


def test_the_list_counts_no_further_than_its_cap(reviewer_client, monkeypatch):
    from matching.admin.filters import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 5)
    for _ in range(7):
        make_search(status="succeeded")
    page = reviewer_client.get(reverse(CHANGELIST)).content.decode()
    assert "more than 5 searches" in page
    make_search(status="failed")
    assert "1 search\n" in reviewer_client.get(reverse(CHANGELIST), {"status__exact": "failed"}).content.decode()


def test_the_execution_list_finds_an_execution_by_its_name_and_ignores_a_malformed_one(reviewer_client, resorts):
    search = make_search(status="running", engine="durable")
    WorkflowExecution.objects.create(search=search, attempt=1, engine="durable", execution_name=f"{search.pk}-a1")
    url = reverse("admin:workflows_workflowexecution_changelist")
    found = reviewer_client.get(url, {"q": f"{search.pk}-a1"})
    assert [e.search_id for e in found.context["cl"].result_list] == [search.pk]
    assert not reviewer_client.get(url, {"q": f"{search.pk}-a2"}).context["cl"].result_list
    assert reviewer_client.get(url, {"q": "-" * 36 + "-a1"}).status_code == 200


def test_the_search_page_shows_each_attempts_trace_id_linked_through_the_template(reviewer_client, settings):
    search = make_search(status="running", engine=Engine.DURABLE)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    SearchDispatch.objects.create(
        search=search, attempt=1, engine=Engine.DURABLE, traceparent=f"00-{trace_id}-b7ad6b7169203331-01"
    )
    url = reverse("admin:matching_search_change", args=[search.pk])
    settings.TRACE_URL_TEMPLATE = ""
    page = reviewer_client.get(url).content.decode()
    assert f'<code class="sb-trace">{trace_id}</code>' in page and "tempo.example" not in page
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    page = reviewer_client.get(url).content.decode()
    assert f'href="https://tempo.example/trace/{trace_id}"' in page
    assert page.count(f"<code>{trace_id}</code>") == 2  # the search's facts and its attempt


def test_a_search_dispatched_without_tracing_shows_no_trace_row(reviewer_client):
    search = make_search(status="running", engine=Engine.DURABLE)
    SearchDispatch.objects.create(search=search, attempt=1, engine=Engine.DURABLE)
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert "sb-trace" not in page and "<th>Trace</th>" not in page
