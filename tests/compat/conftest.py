"""SnowTrace's original client against a running console: pytest-django's live server (a real
HTTP server on loopback, on the test database) and a real Celery worker process."""

from __future__ import annotations

import functools
import subprocess
import sys
import uuid
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from django.db import connection

from devtools.durable_local._http import free_port
from matching.management.demo_profiles import demo_profiles
from matching.models import ACTIVE_STATUSES, NotificationState, Search, SearchNotification, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.conftest import JWT_TEST_SECRET, user_token
from tests.helpers.http import serve
from tests.helpers.polling import port_answers, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SNOWTRACE_USER = str(uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"))


class OldClient:
    """Calls the console the way SnowTrace's backend called the old service: JSON over HTTP, its API
    key, the user's bearer token, no API version."""

    def __init__(self, base_url: str, api_key: str | None, token: str | None, headers: dict | None = None) -> None:
        self.base_url, self.api_key, self.token, self.extra = base_url, api_key, token, headers or {}

    def headers(self, **more) -> dict:
        headers = {"Accept": "application/json", **self.extra}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **more}

    def post(self, path: str, body=None, **headers) -> requests.Response:
        return requests.post(self.base_url + path, json=body, headers=self.headers(**headers), timeout=10)

    def get(self, path: str, **headers) -> requests.Response:
        return requests.get(self.base_url + path, headers=self.headers(**headers), timeout=10)

    def search(self, body: dict) -> str:
        response = self.post("/matching/searches", body)
        assert response.status_code == 202, response.text
        assert response.json().keys() == {"search_id"}
        return response.json()["search_id"]

    def completed(self, search_id: str, timeout: float = 30) -> dict:
        """Poll as the old client did until the search is `completed`."""

        def answer():
            body = self.get(f"/matching/searches/{search_id}").json()
            return body if body["status"] == "completed" else None

        return wait_for(answer, timeout=timeout, message=f"search {search_id} to complete")


def _worker_idle() -> bool:
    """No search the worker may still run, and no notification it has yet to try first."""
    connection.close()
    running = Search.objects.filter(status__in=ACTIVE_STATUSES).exclude(status="awaiting_vetting").exists()
    untried = SearchNotification.objects.filter(state=NotificationState.PENDING, tries=0).exists()
    return not running and not untried


@pytest.fixture
def console(live_server, celery_worker_process, resorts, jwt_secret, settings):
    """The live console's base URL, with SnowTrace's token secret configured. At the end the test
    waits for the worker to be idle, so emptying the tables does not race its writes."""
    settings.MATCHING_WORKFLOW_URL = ""
    yield live_server.url
    wait_for(_worker_idle, timeout=60, message="the worker to finish this test's searches")


@pytest.fixture
def profiles(resorts):
    regions = resort_regions()
    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**p)) for p in demo_profiles(600, regions, seed=11))
    return regions


@pytest.fixture
def snowtrace(console, api_key) -> OldClient:
    """SnowTrace's backend: its API key and the signed-in user's token."""
    return OldClient(console, api_key, user_token(SNOWTRACE_USER))


def stored_search(search_id: str) -> Search:
    connection.close()  # read what the server and the worker committed
    return Search.objects.get(pk=search_id)


# --- The console under gunicorn, as SnowTrace's callers reach it in production --------------------


class GunicornConsole:
    """gunicorn serving the console on loopback, on the test database, the test Redis (broker and
    cache: the tests' cache reset clears its throttle counters too) and the real worker's queue."""

    def __init__(self, base_url: str, log_path, proc) -> None:
        self.base_url, self.log_path, self.proc = base_url, log_path, proc


def start_gunicorn(env: dict[str, str], var_dir: Path) -> GunicornConsole:
    root = Path(__file__).resolve().parents[2]
    port = free_port()
    log_path = var_dir / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"],
            cwd=root, env={**env, "SNOWBUDDY_VAR_DIR": str(var_dir), "LOG_LEVEL": "WARNING"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    wait_for(lambda: proc.poll() is not None or port_answers(port), timeout=30, message="gunicorn to listen")
    assert proc.poll() is None, log_path.read_text()[-3000:]
    return GunicornConsole(f"http://127.0.0.1:{port}", log_path, proc)


def stop_gunicorn(console: GunicornConsole) -> None:
    console.proc.terminate()
    console.proc.wait(timeout=20)
    log = console.log_path.read_text()
    assert "Traceback" not in log, log[-5000:]  # no request raised in the server


@pytest.fixture(scope="session")
def gunicorn_consoles(worker_env, celery_worker_process, tmp_path_factory):
    """gunicorn consoles by key rule: `require_key=True` is the default deployment (SnowTrace's
    backend with its key), `False` the one browsers reach with a user token alone. Started on first
    use, each with the real worker behind it; `cors_origin` is the browser page's origin."""
    started: dict[tuple[bool, str], GunicornConsole] = {}

    def get(*, require_key: bool, cors_origin: str = "") -> GunicornConsole:
        if (require_key, cors_origin) not in started:
            env = {
                **worker_env,
                "JWT_SECRET_KEY": JWT_TEST_SECRET,
                "JWT_FALLBACK_SECRET": "",
                "JWT_AUDIENCE": "user_core",
                "JWT_ISSUER": "",
                "MATCHING_REQUIRE_API_KEY": "true" if require_key else "false",
                "CORS_ALLOWED_ORIGINS": cors_origin,
            }
            started[(require_key, cors_origin)] = start_gunicorn(env, tmp_path_factory.mktemp("gunicorn"))
        return started[(require_key, cors_origin)]

    yield get
    for console in started.values():
        stop_gunicorn(console)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def page_origins():
    """Two loopback origins serving the SnowTrace stand-in page (tests/compat/snowtrace_page/): the
    first is the browser app's (the keyless console allows it in CORS_ALLOWED_ORIGINS), the
    second one no console allows."""
    page = Path(__file__).resolve().parent / "snowtrace_page"
    servers = [serve(functools.partial(_QuietHandler, directory=page)) for _ in range(2)]
    yield [server.url for server in servers]
    for server in servers:
        server.stop()


@pytest.fixture
def served(gunicorn_consoles, page_origins, resorts):
    """A function giving a gunicorn console's base URL: the default deployment (the key required),
    or, with `require_key=False`, the one browsers reach (a user token alone, CORS for the page's
    origin). The test waits for the worker at the end."""

    def base_url(*, require_key: bool = True) -> str:
        cors_origin = "" if require_key else page_origins[0]
        return gunicorn_consoles(require_key=require_key, cors_origin=cors_origin).base_url

    yield base_url
    wait_for(_worker_idle, timeout=60, message="the worker to finish this test's searches")
