"""The fault suite's machinery: console processes (gunicorn, Celery workers with beat) started on
loopback for one scenario, SIGKILLed on purpose, and the figures each scenario reports.

Every scenario records: searches in flight, faults injected, lost, duplicated and the time to
recover. They are printed at the end of the run (whatever `-s` says) and written to
var/faults/last-run.json, which docs/RELIABILITY.md quotes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.db.models import Count, Q

from devtools.durable_local._http import free_port
from matching.management.demo_profiles import demo_profiles
from matching.models import Search, SearchStatus, SkierProfile
from matching.selectors import resort_regions
from matching.services.keys import api_key_create
from matching.services.profiles import profile_fields

ROOT = Path(__file__).resolve().parents[2]
FIGURES: list[dict] = []
FAULT_PREFS = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES:
        return
    terminalreporter.section("fault suite: figures of this run")
    for row in FIGURES:
        details = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("scenario", "bound_s"))
        terminalreporter.write_line(f"{row['scenario']}: {details} (bound {row['bound_s']} s)")
    out = ROOT / "var" / "faults" / "last-run.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "scenarios": FIGURES}, indent=2)
    )
    terminalreporter.write_line(f"(written to {out.relative_to(ROOT)})")


@pytest.fixture
def report():
    def record(scenario: str, **figures) -> None:
        FIGURES.append({"scenario": scenario, **figures})

    return record


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if ppid == str(pid):
            found.append(int(entry.name))
    return found


class ConsoleProcess:
    """One console process (a worker, gunicorn) in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, ready) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while not ready(self):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: a node dying, not a polite stop."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class Console:
    """Processes of one scenario on one environment; all stopped when the scenario ends."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[ConsoleProcess] = []

    def worker(self, name: str, *, concurrency: int = 2, beat: bool = False, **env: str) -> ConsoleProcess:
        queue = self.env["CELERY_TASK_DEFAULT_QUEUE"]
        args = [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--pool", "prefork",
                "--concurrency", str(concurrency), "-l", "info", "-Q", queue, "-n", f"{name}-{os.getpid()}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        if beat:
            args += ["-B", "-s", str(self.log_dir / f"{name}-beat-schedule")]
        process = ConsoleProcess(name, args, {**self.env, **env}, self.log_dir, lambda p: "ready." in p.log())
        self.processes.append(process)
        return process

    def beat(self, name: str = "beat", **env: str) -> ConsoleProcess:
        """Exactly one beat, as in production: it sends the periodic tasks (the lease sweeper among them)."""
        args = [sys.executable, "-m", "celery", "-A", "snowbuddy", "beat", "-l", "info",
                "-s", str(self.log_dir / f"{name}-schedule")]  # fmt: skip
        process = ConsoleProcess(name, args, {**self.env, **env}, self.log_dir, lambda p: "Starting..." in p.log())
        self.processes.append(process)
        return process

    def web(self, name: str = "web", *, workers: int = 2, **env: str) -> tuple[ConsoleProcess, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "-m", "gunicorn", "snowbuddy.wsgi", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--timeout", "30", "--graceful-timeout", "5"]  # fmt: skip

        def ready(_process) -> bool:
            try:
                requests.get(f"{url}/matching/searches", timeout=1)  # a quick 401 once it serves
            except requests.RequestException:
                return False
            return True

        process = ConsoleProcess(name, args, {**self.env, **env}, self.log_dir, ready)
        self.processes.append(process)
        return process, url

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def console_env(worker_env, tmp_path) -> dict[str, str]:
    """A console environment on the test database with its own broker queue and local state."""
    return {
        **worker_env,
        "SNOWBUDDY_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SECRET_KEY": "fault-suite-" + uuid.uuid4().hex,
        "CELERY_TASK_DEFAULT_QUEUE": f"faults-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        "MATCHING_SEARCH_RATE": "100000/min",
        "MATCHING_KEY_RATE": "100000/min",
        "MATCHING_NOTIFICATION_WEBHOOK_URL": "",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def console(console_env, tmp_path) -> Iterator[Console]:
    running = Console(console_env, tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def snowtrace_key(db) -> str:
    return api_key_create(name="fault-suite", is_trusted_service=True)[1]  # names the user in X-User-Id


@pytest.fixture
def candidates(resorts) -> int:
    """Enough profiles that one search takes a noticeable moment on a worker."""
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(1500, resort_regions(), seed=10)
    )
    return 1500


@pytest.fixture
def few_candidates(resorts) -> int:
    """Searches that finish quickly, where the scenario is about messages, not work."""
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(200, resort_regions(), seed=11)
    )
    return 200


def submit(session: requests.Session, url: str, key: str, user: str, *, idempotency_key: str = "") -> str:
    headers = {"X-API-Key": key, "X-User-Id": user}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    response = session.post(f"{url}/matching/searches", json=FAULT_PREFS, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["search_id"]


def tally(search_ids: list[str]) -> dict[str, int]:
    """Lost: not succeeded. Duplicated: an attempt finished more than once, or results written twice."""
    connection.close()  # read what the other processes committed
    rows = Search.objects.filter(pk__in=search_ids).annotate(
        finishes=Count("events", filter=Q(events__kind=SearchStatus.SUCCEEDED)),
    )
    by_id = {str(row.pk): row for row in rows}
    lost = sum(1 for sid in search_ids if sid not in by_id or by_id[sid].status != SearchStatus.SUCCEEDED)
    duplicated = sum(max(row.finishes - 1, 0) for row in rows)
    duplicated += sum(1 for row in rows if row.results.filter(attempt=row.attempt).count() != row.result_count)
    return {"lost": lost, "duplicated": duplicated}


def unfinished(search_ids: list[str]) -> int:
    connection.close()
    return Search.objects.filter(pk__in=search_ids).exclude(status=SearchStatus.SUCCEEDED).count()
