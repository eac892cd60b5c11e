"""The cost of observability: POST → succeeded at 100k profiles with it all on, against all off.

A script, not a test. In a throwaway PostgreSQL database `<name>_search_bench` (made by
devtools/bench_support.py, CREATEDB needed; dropped at the end) with --profiles synthetic
profiles, it starts TWO consoles side by side on 127.0.0.1, each gunicorn (2 workers) + a Celery
worker (prefork, 2 processes) on its own Redis database:

- "off": no OTEL_* variable, text logs, no metrics;
- "on": tracing exporting to a loopback OTLP/HTTP collector in this process (tests/helpers/otlp_receiver.py),
  plus, when the branch has them, JSON logs (LOG_FORMAT=json) and Prometheus metrics (METRICS_TOKEN,
  scraped every 15 s as Prometheus would) — see --features.

Both log at the console's default level (INFO; --log-level), so "JSON logs" changes the lines'
format, not how many there are; --off-log-level WARNING gives the quieter baseline of the earlier
runs (docs/benchmarks.md), against which JSON logs also cost writing the lines at all.

Searches alternate between the two (off, on, on, off, …), one at a time, so both see the same
machine load; each is POSTed and polled until `succeeded`. It prints, per console, the medians of
the server's created_at → finished_at and of the client's POST → seen succeeded, and the on/off
ratio (target: ≤ 1.05 on the median). Where the time goes, per console: each milestone of the
server's path (the submitted, dispatched and claimed events, the dispatch record's sent_at, the
claim's start, the finish) as a median after created_at, and each console's CPU per search (its
gunicorn's and its worker's processes, from /proc); with tracing, each span's median start and end
after its search's POST began.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench9 .venv/bin/python bench/observability_bench.py \\
        [--profiles 100000] [--searches 40] [--redis-off redis://127.0.0.1:6379/14] \\
        [--redis-on redis://127.0.0.1:6379/13] [--features tracing,json_logs,metrics] [--show-trace] \\
        [--poll-seconds 1] [--trace-sample 0.1] [--on-env OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=psycopg] \\
        [--off-log-level WARNING]

With tracing, it also counts the spans the collector got: per search (the trace of its POST) and
per process, and per poll (each GET is a trace of its own).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search_path_bench import insert_profiles, search_shapes  # noqa: E402

from devtools.bench_support import (  # noqa: E402
    server_seconds,
    spawn,
    submit_and_wait,
    throwaway_database,
    wait_healthy,
    wait_until,
)
from devtools.durable_local._http import free_port  # noqa: E402
from tests.helpers.otlp_receiver import OtlpReceiver  # noqa: E402

TARGET_RATIO = 1.05
SCRAPE_SECONDS = 15.0
# How often the client polls each search (--poll-seconds). SnowTrace's browser polls once a second;
# a tight loop mostly measures the tracing of the polls themselves competing for the 2 cores with
# the worker (5 ms: on/off 1.39 in a first run; 25 ms: 1.10-1.15).
POLL_SECONDS = 0.025


def _session_cpu_seconds(session: int) -> float:
    """User + system CPU seconds used so far by the live processes of one session (a console's
    gunicorn or its Celery worker, each started in a session of its own)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == session:  # after the name: state, ppid, pgrp, session, …, utime (12), stime (13)
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _console(
    stack: ExitStack, name: str, env: dict, log_dir: Path, worker_env: dict | None = None
) -> tuple[str, dict[str, int]]:
    """(its base URL, the session id of its gunicorn and of its worker)."""
    port = free_port()
    worker_log = log_dir / f"{name}-worker.log"
    worker = spawn(
        stack,
        [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--concurrency", "2", "-l", "info",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
        {**env, **(worker_env or {})},
        worker_log,
        new_session=True,
    )  # fmt: skip
    web = spawn(
        stack,
        [sys.executable, "-m", "gunicorn", "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
         "--workers", "2", "--bind", f"127.0.0.1:{port}"],
        env,
        log_dir / f"{name}-gunicorn.log",
        new_session=True,
    )  # fmt: skip
    wait_until(lambda: "ready" in worker_log.read_text(), 120, f"the {name} Celery worker becoming ready")
    wait_healthy(f"http://127.0.0.1:{port}", 60, f"the {name} gunicorn answering /health")
    return f"http://127.0.0.1:{port}", {"web": web.pid, "worker": worker.pid}


def _one(base: str, key: str, user: str, prefs: dict, poll_seconds: float) -> tuple[float, float]:
    """(server ms created → finished, client ms POST → seen succeeded)."""
    headers = {"X-API-Key": key, "X-User-Id": user, "Accept": "application/json; version=2"}
    body, seen = submit_and_wait(base, headers, prefs, poll_seconds=poll_seconds)
    return server_seconds(body) * 1000, seen * 1000


def _scraper(urls: list[str], token: str, stop: threading.Event, scrapes: list[float]) -> None:
    """Scrape like Prometheus: every 15 s, the console's /metrics and the worker's port."""
    import requests

    while not stop.wait(SCRAPE_SECONDS):
        for url in urls:
            began = time.perf_counter()
            response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
            scrapes.append((time.perf_counter() - began) * 1000)


def _per_trace(by_trace: dict[str, list], traces: list[str], service: str | None = None) -> str:
    """'median N spans (name mean, …)' over `traces`, SQL statements counted as one name."""
    counts, names = [], {}
    for t in traces:
        mine = [s for s in by_trace[t] if service is None or s.service == service]
        counts.append(len(mine))
        for s in mine:
            kind = "SQL" if "db.system" in s.attributes or "db.system.name" in s.attributes else s.name
            names[kind] = names.get(kind, 0) + 1
    detail = ", ".join(f"{n} {c / len(traces):.1f}" for n, c in sorted(names.items(), key=lambda i: -i[1]))
    return f"median {statistics.median(counts):.0f} spans ({detail})"


def _span_counts(spans: list) -> None:
    """Spans per search (its POST's trace), by process, and per poll (a GET's own trace)."""
    by_trace: dict[str, list] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    roots = {s.trace_id: s for s in spans if not s.parent_span_id}
    searches = [t for t, root in roots.items() if root.name.startswith("POST")]
    polls = [t for t, root in roots.items() if root.name.startswith("GET")]
    if searches:
        print(f"spans per search trace ({len(searches)} searches):")
        for service in sorted({s.service for t in searches for s in by_trace[t]}):
            print(f"  {service}: {_per_trace(by_trace, searches, service)}")
    if polls:
        print(f"spans per poll trace ({len(polls)} polls): {_per_trace(by_trace, polls)}")
    others = [
        f"{root.service} {root.attributes.get('db.statement', root.name)[:40]}"
        for t, root in roots.items()
        if t not in searches and t not in polls
    ]
    if others:
        kinds = ", ".join(f"{k} {others.count(k)}" for k in sorted(set(others))[:8])
        print(f"other traces: {len(others)} ({kinds})")


def _timeline(spans: list) -> None:
    """Over every search's trace: each span's median start and end, in ms after its POST began."""
    roots = {s.trace_id: s for s in spans if not s.parent_span_id and s.name.startswith("POST")}
    marks: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for s in spans:
        root = roots.get(s.trace_id)
        if root is not None:
            offsets = ((s.start_ns - root.start_ns) / 1e6, (s.end_ns - root.start_ns) / 1e6)
            marks.setdefault((s.service, s.name), []).append(offsets)
    if not marks:
        return
    print(f"search trace timeline ({len(roots)} searches): span, median start → end, ms after the POST began")
    rows = [(statistics.median(a for a, _ in m), statistics.median(b for _, b in m), key) for key, m in marks.items()]
    for start, end, (service, name) in sorted(rows):
        print(f"  {service:<18} {name[:50]:<50} {start:7.2f} → {end:7.2f}")


# In the order a search usually reaches them: the claim begins while the relay still writes its records.
MILESTONES = ("submitted", "claim began", "dispatched", "sent", "claimed", "finished")


def _milestones(warmups: int) -> dict[str, dict[str, float]]:
    """Per console, each milestone's median time after the search's created_at, in ms, from the
    database: its events (submitted, dispatched, claimed), its dispatch record's sent_at, its
    started_at (when the worker's claim began; the claimed event is when it had the row) and its
    finished_at."""
    from matching.models import Search, SearchEvent
    from workflows.models import SearchDispatch

    sent_at = dict(SearchDispatch.objects.filter(attempt=1).values_list("search_id", "sent_at"))
    figures: dict[str, dict[str, float]] = {}
    for which in ("off", "on"):
        searches = {
            pk: (created, started, finished)
            for pk, seeker, created, started, finished in Search.objects.filter(
                seeker_id__startswith=f"bench-{which}-"
            ).values_list("pk", "seeker_id", "created_at", "started_at", "finished_at")
            if int(seeker.rsplit("-", 1)[1]) >= warmups and started and finished
        }
        events: dict[tuple, object] = {}
        for search_id, kind, at in SearchEvent.objects.filter(search_id__in=list(searches)).values_list(
            "search_id", "kind", "at"
        ):
            events.setdefault((search_id, kind), at)
        offsets: dict[str, list[float]] = {name: [] for name in MILESTONES}
        for pk, (created, started, finished) in searches.items():
            times = {
                "submitted": events.get((pk, "submitted")),
                "dispatched": events.get((pk, "dispatched")),
                "sent": sent_at.get(pk),
                "claim began": started,
                "claimed": events.get((pk, "claimed")),
                "finished": finished,
            }
            for name, at in times.items():
                if at is not None:
                    offsets[name].append((at - created).total_seconds() * 1000)
        figures[which] = {name: statistics.median(values) for name, values in offsets.items() if values}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=40, help="measured searches per console")
    parser.add_argument("--redis-off", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--redis-on", default=os.environ.get("BENCH_REDIS_CACHE_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument(
        "--features",
        default="tracing,json_logs,metrics",
        help="what 'on' turns on (comma-separated): tracing, json_logs, metrics",
    )
    parser.add_argument(
        "--trace-sample",
        type=float,
        default=1.0,
        help="keep this fraction of traces (OTEL_TRACES_SAMPLER=parentbased_traceidratio); 1 keeps all",
    )
    parser.add_argument("--show-trace", action="store_true", help="print the spans of the last search's trace")
    parser.add_argument(
        "--on-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra variable for the 'on' console only (repeatable), e.g. OTEL_BSP_SCHEDULE_DELAY=10000",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="both consoles' LOG_LEVEL (the console's default, INFO: 'on' changes the lines' format, not how many)",
    )
    parser.add_argument(
        "--off-log-level",
        help="the 'off' console's LOG_LEVEL only, e.g. WARNING: a quieter baseline than the console's default, "
        "against which 'json_logs' costs the lines themselves as well as their format",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=POLL_SECONDS, help="the client's poll interval (SnowTrace's browser: 1)"
    )
    args = parser.parse_args()
    features = {f.strip() for f in args.features.split(",") if f.strip()}
    source = os.environ.get("DATABASE_URL", "")

    with throwaway_database(source, "_search_bench") as (database_url, name), ExitStack() as stack:
        os.environ.update(
            DATABASE_URL=database_url,
            REDIS_URL=args.redis_off,
            REDIS_CACHE_URL=args.redis_off,
            LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="snowbuddy.settings",
        )
        for key in [k for k in os.environ if k.startswith(("MATCHING_WORKFLOW", "OTEL_", "METRICS_", "LOG_FORMAT"))]:
            del os.environ[key]
        import django

        django.setup()
        import redis
        from django.core.management import call_command

        from matching.models import SkierProfile
        from matching.selectors import resort_regions
        from matching.services.keys import api_key_create

        for url in (args.redis_off, args.redis_on):
            redis.Redis.from_url(url).flushdb()
        call_command("migrate", verbosity=0)
        call_command("loaddata", "resorts", verbosity=0)
        regions = resort_regions()
        seconds = insert_profiles(0, args.profiles, regions)
        print(f"PostgreSQL database {name} (throwaway): {args.profiles:,} profiles inserted in {seconds:.1f} s")
        seekers = list(SkierProfile.objects.order_by("?").values_list("user_id", flat=True)[:200])
        shapes = search_shapes(max(args.searches, 20), regions, seekers)
        _, key = api_key_create(name="bench", is_trusted_service=True)
        from django.db import connections

        connections.close_all()

        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="observability-bench-")))
        common = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "AWS_"))},
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
            "MATCHING_SEARCH_RATE": "100000/min",
            "SNOWBUDDY_VAR_DIR": str(log_dir / "var"),
        }
        off_env = {
            **common,
            "REDIS_URL": args.redis_off,
            "REDIS_CACHE_URL": args.redis_off,
            "LOG_LEVEL": args.off_log_level or args.log_level,
        }
        on_env = {**common, "REDIS_URL": args.redis_on, "REDIS_CACHE_URL": args.redis_on, "LOG_LEVEL": args.log_level}
        collector = None
        if "tracing" in features:
            collector = OtlpReceiver().start()
            stack.callback(collector.stop)
            on_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
            if args.trace_sample < 1:
                on_env.update(
                    OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=str(args.trace_sample)
                )
        if "json_logs" in features:
            on_env["LOG_FORMAT"] = "json"  # the same lines as 'off' writes as text, at the same level
        metrics_token, worker_env, worker_port = "", {}, 0
        if "metrics" in features:
            # One multiprocess directory per service (web, worker), as docs/observability.md says.
            metrics_token, worker_port = secrets.token_urlsafe(16), free_port()
            on_env.update(METRICS_TOKEN=metrics_token, PROMETHEUS_MULTIPROC_DIR=str(log_dir / "web-metrics"))
            worker_env = {
                "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "worker-metrics"),
                "MATCHING_WORKER_METRICS_PORT": str(worker_port),
            }

        on_env.update(item.split("=", 1) for item in args.on_env)
        started = {
            "off": _console(stack, "off", off_env, log_dir),
            "on": _console(stack, "on", on_env, log_dir, worker_env),
        }
        consoles = {which: base for which, (base, _) in started.items()}
        sessions = {which: processes for which, (_, processes) in started.items()}
        cpu_before: dict[str, dict[str, float]] = {}
        scrapes: list[float] = []
        if metrics_token:
            stop = threading.Event()
            stack.callback(stop.set)
            urls = [f"{consoles['on']}/metrics", f"http://127.0.0.1:{worker_port}/metrics"]
            threading.Thread(target=_scraper, args=(urls, metrics_token, stop, scrapes), daemon=True).start()

        results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
        warmups = 4  # each console: both web workers, both worker processes
        for number in range(args.searches + warmups):
            _, prefs = shapes[number % len(shapes)]
            order = ("off", "on") if number % 2 == 0 else ("on", "off")
            if number == warmups:
                cpu_before = {w: {k: _session_cpu_seconds(sid) for k, sid in ps.items()} for w, ps in sessions.items()}
            for which in order:
                figures = _one(consoles[which], key, f"bench-{which}-{number}", prefs, args.poll_seconds)
                if number >= warmups:
                    results[which].append(figures)
        cpu_per_search = {
            which: {
                k: (_session_cpu_seconds(sid) - cpu_before[which][k]) * 1000 / args.searches for k, sid in ps.items()
            }
            for which, ps in sessions.items()
        }
        milestones = _milestones(warmups)

    print(f"\nPOST /matching/searches → succeeded, Celery engine, {args.profiles:,} profiles, "
          f"{args.searches} searches per console, alternating, polled every {args.poll_seconds:g} s; "
          f"'on' = {', '.join(sorted(features))}"
          + (f" (traces sampled at {args.trace_sample:g})" if args.trace_sample < 1 else "")
          + (f"; 'on' also {' '.join(args.on_env)}" if args.on_env else "")
          + f"; LOG_LEVEL {off_env['LOG_LEVEL']} (off), {on_env['LOG_LEVEL']} (on)")  # fmt: skip
    print(f"{'console':<9}{'server median ms':>18}{'p90':>9}{'client median ms':>18}{'p90':>9}")
    medians = {}
    for which, runs in results.items():
        server, client = [r[0] for r in runs], [r[1] for r in runs]
        medians[which] = (statistics.median(server), statistics.median(client))
        print(
            f"{which:<9}{medians[which][0]:>18.1f}{statistics.quantiles(server, n=10)[-1]:>9.1f}"
            f"{medians[which][1]:>18.1f}{statistics.quantiles(client, n=10)[-1]:>9.1f}"
        )
    print("the server's path: each milestone's median, ms after created_at (from the database)")
    print(f"  {'':<9}" + "".join(f"{name:>12}" for name in MILESTONES))
    for which, marks in milestones.items():
        print(f"  {which:<9}" + "".join(f"{marks.get(name, float('nan')):>12.1f}" for name in MILESTONES))
    print(
        "CPU per measured search (ms; polls included): "
        + "; ".join(
            f"{which}: web {cpu['web']:.1f}, worker {cpu['worker']:.1f}" for which, cpu in cpu_per_search.items()
        )
    )
    server_ratio = medians["on"][0] / medians["off"][0]
    client_ratio = medians["on"][1] / medians["off"][1]
    print(f"on/off median ratio: server {server_ratio:.3f}, client {client_ratio:.3f} (target ≤ {TARGET_RATIO})")
    spans = collector.spans() if collector is not None else []
    if collector is not None and not spans:
        print("collector: no spans (nothing sampled)")
    elif collector is not None:
        services = sorted({s.service for s in spans})
        per_trace = statistics.median(
            [sum(1 for s in spans if s.trace_id == t) for t in {s.trace_id for s in spans if not s.parent_span_id}]
        )
        print(
            f"collector: {len(spans)} spans in {collector.requests} OTLP requests from {', '.join(services)}; "
            f"median {per_trace:.0f} spans per trace"
        )
        _span_counts(spans)
        _timeline(spans)
    if spans and args.show_trace:
        root = [s for s in spans if not s.parent_span_id and "POST" in s.name][-1]
        print(f"the last search's trace ({root.trace_id}): service, span, duration, start after the POST's")
        for s in sorted(collector.spans(root.trace_id), key=lambda s: s.start_ns):
            after = (s.start_ns - root.start_ns) / 1e6
            print(f"  {s.service:<18} {s.name[:50]:<50} {s.duration_ms:8.2f} ms  +{after:.2f} ms")
    if scrapes:
        print(f"/metrics (console and worker port): {len(scrapes)} scrapes, median {statistics.median(scrapes):.1f} ms")


if __name__ == "__main__":
    main()
