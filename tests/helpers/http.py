"""The loopback HTTP fakes' one base: a quiet handler with JSON replies, and a threaded server on
127.0.0.1, port 0 (the system picks a free one), started at once and stopped by `stop()`.

A fake subclasses `FakeHandler` (its `do_GET`/`do_POST` read `self.fake`, the object that holds
the fake's state and scripts) and serves it with `serve(handler, fake)`, or with
`LoopbackHttpServer(handler, fake)` and a later `.start()`. `Recorded` is the request a fake keeps
when it records whole requests (`FakeHandler.record()`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeHandler(BaseHTTPRequestHandler):
    """Quiet (no access log on pytest's output); `self.fake` is the server's fake."""

    server: LoopbackHttpServer

    @property
    def fake(self) -> Any:
        return self.server.fake

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def read_json(self, empty: Any = None) -> Any:
        """The request's JSON body (`empty` when it has none)."""
        raw = self.read_body()
        return json.loads(raw) if raw else empty

    def record(self) -> Recorded:
        """The whole request (its body read)."""
        parts = urlsplit(self.path)
        return Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.read_body(),
        )

    def reply(
        self,
        status: int,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer `status` with `body`: JSON unless it is bytes; no body (and no Content-Type) for None.
        A client that already gave up (a stall, a timeout) is not the fake's concern."""
        if body is None:
            payload, content_type = b"", ""
        elif isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)
        except OSError:
            pass


class LoopbackHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], fake: Any = None, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), handler)
        self.fake = fake

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, poll_interval: float = 0.05) -> LoopbackHttpServer:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def serve(
    handler: type[BaseHTTPRequestHandler], fake: Any = None, *, host: str = "127.0.0.1", poll_interval: float = 0.05
) -> LoopbackHttpServer:
    """A started loopback server for `handler` and its `fake`; `stop()` it when done."""
    return LoopbackHttpServer(handler, fake, host).start(poll_interval)
