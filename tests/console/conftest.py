"""Fixtures for the staff console: staff in the two groups, searches in every state, and a stand-in
for the Durable API's staff routes (the far side of the network for these admin tests; the browser
test drives the real local durable stack)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from matching.models import Engine, Search, SearchEvent, SearchStatus
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.factories import SearchFactory, SearchResultFactory
from tests.helpers.http import FakeHandler, serve
from workflows.dispatch.routing import routing_forget

OPERATORS, REVIEWERS = "Match operators", "Match reviewers"


@pytest.fixture(autouse=True)
def _fresh_routing_and_no_dispatch(monkeypatch):
    routing_forget()
    stub_dispatch_send(monkeypatch)
    yield
    routing_forget()


def ensure_console_groups() -> None:
    """The groups the data migration creates (a transactional test's flush removes them)."""
    import importlib

    from django.apps import apps

    if Group.objects.filter(name__in=[OPERATORS, REVIEWERS]).count() < 2:
        importlib.import_module("workflows.migrations.0005_console_groups").create_groups(apps, None)


def _staff(django_user_model, name: str, group: str):
    ensure_console_groups()
    user = django_user_model.objects.create_user(name, password=f"x-{name}-pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def operator(db, django_user_model):
    return _staff(django_user_model, "olga-operator", OPERATORS)


@pytest.fixture
def reviewer(db, django_user_model):
    return _staff(django_user_model, "rita-reviewer", REVIEWERS)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


def make_search(
    *, status: str = SearchStatus.RUNNING, engine: str = Engine.CELERY, idle_seconds: float = 0, **fields
) -> Search:
    """A search placed where a scenario starts, with its submitted/current-status events."""
    now = timezone.now()
    search = SearchFactory(status=status, engine=engine, **fields)
    SearchEvent.objects.create(search=search, attempt=search.attempt, kind="submitted", to_status="pending")
    if status != SearchStatus.PENDING:
        SearchEvent.objects.create(
            search=search, attempt=search.attempt, kind=status, from_status="pending", to_status=status
        )
    finished = now if status in ("succeeded", "failed", "cancelled", "timed_out") else None
    Search.objects.filter(pk=search.pk).update(
        updated_at=now - timedelta(seconds=idle_seconds), finished_at=fields.get("finished_at", finished)
    )
    search.refresh_from_db()
    return search


def with_results(search: Search, n: int = 3) -> Search:
    for rank in range(1, n + 1):
        SearchResultFactory(
            search=search, attempt=search.attempt, rank=rank, user_id=f"u{rank:06d}", score=0.9 - rank / 10
        )
    Search.objects.filter(pk=search.pk).update(result_count=n)
    search.refresh_from_db()
    return search


class DurableApiStandIn:
    """The Durable API's staff routes over HTTP on 127.0.0.1, recording what the console sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.intervene_status = 200
        self.candidates: list[dict[str, Any]] = []
        fake = self

        class Handler(FakeHandler):
            def do_GET(self) -> None:
                match = re.match(r"^/workflows/matching/([^/?]+)", self.path)
                fake.calls.append(("GET", self.path, {}))
                ids = [c["user_id"] for c in fake.candidates]
                self.reply(200, {"search_id": match.group(1), "status": "awaiting_vetting",
                                  "pending_callback": {"name": "vetting", "candidate_ids": ids},
                                  "candidates": fake.candidates})  # fmt: skip

            def do_POST(self) -> None:
                body = self.read_json(empty={})
                fake.calls.append(("POST", self.path, body))
                if self.path.endswith("/intervene"):
                    if fake.intervene_status == 409:
                        self.reply(409, {"error": "already_answered", "message": "answered by provider"})
                    else:
                        self.reply(fake.intervene_status, {"accepted": True})
                    return
                self.reply(200, {"status": "cancelled", "execution_stop": "stopped"})

        self._server = serve(Handler)
        self.url = self._server.url

    def posts(self, suffix: str) -> list[tuple[str, dict]]:
        return [(path, body) for method, path, body in self.calls if method == "POST" and path.endswith(suffix)]

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def durable_api(settings) -> Iterator[DurableApiStandIn]:
    fake = DurableApiStandIn()
    settings.MATCHING_WORKFLOW_URL = fake.url
    settings.MATCHING_WORKFLOW_AUTH_MODE = "api_key"
    settings.MATCHING_WORKFLOW_API_KEY = "test-durable-key"
    settings.MATCHING_WORKFLOW_CALLBACK_URL = "http://127.0.0.1:9/webhooks/matching"
    yield fake
    fake.stop()


@pytest.fixture
def celery_only(settings):
    settings.MATCHING_WORKFLOW_URL = ""
    settings.MATCHING_WORKFLOW_CALLBACK_URL = ""
