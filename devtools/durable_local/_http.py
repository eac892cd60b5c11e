"""Small shared pieces of the local HTTP servers: threaded server, JSON replies, readiness polls."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
# Lambda's own synchronous payload limit; a bigger body is refused before it is read.
MAX_BODY_BYTES = 6 * 1024 * 1024
HEALTH_PATH = "/__local/health"


class LocalHTTPServer(ThreadingHTTPServer):
    # Handler threads must not keep a stopping process alive.
    daemon_threads = True
    allow_reuse_address = True


class JsonRequestHandler(BaseHTTPRequestHandler):
    """Base handler: quiet logging through ``logging`` and JSON helpers."""

    server_version = "snowbuddy-local/1"

    def log_message(self, format: str, *args: Any) -> None:
        # Readiness probes would drown the logs.
        level = logging.DEBUG if self.path == HEALTH_PATH else logging.INFO
        logger.log(level, "%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes | None:
        """The request body, or None after answering 413/411 for a body we will not read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.send_json(411, {"Message": "Length Required"})
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_json(413, {"Message": "Request Entity Too Large"})
            return None
        return self.rfile.read(length) if length > 0 else b""

    def header_pairs(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    def send_bytes(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
    ) -> None:
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        self.send_response(status)
        sent = {name.lower() for name, _ in pairs}
        for name, value in pairs:
            self.send_header(name, value)
        if "content-length" not in sent:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        merged = {"Content-Type": "application/json"}
        merged.update(headers or {})
        self.send_bytes(status, json.dumps(payload).encode(), merged)


@dataclass
class ServerThread:
    """A server running on a background thread; ``stop()`` shuts it down and frees the port."""

    server: LocalHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_in_thread(server: LocalHTTPServer, name: str) -> ServerThread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
    thread.start()
    return ServerThread(server=server, thread=thread)


def free_port(host: str = LOCALHOST) -> int:
    """A port that was free a moment ago (tests use it; a fixed default is used otherwise)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Poll ``predicate`` until true; raise TimeoutError at the deadline.

    An exception from ``predicate`` counts as "not yet", except those in ``fatal``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except fatal:
            raise
        except Exception:  # a probe that errors just means "not yet"
            logger.debug("probe for %s failed", what, exc_info=True)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 2xx (used as a readiness probe)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) probes")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


class LocalLambdaContext:
    """The parts of the Lambda context object handlers read, for an in-process invocation."""

    def __init__(
        self,
        *,
        function_name: str,
        region: str,
        account_id: str,
        timeout_seconds: int = 900,
        memory_limit_in_mb: int = 1024,
    ) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.tenant_id = None
        self.client_context = None
        self.identity = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def import_handler(spec: str) -> Callable[..., Any]:
    """Resolve ``package.module:attribute`` (imported lazily so a server starts before its handler exists)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler spec must be module:attribute, got {spec!r}")
    import importlib

    module = importlib.import_module(module_name)
    handler = getattr(module, attribute)
    if not callable(handler):
        raise TypeError(f"{spec} is not callable")
    return handler


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
