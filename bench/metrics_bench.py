"""What one scrape of /metrics costs the database: the collector's read (workflows/metrics_collector.py)
on a filled database, uncached. Prints the query count and the median / p90 / max of 15 reads after
2 warm-ups, each query's median, and each query's plan and server time (EXPLAIN ANALYZE).

    createdb scale && DATABASE_URL=postgres://…/scale python manage.py migrate
    DATABASE_URL=postgres://…/scale python -m devtools.seed_scale --searches 1000000
    DATABASE_URL=postgres://…/scale python bench/metrics_bench.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from matching.models import Search, SearchEvent  # noqa: E402
from workflows.metrics_collector import ConsoleStateCollector  # noqa: E402

RUNS, WARMUPS = 15, 2


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("run it on PostgreSQL (DATABASE_URL=postgres://…) with a filled database")
    print(f"searches {Search.objects.count():,}, events {SearchEvent.objects.count():,}")
    collector = ConsoleStateCollector(cache_seconds=0)
    for _ in range(WARMUPS):
        collector.collect()
    totals: list[float] = []
    per_query: dict[int, list[float]] = {}
    sql: dict[int, str] = {}
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            collector.collect()
            totals.append((time.perf_counter() - began) * 1000)
        for i, query in enumerate(captured.captured_queries):
            per_query.setdefault(i, []).append(float(query["time"]) * 1000)
            sql[i] = " ".join(query["sql"].split())[:110]
    totals.sort()
    print(
        f"one uncached read: {collector.last_queries} queries, median {statistics.median(totals):.1f} ms, "
        f"p90 {totals[int(len(totals) * 0.9) - 1]:.1f} ms, max {totals[-1]:.1f} ms ({RUNS} reads)"
    )
    for i, times in per_query.items():
        print(f"  q{i + 1}: median {statistics.median(times):6.2f} ms  {sql[i]}")
    # The server's own time and plan of each query (EXPLAIN ANALYZE), apart from the round trips.
    with CaptureQueriesContext(connection) as captured:
        collector.collect()
    server_ms = 0.0
    with connection.cursor() as cursor:
        for i, query in enumerate(captured.captured_queries):
            cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) " + query["sql"])
            plan = [row[0] for row in cursor.fetchall()]
            scans = [line.strip().removeprefix("->  ").split("  (")[0] for line in plan if "Scan" in line]
            timed = [line for line in plan if line.startswith(("Planning", "Execution"))]
            ms = sum(float(line.split(":")[1].split()[0]) for line in timed)
            server_ms += ms
            print(f"  q{i + 1}: server {ms:.3f} ms  {'; '.join(scans)}")
    print(f"server time of one read (planning + execution): {server_ms:.2f} ms")


if __name__ == "__main__":
    main()
