"""POST /matching/searches latency while the broker is down: the request never waits on it.

A script, not a test. It creates a throwaway PostgreSQL database (`<name>_submit_bench` on the
server of DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test; CREATEDB needed), migrates
it, loads the resorts and an API key, and starts the console under gunicorn on 127.0.0.1 with
CELERY_BROKER_URL pointing at a closed loopback port: every send to the broker fails. Client threads
then submit searches and the script prints p50/p95/p99/max of the client-observed latency, and
checks that every search was stored with its dispatch record left unsent for the sweeper. The
cache (throttle counters) stays up, on the Redis of REDIS_CACHE_URL (default
redis://127.0.0.1:6379/13), as in production; `--cache file` uses the file cache instead.
`--broker up` runs the same against the broker in REDIS_URL (default redis://127.0.0.1:6379/14,
flushed) for comparison. The database is dropped at the end.

    .venv/bin/python bench/submit_broker_down_bench.py [--requests 1000] [--clients 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.bench_support import percentile, throwaway_database  # noqa: E402
from devtools.durable_local._http import free_port  # noqa: E402

PREFS = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 8, "regions": ["Nagano Prefecture"]}


def _manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def main() -> int:
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: gunicorn and the database are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients (default: one per worker)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--broker", choices=("down", "up"), default="down")
    parser.add_argument("--cache", choices=("redis", "file"), default="redis")
    parser.add_argument(
        "--relay", choices=("thread", "inline"), default="thread", help="inline: send in the request, as before"
    )
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    with (
        throwaway_database(database_url, "_submit_bench") as (bench_db, _),
        tempfile.TemporaryDirectory(prefix="submit-bench-") as var_dir,
    ):
        broker = (
            f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: connection refused
            if args.broker == "down"
            else os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "CELERY_", "REDIS_"))},
            "DATABASE_URL": bench_db,
            "CELERY_BROKER_URL": broker,
            "SNOWBUDDY_VAR_DIR": var_dir,  # file cache (throttle) and local state of its own
            "MATCHING_SEARCH_RATE": "1000000/min",
            "MATCHING_KEY_RATE": "1000000/min",
            "MATCHING_DISPATCH_RELAY": args.relay,
            "DJANGO_SECRET_KEY": "submit-bench",
            "LOG_LEVEL": "ERROR",  # not a 401 warning per readiness poll
        }
        if args.cache == "redis":
            env["REDIS_CACHE_URL"] = os.environ.get("REDIS_CACHE_URL", "redis://127.0.0.1:6379/13")
        if args.broker == "up":
            import redis

            redis.Redis.from_url(broker).flushdb()
        _manage(env, "migrate", "--noinput")
        _manage(env, "loaddata", "resorts")
        key = _manage(env, "create_api_key", "bench", "--trusted-service").strip().split()[-1]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "snowbuddy.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--log-level", "error"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(f"{url}/matching/searches", timeout=1)  # a quick 401 once it serves
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline or web.poll() is not None:
                        raise SystemExit("gunicorn did not start") from None
                    time.sleep(0.2)
            latencies: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()
            local = threading.local()

            def post(n: int) -> None:
                session = getattr(local, "session", None) or requests.Session()
                local.session = session
                headers = {"X-API-Key": key, "X-User-Id": f"bench-{n % 50}"}
                began = time.perf_counter()
                response = session.post(f"{url}/matching/searches", json=PREFS, headers=headers, timeout=30)
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 202:
                        failures.append(f"{response.status_code} {response.text[:200]}")

            warmup = min(50, args.requests // 10)
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(post, range(warmup)))
            latencies.clear()
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(post, range(args.requests)))
            wall = time.perf_counter() - started
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=30)

        stored = _manage(
            env,
            "shell",
            "--verbosity",
            "0",
            "-c",
            "from workflows.models import SearchDispatch as D; "
            "print(D.objects.count(), D.objects.filter(sent_at__isnull=True).count())",
        ).split()
    ms = [x * 1000 for x in latencies]
    print(f"POST /matching/searches with the broker {args.broker} ({broker}), cache {args.cache}, relay {args.relay}, "
          f"{args.workers} gunicorn workers, "
          f"{args.clients} clients, {len(ms)} requests after {warmup} warm-up, {wall:.1f}s wall")  # fmt: skip
    print(f"  p50 {statistics.median(ms):.1f} ms   p95 {percentile(ms, 95):.1f} ms   "
          f"p99 {percentile(ms, 99):.1f} ms   max {max(ms):.1f} ms   mean {statistics.fmean(ms):.1f} ms")  # fmt: skip
    print(
        f"  answers other than 202: {len(failures)}; searches stored {stored[0]}, dispatch records unsent {stored[1]}"
    )
    for failure in failures[:5]:
        print(f"    {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
