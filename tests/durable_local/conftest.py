"""Fixtures for the local durable stack: a fake console (the far side of the workflow's HTTP
calls), a Durable API client that signs like the console does, and the stack itself.

Runs without Django: ``.venv/bin/pytest -p no:django tests/durable_local``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devtools.durable_local.stack import LocalDurableStack, StackConfig
from tests.durable.conftest import console_ranking
from tests.helpers.http import FakeHandler, LoopbackHttpServer
from workflows.durable import signing


def profile(user_id: str, role: str = "buddy", skill: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "nickname": user_id,
        "skill_level": skill,
        "role": role,
        "resorts": [],
        "regions": [],
        "available_dates": [],
        "open_to_matching": True,
        "knowledge_score": None,
        "certifications": [],
        "languages": [],
        **extra,
    }


class FakeConsole:
    """The console's internal matches endpoint and callback webhook, verified like the real ones.

    The matches endpoint ranks `candidates[search_id]` for the seeker and preferences a test
    registered in `searches[search_id]` (the real console reads its own search row)."""

    def __init__(self, internal_token: str, webhook_secret: str) -> None:
        self.internal_token = internal_token
        self.webhook_secret = webhook_secret
        self.candidates: dict[str, list[dict[str, Any]]] = {}
        self.searches: dict[str, tuple[str, dict[str, Any]]] = {}
        self.unavailable: set[str] = set()  # search ids whose matches answer 503
        self.candidate_requests: dict[str, int] = {}
        self.webhooks: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        console = self

        class Handler(FakeHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                segments = parts.path.strip("/").split("/")
                if len(segments) != 4 or segments[:2] != ["internal", "searches"] or segments[3] != "matches":
                    self.reply(404, {"error": "not_found"})
                    return
                if self.headers.get("Authorization") != f"Bearer {console.internal_token}":
                    console.rejected.append("matches: bad token")
                    self.reply(401, {"error": "unauthorized"})
                    return
                search_id = segments[2]
                console.candidate_requests[search_id] = console.candidate_requests.get(search_id, 0) + 1
                if search_id in console.unavailable:
                    self.reply(503, {"error": "unavailable"})
                    return
                if search_id not in console.searches:
                    self.reply(404, {"detail": "Unknown search."})
                    return
                seeker_id, preferences = console.searches[search_id]
                self.reply(200, console_ranking(seeker_id, preferences, console.candidates.get(search_id, [])))

            def do_POST(self) -> None:
                if self.path != "/webhooks/matching":
                    self.reply(404, {"error": "not_found"})
                    return
                raw = self.read_body()
                try:
                    webhook_id = signing.verify(console.webhook_secret, dict(self.headers.items()), raw)
                except signing.WebhookVerificationError as exc:
                    console.rejected.append(f"webhook: {exc.reason}")
                    self.reply(401, {"error": exc.reason})
                    return
                with console._lock:
                    console.webhooks.append({"id": webhook_id, **json.loads(raw)})
                self.reply(200, {"ok": True})

        self.server = LoopbackHttpServer(Handler)

    @property
    def url(self) -> str:
        return self.server.url

    def webhooks_for(self, search_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [w for w in self.webhooks if w["search_id"] == search_id]

    def start(self) -> None:
        self.server.start(poll_interval=0.2)

    def stop(self) -> None:
        self.server.stop()


class DurableApiClient:
    """Calls the Durable API as the console does: SigV4 (service ``lambda``) or an API key."""

    def __init__(self, stack: LocalDurableStack) -> None:
        self.base = stack.durable_api_url
        config = stack.config
        self.credentials = Credentials(config.access_key_id, config.secret_access_key)
        self.region = config.region
        self.service = config.sigv4_service
        self.api_key = config.api_key
        self.api_key_header = config.api_key_header

    def signed(self, method: str, path: str, body: Any = None, **sign_overrides: Any) -> requests.Response:
        data = b"" if body is None else json.dumps(body).encode()
        request = AWSRequest(
            method=method, url=self.base + path, data=data, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(
            sign_overrides.get("credentials", self.credentials),
            sign_overrides.get("service", self.service),
            sign_overrides.get("region", self.region),
        ).add_auth(request)
        prepared = request.prepare()
        return requests.request(method, prepared.url, headers=dict(prepared.headers), data=data, timeout=30)

    def with_key(self, method: str, path: str, body: Any = None, key: str | None = None) -> requests.Response:
        return requests.request(
            method,
            self.base + path,
            json=body,
            headers={self.api_key_header: self.api_key if key is None else key},
            timeout=30,
        )

    def start(self, **payload: Any) -> requests.Response:
        return self.signed("POST", "/workflows/matching/start", payload)

    def status(self, search_id: str) -> dict[str, Any]:
        response = self.signed("GET", f"/workflows/matching/{search_id}")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> StackConfig:
    return StackConfig.for_tests(
        state_dir=tmp_path_factory.mktemp("durable"),
        globalcoach_mode="staff",
        globalcoach_delay_seconds=0.2,
        # Fast retries so a test sees a retried step within seconds, not minutes.
        workflow_env={
            "MATCHING_RETRY_INITIAL_DELAY_SECONDS": "1",
            "MATCHING_RETRY_MAX_DELAY_SECONDS": "2",
            "MATCHING_HTTP_TIMEOUT_SECONDS": "5",
        },
    )


@pytest.fixture(scope="session")
def fake_console(stack_config: StackConfig) -> Iterator[FakeConsole]:
    console = FakeConsole(stack_config.internal_token, stack_config.webhook_secret)
    console.start()
    yield console
    console.stop()


@pytest.fixture(scope="session")
def local_stack(stack_config: StackConfig, fake_console: FakeConsole) -> Iterator[LocalDurableStack]:
    stack = LocalDurableStack(replace(stack_config, console_base_url=fake_console.url))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def durable_api(local_stack: LocalDurableStack) -> DurableApiClient:
    return DurableApiClient(local_stack)
