"""Shared fixtures: users, API keys, resorts, and a real Celery worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _cache_apart_from_the_broker():
    if settings.configured and settings.REDIS_URL and settings.REDIS_CACHE_URL == settings.REDIS_URL:
        pytest.exit("REDIS_CACHE_URL must name another Redis database than REDIS_URL (make test sets both)", 2)


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters and the resort map live in the cache; tests must not share them.
    # (`make test` gives the cache its own Redis database: clearing it leaves the broker alone.)
    # (Plain-Python tests, e.g. the engine's under `-p no:django`, have no Django to reset.)
    if not settings.configured:
        yield
        return
    from workflows.routing import routing_forget

    cache.clear()
    routing_forget()  # the routing switch's per-process memory
    yield
    cache.clear()
    routing_forget()


@pytest.fixture(autouse=True)
def _no_server_errors(request):
    """Fail any test during which a request raised an unhandled exception (a 500)."""
    if not settings.configured or request.node.get_closest_marker("allow_server_error"):
        yield
        return
    from django.core.signals import got_request_exception

    raised: list = []

    def record(sender, request=None, **kwargs):
        raised.append(getattr(request, "path", "?"))

    got_request_exception.connect(record, weak=False)
    yield
    got_request_exception.disconnect(record)
    assert not raised, f"requests raised unhandled exceptions (500s): {raised}"


@pytest.fixture
def resorts(db):
    call_command("loaddata", "resorts", verbosity=0)


@pytest.fixture
def api_key(db) -> str:
    from matching.services import api_key_create

    return api_key_create(name="snowtrace-test")[1]


class SnowTraceClient:
    """Speaks to the REST API as SnowTrace's backend does, for one acting user."""

    def __init__(self, client, key: str, user_id: str):
        self.client, self.key, self.user_id = client, key, user_id

    def _headers(self, extra=None):
        return {"X-API-Key": self.key, "X-User-Id": self.user_id, **(extra or {})}

    def post(self, path, data=None, *, raw: bytes | str | None = None, headers=None):
        body = raw if raw is not None else json.dumps(data)
        return self.client.post(path, data=body, content_type="application/json", headers=self._headers(headers))

    def get(self, path, params=None, *, headers=None):
        return self.client.get(path, params or {}, headers=self._headers(headers))


@pytest.fixture
def owner(client, api_key) -> SnowTraceClient:
    return SnowTraceClient(client, api_key, "owner-1")


@pytest.fixture
def another_user(client, api_key) -> SnowTraceClient:
    return SnowTraceClient(client, api_key, "other-2")


@pytest.fixture
def staff_reviewer(django_user_model):
    return django_user_model.objects.create_user("reviewer", password="x-reviewer-pw", is_staff=True)


@pytest.fixture
def staff_operator(django_user_model):
    return django_user_model.objects.create_user("operator", password="x-operator-pw", is_staff=True)


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("outsider", password="x-outsider-pw")


# --- A local receiver for outgoing notifications (the far side of the network) -------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def notification_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/notify", _Receiver.received
    server.shutdown()


# --- A real Celery worker ---------------------------------------------------------------------


def _database_url(settings_dict: dict) -> str:
    if "postgresql" not in settings_dict["ENGINE"]:
        pytest.fail("worker tests need PostgreSQL: run them through `make test` (DATABASE_URL=postgres://…)")
    user = settings_dict.get("USER") or ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


def start_celery_worker(
    log_path: Path, env: dict[str, str], *, queues: str = "celery", pool: str = "solo"
) -> subprocess.Popen:
    """A worker in its own process group, started and ready, logging to `log_path`."""
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--pool", pool, "--concurrency", "1",
         "-l", "info", "-Q", queues, "-n", f"test-{os.getpid()}-{log_path.stem}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def stop_celery_worker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker, notification_receiver) -> dict[str, str]:
    """The environment of a worker on the test database and the test Redis (flushed once)."""
    from django.conf import settings
    from django.db import connection

    if not settings.REDIS_URL:
        pytest.fail("worker tests need Redis: run them through `make test` (REDIS_URL=redis://…)")
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    return {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "DATABASE_CONN_MAX_AGE": "0",
        "MATCHING_NOTIFICATION_WEBHOOK_URL": notification_receiver[0],
        "MATCHING_WORKFLOW_URL": "",
    }


@pytest.fixture(scope="session")
def celery_worker_process(worker_env, tmp_path_factory):
    """A worker in its own process, on the test database and the real broker."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_celery_worker(log_path, worker_env)
    yield proc, log_path
    stop_celery_worker(proc)
