"""Start → succeeded latency of searches on the durable engine (local stack) and on Celery.

A script, not a test. Everything runs on this machine, on loopback only:
- a throwaway console database (SQLite under a temp dir) seeded with demo profiles;
- the local durable stack (AWS's durable emulator, Lambda stand-in, Durable API with SigV4,
  moto, GlobalCoach) — searches here need no vetting;
- console A on the durable engine (SigV4), console B on the Celery engine, one Celery worker
  on Redis (database 14 by default, flushed first).

Each search is submitted alone and polled until it succeeds, so the figures are latencies,
not throughput. The time is the console's own `finished_at - created_at`.

Checkpoint bytes per durable search: "after" is what this workflow really checkpointed, summed
from the execution's history (every step's serialized result). "Before" is what the previous
workflow (one checkpointed step per page of 500 candidates, then a score step) checkpointed for
the same search: the same steps plus the candidate pages, fetched from the console's
`/internal/searches/{id}/candidates` exactly as it paged them and serialized as its step did.

    .venv/bin/python bench/durable_bench.py [--searches 20] [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.bench_support import server_seconds, spawn, submit_and_wait, wait_healthy  # noqa: E402
from devtools.durable_local._http import free_port  # noqa: E402
from devtools.durable_local.stack import LocalDurableStack, StackConfig  # noqa: E402

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


def _one_search(base: str, headers: dict[str, str]) -> tuple[float, float, str]:
    """(server-side seconds created→finished, client-side seconds submit→seen succeeded, search id)."""
    body, seen = submit_and_wait(base, headers, SEARCH, poll_seconds=0.02, timeout=60)
    return server_seconds(body), seen, body["search_id"]


# What the previous workflow kept of each candidate (PROFILE_FIELDS without languages) and its page size.
OLD_PAGE_FIELDS = (
    "user_id",
    "nickname",
    "skill_level",
    "role",
    "resorts",
    "regions",
    "available_dates",
    "open_to_matching",
    "knowledge_score",
    "certifications",
)
OLD_PAGE_SIZE = 500


def _checkpoint_bytes(stack: LocalDurableStack, search_id: str) -> dict[str, int]:
    """Bytes each step of the search's execution checkpointed (serialized results), by step name."""
    env = stack.env
    aws = {
        "region_name": env["AWS_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    dynamodb = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], **aws)
    item = dynamodb.get_item(TableName=env["MATCHING_STATE_TABLE"], Key={"search_id": {"S": search_id}})["Item"]
    arn = item["execution_arn"]["S"]
    lambda_client = boto3.client("lambda", endpoint_url=stack.emulator_url, **aws)
    sizes: dict[str, int] = {}
    params = {"DurableExecutionArn": arn, "IncludeExecutionData": True, "MaxItems": 1000}
    while True:
        page = lambda_client.get_durable_execution_history(**params)
        for event in page.get("Events") or []:
            payload = ((event.get("StepSucceededDetails") or {}).get("Result") or {}).get("Payload")
            if payload is not None:
                sizes[event.get("Name") or "?"] = len(payload.encode())
        if not page.get("NextMarker"):
            return sizes
        params["Marker"] = page["NextMarker"]


def _old_page_bytes(console: str, token: str, search_id: str) -> tuple[int, int]:
    """(pages, bytes) the previous workflow checkpointed for this search's candidates."""
    total, pages, cursor = 0, 0, None
    while True:
        params = {"page_size": OLD_PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
        body = requests.get(
            f"{console}/internal/searches/{search_id}/candidates",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ).json()
        page = {
            "profiles": [{k: p.get(k) for k in OLD_PAGE_FIELDS if k in p} for p in body["profiles"]],
            "next_cursor": body["next_cursor"],
        }
        total += len(json.dumps(page).encode())  # the SDK's JsonSerDes: json.dumps(value)
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            return pages, total


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
        # The production configuration (start-up checks; workers serving the workflow's ranking
        # load the warm index as they boot).
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
                    "--workers", "2", "--bind"]  # fmt: skip
        spawn(cleanup, [*gunicorn, f"127.0.0.1:{durable_port}"], durable_env, tmp_path / "console-durable.log")
        spawn(cleanup, [*gunicorn, f"127.0.0.1:{celery_port}"], base_env, tmp_path / "console-celery.log")
        spawn(
            cleanup,
            [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--concurrency", "2", "-l", "warning"],
            base_env,
            tmp_path / "worker.log",
        )
        for port in (durable_port, celery_port):
            wait_healthy(f"http://127.0.0.1:{port}")

        # Version 2 answers carry the lifecycle status and the timestamps the figures come from.
        headers = {"X-API-Key": api_key, "X-User-Id": "bench-user", "Accept": "application/json; version=2"}
        figures: dict[str, tuple[list[float], list[float]]] = {}
        durable_ids: list[str] = []
        for engine, port in (("durable (local stack)", durable_port), ("celery (redis)", celery_port)):
            base = f"http://127.0.0.1:{port}"
            _one_search(base, headers)  # warm-up: imports, first connections
            runs = [_one_search(base, headers) for _ in range(args.searches)]
            figures[engine] = ([r[0] for r in runs], [r[1] for r in runs])
            if port == durable_port:
                durable_ids = [r[2] for r in runs]
        after = [_checkpoint_bytes(durable, search_id) for search_id in durable_ids]
        old_pages = [
            _old_page_bytes(f"http://127.0.0.1:{durable_port}", durable.env["MATCHING_INTERNAL_TOKEN"], search_id)
            for search_id in durable_ids
        ]

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

    after_totals = [sum(sizes.values()) for sizes in after]
    before_totals = [total + pages_bytes for total, (_, pages_bytes) in zip(after_totals, old_pages, strict=True)]
    steps = ", ".join(f"{name} {size:,} B" for name, size in after[0].items())
    print(f"\ncheckpoint bytes per durable search (median of {len(after_totals)}):")
    print(
        f"  before (a step per page of {OLD_PAGE_SIZE} candidates): {statistics.median(before_totals):,.0f} B "
        f"in {statistics.median(p for p, _ in old_pages):.0f} candidate pages plus the other steps"
    )
    print(f"  after (one rank-candidates step, top K only): {statistics.median(after_totals):,.0f} B")
    print(f"  after, by step (first search): {steps}")
    print(f"  before / after: {statistics.median(before_totals) / statistics.median(after_totals):,.0f}x")


if __name__ == "__main__":
    main()
