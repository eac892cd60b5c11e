"""A local fake of SnowTrace's user, knowledge and resort services on 127.0.0.1, scriptable per test.

`/users` pages `users` by `limit` with the offset as an opaque cursor (and honours
`updated_since` when `changed_since` is set); `/users/{id}/skill-profile` answers from `scores`
(absent → 404); `/resorts` answers `resorts`. `script(path, *actions)` queues what the next
requests to exactly that path get: an int is an HTTP status, ("stall", seconds) answers late,
None answers normally.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.http import FakeHandler, LoopbackHttpServer, serve


class FakeSnowTrace:
    def __init__(self) -> None:
        self.users: list[Any] = []
        self.scores: dict[str, Any] = {}
        self.resorts: list[Any] = []
        self.changed_since: dict[str, str] = {}  # user id → ISO time it changed (for updated_since)
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.knowledge_delay = 0.0
        self.max_knowledge_in_flight = 0
        self._in_flight = 0
        self._scripts: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self._server: LoopbackHttpServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def script(self, path: str, *actions: Any) -> None:
        with self._lock:
            self._scripts[path].extend(actions)

    def user_requests(self) -> list[dict[str, list[str]]]:
        with self._lock:
            return [query for path, query in self.requests if path == "/users"]

    def knowledge_requests(self, user_id: str) -> int:
        with self._lock:
            return sum(1 for path, _ in self.requests if path == f"/users/{user_id}/skill-profile")

    def _next_action(self, path: str) -> Any:
        with self._lock:
            actions = self._scripts.get(path)
            return actions.pop(0) if actions else None

    def _answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/users":
            items = self.users
            since = query.get("updated_since", [None])[0]
            if since is not None:
                items = [u for u in items if self.changed_since.get(_uid(u), "") >= since]
            limit = int(query.get("limit", ["100"])[0])
            start = int(query.get("cursor", ["0"])[0])
            page = items[start : start + limit]
            more = start + limit < len(items)
            return 200, {"items": page, "next_cursor": str(start + limit) if more else None}
        if path.startswith("/users/") and path.endswith("/skill-profile"):
            user_id = unquote(path.split("/")[2])
            with self._lock:
                self._in_flight += 1
                self.max_knowledge_in_flight = max(self.max_knowledge_in_flight, self._in_flight)
            try:
                if self.knowledge_delay:
                    time.sleep(self.knowledge_delay)
            finally:
                with self._lock:
                    self._in_flight -= 1
            if user_id not in self.scores:
                return 404, {"detail": "no skill profile"}
            return 200, {"user_id": user_id, "overall_score": self.scores[user_id], "badges": []}
        if path == "/resorts":
            return 200, {"items": self.resorts}
        return 404, {"detail": "not found"}

    @contextmanager
    def running(self) -> Iterator[FakeSnowTrace]:
        self._server = serve(_Handler, self)
        try:
            yield self
        finally:
            self._server.stop()


class _Handler(FakeHandler):
    def do_GET(self) -> None:
        fake: FakeSnowTrace = self.fake
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        with fake._lock:
            fake.requests.append((parts.path, query))
        action = fake._next_action(parts.path)
        if isinstance(action, tuple) and action[0] == "stall":
            time.sleep(action[1])  # longer than the client's read timeout
            status, body = 200, {"items": []}
        elif isinstance(action, int):
            status, body = action, {"detail": "scripted failure"}
        else:
            status, body = fake._answer(parts.path, query)
        self.reply(status, body)  # a client that gave up on a stalled answer is not our concern


def _uid(record: Any) -> str:
    return str(record.get("user_id")) if isinstance(record, dict) else ""
