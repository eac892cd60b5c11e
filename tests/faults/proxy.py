"""An HTTP fault proxy on loopback: forwards to an upstream, or fails the way networks fail.

Modes (switchable while running): ``pass``; ``error`` (answers 503 without forwarding);
``drop_after_work`` (forwards, lets the upstream act, then closes the connection without an
answer); ``stall`` (forwards, then holds the answer ``stall_seconds`` before closing unanswered).
Counts every request it forwarded, by method and path.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter

import requests

from tests.helpers.http import FakeHandler, LoopbackHttpServer

MODES = ("pass", "error", "drop_after_work", "stall")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class FaultProxy:
    def __init__(self, upstream: str, *, stall_seconds: float = 5.0):
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.stall_seconds = stall_seconds
        self.forwarded: Counter[tuple[str, str]] = Counter()
        self.faults = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(FakeHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.read_body()
                mode = proxy.mode
                if mode == "error":
                    proxy._count_fault()
                    self.reply(503, b'{"error":"unavailable","message":"fault proxy"}')
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = requests.request(
                    self.command, proxy.upstream + self.path, data=body or None, headers=headers, timeout=30
                )
                with proxy._lock:
                    proxy.forwarded[(self.command, self.path.partition("?")[0])] += 1
                if mode in ("drop_after_work", "stall"):
                    proxy._count_fault()
                    if mode == "stall":
                        time.sleep(proxy.stall_seconds)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = LoopbackHttpServer(Handler)

    def _count_fault(self) -> None:
        with self._lock:
            self.faults += 1

    @property
    def url(self) -> str:
        return self.server.url

    def starts(self) -> int:
        return sum(n for (method, path), n in self.forwarded.items() if method == "POST" and path.endswith("/start"))

    def __enter__(self) -> FaultProxy:
        self.server.start(poll_interval=0.1)
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
