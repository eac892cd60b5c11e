"""What the benches in bench/ share (dev only): child processes, bounded waits, a throwaway PostgreSQL
database, one search submitted over HTTP and polled to its end, percentiles.

Every wait is bounded and ends the bench with a `SystemExit` naming what did not happen.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
FAILED_STATUSES = ("failed", "cancelled", "timed_out")


def spawn(stack: ExitStack, cmd: list[str], env: dict, log: Path, *, new_session: bool = False) -> subprocess.Popen:
    """Start `cmd` in the repository with its output in `log`; `stack` terminates it (then kills it)."""
    handle = log.open("w")
    proc = subprocess.Popen(  # noqa: S603 - argv built by the bench, no shell
        cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=new_session
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        handle.close()

    stack.callback(stop)
    return proc


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


def is_healthy(base_url: str) -> bool:
    import requests

    try:
        return requests.get(f"{base_url}/health", timeout=5).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # not up yet, or a loaded machine answering late
        return False


def wait_healthy(base_url: str, timeout: float = 60, what: str | None = None) -> None:
    wait_until(lambda: is_healthy(base_url), timeout, what or f"{base_url} answering /health", interval=0.2)


def _close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()


@contextmanager
def throwaway_database(url: str, suffix: str, *, reuse: bool = False) -> Iterator[tuple[str, str]]:
    """(URL, name) of `<database in url>{suffix}`, created empty and dropped at the end.

    With `reuse`, the database named in the URL itself instead: created when missing and kept at the
    end, so a million profiles seeded once serve later runs (search_path_bench inserts only missing ones).
    """
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server (postgres://user@host:port/db)")
    import psycopg

    # The maintenance database: the one named in the URL need not exist.
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    if reuse:
        name = parts.path.lstrip("/")
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(parts._replace(path=f"/{name}")), name
        _close_django_connections()
        return
    name = f"{parts.path.lstrip('/') or 'postgres'}{suffix}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}")), name
    finally:
        _close_django_connections()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def submit_and_wait(
    base_url: str, headers: dict[str, str], prefs: dict, *, poll_seconds: float, timeout: float = 30
) -> tuple[dict, float]:
    """POST one search and poll it until it succeeds: (its last body, client seconds POST → seen succeeded)."""
    import requests

    began = time.perf_counter()
    response = requests.post(f"{base_url}/matching/searches", json=prefs, headers=headers, timeout=30)
    if response.status_code != 202:
        raise SystemExit(f"POST answered {response.status_code}: {response.text[:300]}")
    search_id = response.json()["search_id"]
    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(f"{base_url}/matching/searches/{search_id}", headers=headers, timeout=10).json()
        if body["status"] == "succeeded":
            return body, time.perf_counter() - began
        if body["status"] in FAILED_STATUSES:
            raise SystemExit(f"search {search_id} ended {body['status']}: {body.get('error')}")
        if time.monotonic() > deadline:
            raise SystemExit(f"search {search_id} did not succeed within {timeout:.0f} s ({body['status']})")
        time.sleep(poll_seconds)


def server_seconds(body: dict) -> float:
    """A finished search's created_at → finished_at, as its (version 2) answer reports them."""
    created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(body["finished_at"].replace("Z", "+00:00"))
    return (finished - created).total_seconds()


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
