"""Start → succeeded latency of searches on the durable engine (local stack) and on Celery.

A script, not a test. Everything runs on this machine, on loopback only:
- a throwaway console database (SQLite under a temp dir) seeded with demo profiles;
- the local durable stack (AWS's durable emulator, Lambda stand-in, Durable API with SigV4,
  moto, GlobalCoach) — searches here need no vetting;
- console A on the durable engine (SigV4), console B on the Celery engine, one Celery worker
  on Redis (database 14 by default, flushed first).

Each search is submitted alone and polled until it succeeds, so the figures are latencies,
not throughput. The time is the console's own `finished_at - created_at`.

    .venv/bin/python bench/durable_bench.py [--searches 20] [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workflows.durable.local._http import free_port  # noqa: E402
from workflows.durable.local.stack import LocalDurableStack, StackConfig  # noqa: E402

SEARCH = {
    "role": "buddy",
    "skill_level_min": 3,
    "skill_level_max": 8,
    "regions": ["Niigata Prefecture"],
    "dates": ["2027-01-10", "2027-01-11"],
    "include_knowledge_score": True,
    "knowledge_score": 60,
    "limit": 20,
}


def _run(cmd: list[str], env: dict[str, str]) -> str:
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300).stdout


def _spawn(stack: ExitStack, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        handle.close()

    stack.callback(stop)
    return proc


def _wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become healthy in {timeout}s")


def _one_search(base: str, headers: dict[str, str]) -> tuple[float, float]:
    """(server-side seconds created→finished, client-side seconds submit→seen succeeded)."""
    began = time.perf_counter()
    response = requests.post(f"{base}/matching/searches", json=SEARCH, headers=headers, timeout=30)
    response.raise_for_status()
    search_id = response.json()["search_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = requests.get(f"{base}/matching/searches/{search_id}", headers=headers, timeout=10).json()
        if body["status"] == "succeeded":
            seen = time.perf_counter() - began
            created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
            finished = datetime.fromisoformat(body["finished_at"].replace("Z", "+00:00"))
            return (finished - created).total_seconds(), seen
        if body["status"] in ("failed", "cancelled", "timed_out"):
            raise SystemExit(f"search {search_id} ended {body['status']}: {body['error']}")
        time.sleep(0.02)
    raise SystemExit(f"search {search_id} did not succeed within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--profiles", type=int, default=3000)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as tmp, ExitStack() as cleanup:
        tmp_path = Path(tmp)
        scrubbed = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "AWS_", "DATABASE_"))}
        base_env = {
            **scrubbed,
            "SNOWBUDDY_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
            "REDIS_URL": args.redis_url,
            "MATCHING_SEARCH_RATE": "10000/min",
            "LOG_LEVEL": "WARNING",
        }
        _run([sys.executable, "manage.py", "migrate", "--noinput"], base_env)
        seeded = _run([sys.executable, "manage.py", "seed_demo", "--profiles", str(args.profiles)], base_env)
        api_key = seeded.split("demo API key: ")[1].split()[0]

        durable_port, celery_port = free_port(), free_port()
        config = StackConfig.for_tests(
            tmp_path / "durable", console_base_url=f"http://127.0.0.1:{durable_port}", globalcoach_mode="staff"
        )
        durable = cleanup.enter_context(LocalDurableStack(config))
        durable_env = {**base_env, **durable.env, "MATCHING_WORKFLOW_AUTH_MODE": "iam_sigv4"}
        gunicorn = [sys.executable, "-m", "gunicorn", "snowbuddy.wsgi", "--workers", "2", "--bind"]
        _spawn(cleanup, [*gunicorn, f"127.0.0.1:{durable_port}"], durable_env, tmp_path / "console-durable.log")
        _spawn(cleanup, [*gunicorn, f"127.0.0.1:{celery_port}"], base_env, tmp_path / "console-celery.log")
        _spawn(
            cleanup,
            [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--concurrency", "2", "-l", "warning"],
            base_env,
            tmp_path / "worker.log",
        )
        for port in (durable_port, celery_port):
            _wait_healthy(f"http://127.0.0.1:{port}")

        headers = {"X-API-Key": api_key, "X-User-Id": "bench-user"}
        figures: dict[str, tuple[list[float], list[float]]] = {}
        for engine, port in (("durable (local stack)", durable_port), ("celery (redis)", celery_port)):
            base = f"http://127.0.0.1:{port}"
            _one_search(base, headers)  # warm-up: imports, first connections
            runs = [_one_search(base, headers) for _ in range(args.searches)]
            figures[engine] = ([r[0] for r in runs], [r[1] for r in runs])

    print(f"{args.searches} searches each, one at a time, {args.profiles} demo profiles, no vetting")
    print(f"{'engine':<24}{'median s':>10}{'p90 s':>9}{'min s':>8}{'max s':>8}{'client median s':>17}")
    for engine, (server, client) in figures.items():
        p90 = statistics.quantiles(server, n=10)[-1]
        print(
            f"{engine:<24}{statistics.median(server):>10.3f}{p90:>9.3f}{min(server):>8.3f}{max(server):>8.3f}"
            f"{statistics.median(client):>17.3f}"
        )
    durable_median = statistics.median(figures["durable (local stack)"][0])
    celery_median = statistics.median(figures["celery (redis)"][0])
    print(f"durable / celery median ratio: {durable_median / celery_median:.1f}x")


if __name__ == "__main__":
    main()
