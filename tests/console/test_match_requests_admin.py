"""Staff see match requests and their user-service events, read-only, in the console's two groups."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from matching.models import MatchRequest, UserEvent
from matching.services.match_requests import match_request_answer, match_request_send
from tests.console.conftest import OPERATORS, REVIEWERS

pytestmark = pytest.mark.django_db

LIST = "/admin/matching/matchrequest/"


def _requests(count: int, requester: str = "alice-1") -> list[MatchRequest]:
    return [match_request_send(requester_id=requester, target_user_id=f"target-{n}")[0] for n in range(count)]


def _list(client, **params):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(LIST, params)
    assert response.status_code == 200
    return response, len(ctx.captured_queries)


def test_a_reviewer_lists_requests_by_status_in_the_same_few_queries_however_many(client, reviewer):
    client.force_login(reviewer)
    first = _requests(1)[0]
    match_request_answer(match_request=first, acting_user_id="target-0", action="decline")
    _, few = _list(client)
    _requests(30, requester="bob-2")
    response, many = _list(client)
    assert many == few <= 8
    assert len(response.context["cl"].result_list) == 31
    declined, _ = _list(client, status__exact="declined")
    assert [r.pk for r in declined.context["cl"].result_list] == [first.pk]
    assert b"Add match request" not in response.content  # read-only


def test_staff_find_a_request_by_either_partys_exact_id_or_its_id_prefix(client, reviewer):
    client.force_login(reviewer)
    mine = _requests(2)
    _requests(1, requester="bob-2")
    by_requester, _ = _list(client, q="alice-1")
    assert {r.pk for r in by_requester.context["cl"].result_list} == {m.pk for m in mine}
    by_target, _ = _list(client, q="target-0")  # asked by alice and by bob
    assert len(by_target.context["cl"].result_list) == 2
    by_prefix, _ = _list(client, q=str(mine[0].pk)[:8])
    assert [r.pk for r in by_prefix.context["cl"].result_list] == [mine[0].pk]


def test_a_request_page_shows_its_events_and_nothing_can_be_edited(client, reviewer, settings):
    settings.USER_CORE_API_URL = "http://127.0.0.1:9"
    match_request = _requests(1)[0]
    client.force_login(reviewer)
    page = client.get(f"{LIST}{match_request.pk}/change/")
    assert page.status_code == 200
    assert b"snowbuddy.match.request.sent (Pending, 0 tries)" in page.content
    assert b'type="submit" value="Save"' not in page.content
    events = client.get("/admin/matching/userevent/", {"state__exact": "pending"})
    assert events.status_code == 200 and b"snowbuddy.match.request.sent" in events.content
    assert b'value="redeliver"' not in events.content  # a reviewer reads, an operator redelivers


def test_the_migration_gives_reviewers_view_and_operators_redeliver(db):
    Group.objects.filter(name__in=[REVIEWERS, OPERATORS]).delete()
    reviewers, operators = Group.objects.create(name=REVIEWERS), Group.objects.create(name=OPERATORS)
    importlib.import_module("matching.migrations.0011_match_requests_and_user_events").grant_groups(apps, None)
    codes = lambda group: set(group.permissions.values_list("codename", flat=True))  # noqa: E731
    assert codes(reviewers) == {"view_matchrequest", "view_userevent"}
    assert codes(operators) == {"view_matchrequest", "view_userevent", "redeliver_userevent"}
    assert not UserEvent.objects.exists()
