"""The simulated GlobalCoach: accepts a vetting request, then calls back (or, for staff, never)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.durable_local import globalcoach
from devtools.durable_local._http import ServerThread
from tests.helpers.http import FakeHandler, serve
from tests.helpers.polling import wait_for


class CallbackReceiver:
    """Where GlobalCoach posts its answers (the Durable API's vetting-callback, in the stack)."""

    def __init__(self, status: int = 202) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = status
        receiver = self

        class Handler(FakeHandler):
            def do_POST(self) -> None:
                receiver.received.append(json.loads(self.read_body()))
                self.reply(receiver.status)

        self.server = serve(Handler, poll_interval=0.1)

    @property
    def url(self) -> str:
        return f"{self.server.url}/workflows/matching/vetting-callback"

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    callback = CallbackReceiver()
    yield callback
    callback.close()


def _provider(**config: Any) -> ServerThread:
    return globalcoach.start_in_thread(globalcoach.ProviderConfig(**{"delay_seconds": 0.05, **config}))


@pytest.fixture
def provider_factory() -> Iterator[Any]:
    started: list[ServerThread] = []

    def make(**config: Any) -> ServerThread:
        running = _provider(**config)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def _request(provider: ServerThread, receiver: CallbackReceiver, ids: list[str], **headers: str) -> requests.Response:
    return requests.post(
        f"{provider.url}/vetting-requests",
        json={"candidate_ids": ids, "callback_url": receiver.url, "token": "search-1.secret"},
        headers=headers,
        timeout=5,
    )


@pytest.mark.parametrize(
    ("config", "approved", "rejected"),
    [
        ({"mode": "approve_all"}, ["a", "b", "c", "d"], []),
        ({"mode": "reject_all"}, [], ["a", "b", "c", "d"]),
        ({"mode": "approve_fraction", "fraction": 0.5}, ["a", "b"], ["c", "d"]),
        ({"mode": "approve_fraction", "fraction": 0.75}, ["a", "b", "c"], ["d"]),
    ],
    ids=["approve-all", "reject-all", "top-half", "top-three-quarters"],
)
def test_the_provider_calls_back_with_its_decision_and_the_token(
    provider_factory: Any, receiver: CallbackReceiver, config: dict[str, Any], approved: list[str], rejected: list[str]
) -> None:
    provider = provider_factory(**config)

    response = _request(provider, receiver, ["a", "b", "c", "d"])

    assert response.status_code == 202
    answers = wait_for(lambda: receiver.received, timeout=5, message="the vetting callback")
    assert answers == [{"token": "search-1.secret", "approved_user_ids": approved, "rejected_user_ids": rejected}]


def test_in_staff_mode_the_provider_never_answers(provider_factory: Any, receiver: CallbackReceiver) -> None:
    provider = provider_factory(mode="staff")

    assert _request(provider, receiver, ["a"]).json()["state"] == "waiting_for_staff"

    # A provider that answers does so after its delay; this one lets ten times that pass without a call.
    quiet_until = time.monotonic() + 0.5
    wait_for(lambda: receiver.received or time.monotonic() > quiet_until, timeout=5, message="the quiet period")
    assert receiver.received == []
    listed = requests.get(f"{provider.url}/vetting-requests", timeout=5).json()["vetting_requests"]
    assert [r["state"] for r in listed] == ["waiting_for_staff"]
    assert "token" not in listed[0]


def test_a_repeated_request_with_the_same_idempotency_key_is_answered_once(
    provider_factory: Any, receiver: CallbackReceiver
) -> None:
    provider = provider_factory(mode="approve_all", delay_seconds=0.2)

    first = _request(provider, receiver, ["a"], **{"Idempotency-Key": "exec-1-vetting"})
    second = _request(provider, receiver, ["a"], **{"Idempotency-Key": "exec-1-vetting"})

    assert first.json()["request_id"] == second.json()["request_id"]
    wait_for(lambda: receiver.received, timeout=5, message="the vetting callback")
    # A second answer would come one delay after the first: watch for twice that long.
    watch_until = time.monotonic() + 0.4
    wait_for(lambda: len(receiver.received) > 1 or time.monotonic() > watch_until, timeout=5, message="a repeat")
    assert len(receiver.received) == 1


def test_a_malformed_request_is_refused(provider_factory: Any, receiver: CallbackReceiver) -> None:
    provider = provider_factory()
    url = f"{provider.url}/vetting-requests"
    for body in (
        {"candidate_ids": [], "callback_url": receiver.url, "token": "t"},
        {"candidate_ids": ["a"], "callback_url": "ftp://x", "token": "t"},
        {"candidate_ids": ["a"], "callback_url": receiver.url},
        {"candidate_ids": [1], "callback_url": receiver.url, "token": "t"},
    ):
        assert requests.post(url, json=body, timeout=5).status_code == 400, body
    assert requests.post(url, data=b"not json", timeout=5).status_code == 400


def test_an_api_key_is_required_when_configured(provider_factory: Any, receiver: CallbackReceiver) -> None:
    provider = provider_factory(api_key="coach-key")
    assert _request(provider, receiver, ["a"]).status_code == 401
    assert _request(provider, receiver, ["a"], Authorization="Bearer wrong").status_code == 401
    assert _request(provider, receiver, ["a"], Authorization="Bearer coach-key").status_code == 202


def test_the_mode_can_be_changed_while_running(provider_factory: Any, receiver: CallbackReceiver) -> None:
    provider = provider_factory(mode="staff")

    changed = requests.put(f"{provider.url}/__control/config", json={"mode": "reject_all"}, timeout=5)
    bad = requests.put(f"{provider.url}/__control/config", json={"mode": "maybe"}, timeout=5)

    assert changed.json()["mode"] == "reject_all"
    assert bad.status_code == 400
    _request(provider, receiver, ["a"])
    answers = wait_for(lambda: receiver.received, timeout=5, message="the vetting callback")
    assert answers[0]["rejected_user_ids"] == ["a"]


def test_a_failing_callback_is_retried(provider_factory: Any) -> None:
    flaky = CallbackReceiver(status=503)
    try:
        provider = provider_factory(mode="approve_all")
        _request(provider, flaky, ["a"])
        wait_for(lambda: len(flaky.received) >= 1, timeout=5, message="the first callback")
        flaky.status = 202
        wait_for(lambda: len(flaky.received) >= 2, timeout=8, message="the retried callback")
    finally:
        flaky.close()
