"""Shared fixtures: users, API keys, resorts, and a real Celery worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
def _language_reset():
    """A test-client request in zh-Hant leaves that language active on the test's thread (the locale
    middleware activates it, nothing deactivates it): each test starts in the default language."""
    yield
    if settings.configured:
        from django.utils import translation

        translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters and the resort map live in the cache; tests must not share them.
    # (`make test` gives the cache its own Redis database: clearing it leaves the broker alone.)
    # (Plain-Python tests, e.g. the engine's under `-p no:django`, have no Django to reset.)
    if not settings.configured:
        yield
        return
    from workflows.dispatch.routing import routing_forget

    cache.clear()
    routing_forget()  # the routing switch's per-process memory
    yield
    cache.clear()
    routing_forget()


@pytest.fixture(autouse=True)
def _second_factor_off(request):
    """STAFF_REQUIRE_MFA is on by default; tests not about it (force_login of an operator, the browser
    test's password sign-in) run with it off. Tests marked `mfa` keep it on (tests/staff)."""
    if not settings.configured or request.node.get_closest_marker("mfa"):
        yield
        return
    request.getfixturevalue("settings").STAFF_REQUIRE_MFA = False
    yield


@pytest.fixture(autouse=True)
def _fresh_candidate_index(monkeypatch):
    # The warm candidate index lives as long as its process; each test starts from a cold one.
    if not settings.configured:
        yield
        return
    from matching.candidates.warm_index import candidate_index_reset

    # No host snapshot: a test's index may hold rows its transaction rolls back, which must not
    # reach another process (tests of the snapshots give theirs a directory of its own).
    monkeypatch.setattr(settings, "MATCHING_INDEX_SNAPSHOT", False)
    candidate_index_reset()
    yield
    candidate_index_reset()


@pytest.fixture(autouse=True)
def _dispatch_relay_fresh():
    """Dispatches are sent by a relay thread after commit; each test starts with it sending at once."""
    if settings.configured:
        from workflows.dispatch.submit import dispatch_relay

        dispatch_relay.forget_failures()
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Let the relay thread finish before any fixture tears down (the database flush among them):
    a send still writing its dispatch record would deadlock with the flush's TRUNCATE."""
    services = sys.modules.get("workflows.dispatch.submit")
    if services is not None:
        services.dispatch_relay.wait_idle(timeout=15)
        if nextitem is None:
            # The relay keeps its connection between bursts: the test database is dropped next.
            services.dispatch_relay.close_connection(timeout=15)


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
def no_dispatch(monkeypatch):
    """The relay's send stubbed as done (tests/helpers/dispatch.py): for tests about the API or the
    services, whose engine path has its own tests with a worker. Use it as
    `pytestmark = pytest.mark.usefixtures("no_dispatch")` or name it in a fixture's arguments."""
    from tests.helpers.dispatch import stub_dispatch_send

    stub_dispatch_send(monkeypatch)


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium under Playwright (tests/helpers/browser.py). Playwright's sync API keeps an
    event loop on this thread; the test's own ORM calls are still sync, hence DJANGO_ALLOW_ASYNC_UNSAFE."""
    from tests.helpers.browser import chromium

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium() as launched:
        yield launched


@pytest.fixture
def api_key(db) -> str:
    """SnowTrace's backend key: a trusted service, so it may name the user in X-User-Id."""
    from matching.services.keys import api_key_create

    return api_key_create(name="snowtrace-test", is_trusted_service=True)[1]


@pytest.fixture
def untrusted_api_key(db) -> str:
    """A key not flagged as a trusted service: it needs the user's bearer token."""
    from matching.services.keys import api_key_create

    return api_key_create(name="partner-test")[1]


JWT_TEST_SECRET = "test-jwt-secret-that-is-at-least-32-bytes-long"


@pytest.fixture
def jwt_secret(settings) -> str:
    """User tokens verify with this secret (and the default audience) during the test."""
    settings.JWT_SECRET_KEY = JWT_TEST_SECRET
    settings.JWT_FALLBACK_SECRET = ""
    settings.JWT_AUDIENCE = "user_core"
    settings.JWT_ISSUER = ""
    return JWT_TEST_SECRET


def user_token(
    sub: str, *, secret: str = JWT_TEST_SECRET, audience: str = "user_core", ttl: int | None = 300, **claims
) -> str:
    """A token as SnowTrace's user service signs it (HS256); `ttl=None` leaves out the expiry."""
    import jwt

    now = int(time.time())
    payload = {"sub": sub, "aud": audience, "iat": now, "exp": None if ttl is None else now + ttl, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


CONSOLE_ANSWERS = "application/json; version=2"  # the console's richer answers (docs/contracts.md)


class SnowTraceClient:
    """Speaks to the REST API as a trusted SnowTrace service does, for one acting user. It asks for
    the console's answers (API version 2); tests/compat speaks as SnowTrace's original client."""

    def __init__(self, client, key: str, user_id: str, accept: str = CONSOLE_ANSWERS):
        self.client, self.key, self.user_id, self.accept = client, key, user_id, accept

    def _headers(self, extra=None):
        return {"X-API-Key": self.key, "X-User-Id": self.user_id, "Accept": self.accept, **(extra or {})}

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


@pytest.fixture(scope="session")
def notification_receiver():
    """SnowTrace's notification endpoint on loopback (tests/helpers/webhook_receiver.py)."""
    from tests.helpers.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def notifications_to(settings, notification_receiver):
    """Notifications on, to the loopback receiver, with quick backoffs; the receiver starts empty."""
    from tests.helpers.webhook_receiver import NOTIFICATION_SECRET

    settings.MATCHING_NOTIFICATION_WEBHOOK_URL = notification_receiver.url
    settings.MATCHING_NOTIFICATION_WEBHOOK_SECRET = NOTIFICATION_SECRET
    settings.MATCHING_NOTIFICATION_TIMEOUT_SECONDS = 1
    notification_receiver.reset()
    return notification_receiver


@pytest.fixture(scope="session")
def user_core_receiver():
    """SnowTrace's user service taking behaviour events (`POST <root>/events`) on loopback."""
    from tests.helpers.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver(secret=None, id_header="Idempotency-Key")
    yield receiver
    receiver.stop()


@pytest.fixture
def user_events_to(settings, user_core_receiver):
    """Match-request events on, to the loopback user service, with 1 s tries; it starts empty."""
    settings.USER_CORE_API_URL = user_core_receiver.base_url
    settings.USER_CORE_EVENT_TIMEOUT_SECONDS = 1
    user_core_receiver.reset()
    return user_core_receiver


# --- The simulated GlobalCoach (devtools/durable_local/globalcoach.py), on loopback ----------


@pytest.fixture(scope="session")
def globalcoach_server():
    from devtools.durable_local.globalcoach import ProviderConfig, start_in_thread

    server = start_in_thread(ProviderConfig(mode="staff", delay_seconds=0.2))
    yield server
    server.stop()


@pytest.fixture
def globalcoach(globalcoach_server, settings):
    """GlobalCoach for this test: answers as `set_mode` says (staff: never), forgets old requests."""
    from devtools.durable_local.globalcoach import ProviderConfig

    provider = globalcoach_server.server

    def set_mode(mode: str = "staff", delay_seconds: float = 0.2, fraction: float = 0.5) -> None:
        provider.config = ProviderConfig(mode=mode, delay_seconds=delay_seconds, fraction=fraction)

    with provider.lock:
        provider.requests.clear()
        provider.by_idempotency_key.clear()
    set_mode()
    settings.MATCHING_VETTING_URL = globalcoach_server.url
    settings.MATCHING_VETTING_CALLBACK_BASE_URL = settings.MATCHING_VETTING_CALLBACK_BASE_URL or "http://127.0.0.1:9"
    provider.set_mode = set_mode
    return provider


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
    from tests.helpers.processes import stop_process

    stop_process(proc, grace=20)


@pytest.fixture(scope="session")
def worker_env(
    django_db_setup,
    django_db_blocker,
    notification_receiver,
    user_core_receiver,
    globalcoach_server,
    live_server,
    tmp_path_factory,
) -> dict[str, str]:
    """The environment of a worker on the test database and the test Redis (flushed once)."""
    from django.conf import settings
    from django.db import connection

    from tests.helpers.webhook_receiver import NOTIFICATION_SECRET

    if not settings.REDIS_URL:
        pytest.fail("worker tests need Redis: run them through `make test` (REDIS_URL=redis://…)")
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    return {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "DATABASE_CONN_MAX_AGE": "0",
        "MATCHING_NOTIFICATION_WEBHOOK_URL": notification_receiver.url,
        "MATCHING_NOTIFICATION_WEBHOOK_SECRET": NOTIFICATION_SECRET,
        "MATCHING_WORKFLOW_URL": "",
        # Match-request events to the loopback user service: 1 s tries, backoff 1 s, 2 s, 4 s, ...
        "USER_CORE_API_URL": user_core_receiver.base_url,
        "USER_CORE_EVENT_TIMEOUT_SECONDS": "1",
        "USER_CORE_EVENT_BACKOFF_SECONDS": "1",
        # Vetting on the Celery engine: the simulated GlobalCoach calls back the live console.
        "MATCHING_VETTING_URL": globalcoach_server.url,
        "MATCHING_VETTING_CALLBACK_BASE_URL": live_server.url,
        # Tests change profiles between searches within milliseconds: check for changes every search.
        "MATCHING_INDEX_STALENESS_MS": "0",
        # The worker's processes share a host snapshot of their own (not the worktree's var/).
        "MATCHING_INDEX_SNAPSHOT_DIR": str(tmp_path_factory.mktemp("profile-index")),
    }


@pytest.fixture(scope="session")
def celery_worker_process(worker_env, tmp_path_factory):
    """A worker in its own process, on the test database and the real broker."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_celery_worker(log_path, worker_env)
    yield proc, log_path
    stop_celery_worker(proc)
