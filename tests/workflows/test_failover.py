"""Durable API failover: a circuit breaker shared through the cache, new searches on Celery while it
is open (with the reason for staff), and an ambiguous start resolved by name before any new one.

The Durable API is the far side of the network: a small fake that keeps one item per search and
counts executions, behind the fault proxy of the fault suite."""

from __future__ import annotations

import re

import pytest

from matching.models import Engine, Search, SearchEvent, SearchStatus
from tests.faults.proxy import FaultProxy
from tests.helpers.http import FakeHandler, serve
from tests.helpers.polling import wait_for
from workflows.celery_engine.recovery import durable_api_probe
from workflows.dispatch.submit import dispatch_relay, dispatch_send
from workflows.durable_console import breaker as breaker_module
from workflows.durable_console.breaker import CircuitBreaker, durable_breaker
from workflows.durable_console.client import DurableApiCircuitOpen, DurableApiClient, DurableApiUnavailable
from workflows.models import SearchDispatch

pytestmark = pytest.mark.django_db(transaction=True)

BUDDY = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 8}
VETTED = {"role": "coach", "skill_level_min": 6, "skill_level_max": 10, "vetting_required": True}


class FakeDurableApi:
    """Start is idempotent per (search_id, attempt), as the real one; `refuse` answers every start 400."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.executions: dict[tuple[str, int], int] = {}
        self.refuse = False
        api = self

        class Handler(FakeHandler):
            def do_POST(self) -> None:
                body = self.read_json(empty={})
                if self.path != "/workflows/matching/start":
                    self.reply(404, {"error": "not_found", "message": "no such route"})
                elif api.refuse:
                    self.reply(400, {"error": "bad_request", "message": "preferences: unknown resort"})
                else:
                    key = (body["search_id"], body["attempt"])
                    created = key not in api.executions
                    if created:
                        api.executions[key] = 1
                        api.items[body["search_id"]] = {
                            "search_id": body["search_id"],
                            "attempt": body["attempt"],
                            "status": "dispatched",
                            "execution_name": f"{body['search_id']}-a{body['attempt']}",
                        }
                    self.reply(202 if created else 200, {**api.items[body["search_id"]], "created": created})

            def do_GET(self) -> None:
                match = re.fullmatch(r"/workflows/matching/([^/?]+)", self.path.partition("?")[0])
                item = api.items.get(match[1]) if match else None
                self.reply(200, item) if item else self.reply(404, {"error": "not_found", "message": "no such"})

        self.server = serve(Handler, poll_interval=0.1)

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def durable_api():
    api = FakeDurableApi()
    yield api
    api.close()


@pytest.fixture
def proxy(durable_api, settings):
    with FaultProxy(durable_api.url, stall_seconds=4) as fault_proxy:
        settings.MATCHING_WORKFLOW_URL = fault_proxy.url
        settings.MATCHING_WORKFLOW_AUTH_MODE = "api_key"
        settings.MATCHING_WORKFLOW_API_KEY = "k"
        settings.MATCHING_WORKFLOW_CALLBACK_URL = "http://127.0.0.1:8000/webhooks/matching"
        settings.MATCHING_DURABLE_BREAKER_FAILURES = 3
        settings.MATCHING_DURABLE_BREAKER_OPEN_SECONDS = 30
        yield fault_proxy


def client() -> DurableApiClient:
    return DurableApiClient.from_settings(quick=True)


def test_consecutive_failures_open_the_circuit_and_then_no_request_is_made(proxy):
    proxy.mode = "error"
    for _ in range(3):
        with pytest.raises(DurableApiUnavailable):
            client().get("s-1")
    with pytest.raises(DurableApiCircuitOpen):
        client().get("s-1")
    assert proxy.faults == 3  # the fourth call never left the console
    assert durable_breaker().state().state == "open"


def test_an_answer_below_500_resets_the_count(proxy):
    proxy.mode = "error"
    for _ in range(2):
        with pytest.raises(DurableApiUnavailable):
            client().get("s-1")
    proxy.mode = "pass"
    assert client().find_started("never-started", 1) is None  # a 404 is an answer
    assert durable_breaker().state().failures == 0


def test_a_half_open_circuit_closes_on_the_probe_once_the_api_answers(proxy, settings):
    settings.MATCHING_DURABLE_BREAKER_OPEN_SECONDS = 1
    proxy.mode = "error"
    for _ in range(3):
        with pytest.raises(DurableApiUnavailable):
            client().get("s-1")
    wait_for(lambda: durable_breaker().state().state == "half_open", timeout=5, message="the open period to end")
    assert durable_api_probe().startswith("still failing")  # a failed probe opens it again
    assert durable_breaker().state().state == "open"

    proxy.mode = "pass"
    wait_for(lambda: durable_breaker().state().state == "half_open", timeout=5, message="the next open period")
    assert durable_api_probe() == "closed"


def test_every_process_sees_the_circuit_and_a_cache_outage_keeps_a_local_one(proxy, monkeypatch):
    proxy.mode = "error"
    for _ in range(3):
        with pytest.raises(DurableApiUnavailable):
            client().get("s-1")
    another_process = CircuitBreaker("durable-api", failure_threshold=3, open_seconds=30)
    assert another_process.state().state == "open"

    class DownCache:
        def __getattr__(self, name):
            raise ConnectionError("cache unreachable")

    monkeypatch.setattr(breaker_module, "cache", DownCache())
    local = CircuitBreaker("local-only", failure_threshold=2, open_seconds=30)
    local.record_failure("boom")
    local.record_failure("boom")
    assert local.state().state == "open" and not local.allow_request()


def test_while_the_circuit_is_open_new_searches_run_on_celery_and_staff_see_why(owner, resorts, proxy, monkeypatch):
    monkeypatch.setattr("workflows.dispatch.submit.current_app.send_task", lambda *a, **k: type("T", (), {"id": "t"})())
    proxy.mode = "error"
    first = [owner.post("/matching/searches", BUDDY).json() for _ in range(3)]
    assert {s["engine"] for s in first} == {"durable"}
    dispatch_relay.forget_failures()
    for answer in first:  # the quick tries and then the sweeper's, until the circuit opens
        dispatch_send(dispatch_id=SearchDispatch.objects.get(search_id=answer["search_id"]).pk)
    assert dispatch_relay.wait_idle()
    assert durable_breaker().state().state == "open"

    failed_over = owner.post("/matching/searches", BUDDY).json()
    vetted = owner.post("/matching/searches", VETTED).json()

    assert failed_over["engine"] == vetted["engine"] == Engine.CELERY  # the Celery engine vets too
    for answer in (failed_over, vetted):
        event = SearchEvent.objects.get(search_id=answer["search_id"], kind="failed_over")
        assert "Durable API circuit open since" in event.detail and "HTTP 503" in event.detail


@pytest.mark.parametrize("fault", ["drop_after_work", "stall"])
def test_an_ambiguous_start_is_looked_up_by_name_and_never_started_twice(
    owner, resorts, proxy, durable_api, fault, settings
):
    settings.MATCHING_DISPATCH_RELAY = "inline"
    proxy.mode = fault
    search_id = owner.post("/matching/searches", BUDDY).json()["search_id"]
    dispatch = SearchDispatch.objects.get(search_id=search_id)
    assert dispatch.sent_at is None and dispatch.start_uncertain  # it may have run: it did
    assert durable_api.executions == {(search_id, 1): 1}

    proxy.mode = "pass"
    assert dispatch_send(dispatch_id=dispatch.pk)

    assert proxy.starts() == 1  # asked by name, not started again
    assert durable_api.executions == {(search_id, 1): 1}
    assert Search.objects.get(pk=search_id).status == SearchStatus.DISPATCHED
    assert SearchEvent.objects.filter(search_id=search_id, kind="start_resolved").exists()


def test_a_start_that_never_reached_the_api_is_simply_sent_again(owner, resorts, proxy, durable_api, settings):
    settings.MATCHING_DISPATCH_RELAY = "inline"
    settings.MATCHING_WORKFLOW_URL = "http://127.0.0.1:9"  # refused: nothing was sent
    search_id = owner.post("/matching/searches", BUDDY).json()["search_id"]
    dispatch = SearchDispatch.objects.get(search_id=search_id)
    assert not dispatch.start_uncertain

    settings.MATCHING_WORKFLOW_URL = proxy.url
    assert dispatch_send(dispatch_id=dispatch.pk)
    assert proxy.forwarded.get(("GET", f"/workflows/matching/{search_id}"), 0) == 0
    assert durable_api.executions == {(search_id, 1): 1}


def test_a_start_the_durable_api_refuses_fails_the_search_with_its_reason(owner, resorts, proxy, durable_api, settings):
    settings.MATCHING_DISPATCH_RELAY = "inline"
    durable_api.refuse = True
    search_id = owner.post("/matching/searches", BUDDY).json()["search_id"]

    search = Search.objects.get(pk=search_id)
    assert search.status == SearchStatus.FAILED
    assert "the durable engine refused the search" in search.error and "unknown resort" in search.error
    assert SearchDispatch.objects.get(search_id=search_id).sent_at is not None  # never re-sent
