"""Pull-sync benchmark: DynamoDB (moto in server mode started here, or an endpoint you give) → the console's mirror.

A script, not a test. It measures, with 10,000 searches and their 10,000 state items:

1. a full sync (`workflow_state_sync(full=True)`: Scan, every page) into an empty mirror;
2. an incremental cycle after 100 of the items changed (20 finish with 5 results each, 80 move
   to awaiting_vetting): the sync index from the watermark, DynamoDB requests counted with a
   botocore `before-send` hook;
3. an incremental cycle with nothing changed (the steady state of the periodic task).

Database: with `DATABASE_URL=postgres://…` it creates a throwaway database `<name>_mirror_bench`
on that server (CREATEDB needed), migrates it, and drops it at the end; nothing is written to the
database named in the URL. Without a PostgreSQL URL it uses a fresh SQLite file under var/bench/.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/sync_bench.py [--items 10000]

DynamoDB: by default a moto server on a free 127.0.0.1 port, stopped at the end. With
`--endpoint-url http://127.0.0.1:4567` it uses a DynamoDB that is already running there instead
(dynalite, DynamoDB Local, …; loopback only): the bench table is created on it and deleted at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.bench_support import throwaway_database  # noqa: E402

REGION = "us-east-1"
TABLE = "matching-workflow-state-bench"
TARGET_FULL_SECONDS = 10.0
TARGET_INCREMENTAL_SECONDS = 1.0
TARGET_INCREMENTAL_REQUESTS = 3


@contextmanager
def _database(url: str):
    """Point DATABASE_URL at a throwaway database (PostgreSQL) or a fresh SQLite file."""
    parts = urlsplit(url) if url else None
    if parts and parts.scheme.startswith("postgres"):
        with throwaway_database(url, "_mirror_bench") as (database_url, name):
            os.environ["DATABASE_URL"] = database_url
            yield f"PostgreSQL {parts.hostname}:{parts.port or 5432}/{name} (throwaway)"
    else:
        path = ROOT / "var" / "bench" / "mirror-bench.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        try:
            yield f"SQLite {path} (removed afterwards)"
        finally:
            from django.db import connections

            connections.close_all()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def _iso(moment: dt.datetime) -> str:
    from workflows.durable.state import utc_now_iso

    return utc_now_iso(moment)


def _item(search_id: str, updated_at: str) -> dict:
    return {
        "search_id": search_id,
        "attempt": 1,
        "status": "running",
        "version": 3,
        "execution_name": f"{search_id}-a1",
        "execution_arn": f"arn:aws:lambda:{REGION}:123456789012:function:matching-workflow/durable/{search_id}-a1",
        "seeker_id": "bench-seeker",
        "preferences": {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "limit": 20},
        "started_at": updated_at,
        "created_at": updated_at,
        "updated_at": updated_at,
        "sync_bucket": "all",
        "dispatch": {"state": "invoked", "invoked_at": updated_at},
        "candidate_count": 1200,
        "timeline": [
            {"at": updated_at, "step": "start", "event": "dispatched", "detail": {"attempt": 1}},
            {"at": updated_at, "step": "mark-running", "event": "running", "detail": None},
            {"at": updated_at, "step": "score", "event": "scored", "detail": {"candidates": 1200}},
        ],
        "error": None,
        "results": None,
    }


def _results(n: int) -> list[dict]:
    breakdown = {"skill": 1, "location": 0.5, "availability": 1, "role": 1, "knowledge": None}
    return [
        {
            "user_id": f"u{i:06d}",
            "nickname": f"rider{i}",
            "score": round(0.9 - i / 100, 2),
            "rank": i + 1,
            "breakdown": breakdown,
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the raw DynamoDB timing")
    parser.add_argument(
        "--endpoint-url",
        help="an already running DynamoDB on this machine (e.g. dynalite: http://127.0.0.1:4567); default: moto",
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.endpoint_url:
            host = urlsplit(args.endpoint_url).hostname or ""
            if host not in ("127.0.0.1", "localhost", "::1"):
                parser.error("--endpoint-url must be on this machine (127.0.0.1, localhost or ::1)")
            endpoint, server = args.endpoint_url.rstrip("/"), f"DynamoDB at {args.endpoint_url}"
        else:
            from tests.helpers.aws import moto_server  # the tests' moto, stopped when the bench ends

            endpoint = stack.enter_context(moto_server())
            server = f"moto server {endpoint}"
        args.server = server
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto's dummy credentials
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL_DYNAMODB=endpoint,
            LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="snowbuddy.settings",
        )
        with _database(os.environ.get("DATABASE_URL", "")) as where:
            _run(args, where)


def _run(args: argparse.Namespace, where: str) -> None:
    import boto3
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from workflows.durable.state import create_table

    call_command("migrate", verbosity=0)
    settings.MATCHING_WORKFLOW_STATE_TABLE = TABLE
    settings.AWS_REGION = REGION
    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    setup_client = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    try:
        setup_client.delete_table(TableName=TABLE)  # left over from an interrupted run
        setup_client.get_waiter("table_not_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    except setup_client.exceptions.ResourceNotFoundException:
        pass
    create_table(setup_client, TABLE)
    setup_client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    try:
        _measure(args, where, endpoint, setup_client)
    finally:
        setup_client.delete_table(TableName=TABLE)


def _measure(args: argparse.Namespace, where: str, endpoint: str, setup_client) -> None:
    import boto3
    from django.utils import timezone

    from matching.models import Engine, Search, SearchStatus
    from workflows.durable.state import Changes, WorkflowStateStore, serialize_item, timeline_entry
    from workflows.durable_console.dynamo import DynamoConfig, WorkflowStateReader
    from workflows.mirror.state import workflow_state_sync
    from workflows.models import ExecutionTimelineEntry, WorkflowExecution

    print(f"database: {where}")
    print(f"DynamoDB: {args.server}, table {TABLE}, page size {args.page_size}")
    began = time.perf_counter()
    deadline = timezone.now() + dt.timedelta(hours=1)
    ids = [uuid.uuid4() for _ in range(args.items)]
    Search.objects.bulk_create(
        [
            Search(
                search_id=sid,
                seeker_id="bench-seeker",
                preferences={"role": "buddy", "skill_level_min": 3, "skill_level_max": 7},
                status=SearchStatus.RUNNING,
                engine=Engine.DURABLE,
                deadline_at=deadline,
            )
            for sid in ids
        ],
        batch_size=2000,
    )
    base = dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)
    items = [_item(str(sid), _iso(base + dt.timedelta(milliseconds=1500 * i))) for i, sid in enumerate(ids)]

    def write(chunk: list[dict]) -> None:
        client = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        for start in range(0, len(chunk), 25):
            request = {TABLE: [{"PutRequest": {"Item": serialize_item(i)}} for i in chunk[start : start + 25]]}
            while request:
                request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [items[i : i + 500] for i in range(0, len(items), 500)]))
    print(f"setup: {args.items:,} searches and items in {time.perf_counter() - began:.1f}s\n")

    reader = WorkflowStateReader(DynamoConfig.from_settings(page_size=args.page_size))
    meter = RequestMeter(reader.client)

    # 1. a full sync into an empty mirror
    full = meter.measure(lambda: workflow_state_sync(full=True, reader=reader))
    print(full.line("full sync", f"{full.report.fetched:,} items, {full.report.applied:,} applied"))
    print(
        f"{'':18}mirror rows {WorkflowExecution.objects.count():,}, "
        f"timeline entries {ExecutionTimelineEntry.objects.count():,}"
    )

    # 2. 100 changed items among 10,000: a fifth finish with results, the rest start waiting on vetting
    store = WorkflowStateStore(TABLE, setup_client)
    for n, sid in enumerate(random.Random(7).sample(ids, args.changed)):
        item = store.require(str(sid))
        status = "succeeded" if n % 5 == 0 else "awaiting_vetting"
        fields = {"status": status, "results": _results(5)} if status == "succeeded" else {"status": status}
        store.update(
            str(sid),
            int(item["version"]),
            Changes(set=fields, timeline=[timeline_entry("write-result" if n % 5 == 0 else "vetting", status)]),
            previous_updated_at=item["updated_at"],
            previous_timeline=item["timeline"],
        )
    incremental = meter.measure(lambda: workflow_state_sync(reader=reader))
    r = incremental.report
    print(
        incremental.line(
            "incremental",
            f"{r.fetched} items read, {r.applied} applied, {r.status_changes} status changes "
            f"({Search.objects.filter(status=SearchStatus.SUCCEEDED).count()} succeeded)",
        )
    )

    # 3. the next cycle: nothing new (the items changed within the skew are read again, and ignored)
    idle = meter.measure(lambda: workflow_state_sync(reader=reader))
    print(idle.line("next cycle", f"{idle.report.fetched} items read, {idle.report.applied} applied"))

    if args.floor:
        # The same requests with no console work at all: what DynamoDB alone needs to answer them.
        started = time.perf_counter()
        scanned = sum(len(page.items) for page in reader.scan())
        scan_floor = time.perf_counter() - started
        started = time.perf_counter()
        queried = sum(len(page.items) for page in reader.changed_since(incremental.report.query_from))
        query_floor = time.perf_counter() - started
        print(
            f"{'DynamoDB floor:':18}Scan of {scanned:,} items {scan_floor:.2f}s, Query of {queried} items "
            f"{query_floor:.2f}s (requests and parsing only, nothing applied)"
        )

    print()
    checks = [
        ("full sync applied every item", full.report.applied == len(ids)),
        ("full sync <= 10 s (wall clock, DynamoDB included)", full.wall <= TARGET_FULL_SECONDS),
        ("full sync <= 10 s (console side)", full.console <= TARGET_FULL_SECONDS),
        ("incremental applied exactly the changed items", incremental.report.applied == args.changed),
        ("incremental <= 3 DynamoDB requests", len(incremental.requests) <= TARGET_INCREMENTAL_REQUESTS),
        ("incremental <= 1 s (wall clock, DynamoDB included)", incremental.wall <= TARGET_INCREMENTAL_SECONDS),
        ("incremental <= 1 s (console side)", incremental.console <= TARGET_INCREMENTAL_SECONDS),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


class Measured:
    def __init__(self, report, wall: float, waited: float, requests: list[str]):
        self.report, self.wall, self.waited, self.requests = report, wall, waited, requests

    @property
    def console(self) -> float:
        return self.wall - self.waited

    def line(self, label: str, what: str) -> str:
        ops = ", ".join(f"{n} {op}" for op, n in sorted(Counter(self.requests).items()))
        return (
            f"{label + ':':18}{self.wall:6.2f}s wall = {self.waited:5.2f}s in DynamoDB requests + "
            f"{self.console:5.2f}s console; {len(self.requests)} requests ({ops}); {what}"
        )


class RequestMeter:
    """Counts DynamoDB requests and the time spent waiting on them, with botocore event hooks."""

    def __init__(self, client):
        self.requests: list[str] = []
        self.waited = 0.0
        self._sent_at = 0.0
        client.meta.events.register("before-send.dynamodb", self._sent)
        client.meta.events.register("before-parse.dynamodb", self._received)  # the response is in, unparsed

    def _sent(self, request, **_):
        self.requests.append(request.headers["X-Amz-Target"].decode().split(".")[-1])
        self._sent_at = time.perf_counter()

    def _received(self, **_):
        self.waited += time.perf_counter() - self._sent_at

    def measure(self, run) -> Measured:
        self.requests, self.waited = [], 0.0
        started = time.perf_counter()
        report = run()
        return Measured(report, time.perf_counter() - started, self.waited, list(self.requests))


if __name__ == "__main__":
    main()
