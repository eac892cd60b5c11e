"""Search path benchmark: claim → results stored, warm candidate index vs the cold path it replaced.

Long on purpose: a benchmark script is read top to bottom as one procedure (its worker
processes re-run this same file).

A script, not a test. With 10k, 100k and 1M profiles in PostgreSQL — a throwaway database
`<name>_search_bench` on the server of DATABASE_URL (CREATEDB needed), dropped at the end — it
measures, per size:

1. the warm index's cold load, in a fresh subprocess: seconds, the index's bytes, RSS growth;
2. at least 20 searches of varied shapes, each run twice on real Search rows (claimed, ranked,
   results stored): once by `search_run_on_celery` (the warm index) and once by the cold path it
   replaced (the ORM reads every prefiltered row, builds Profile objects and a ProfileIndex, then
   searches). Per stage (claim, candidates, search, store) the median over the searches, the
   total, the cold/warm ratio, and a check that both paths stored identical rankings;
3. at --post-size (default 100,000) only: POST /matching/searches → `succeeded` through a real
   Celery worker (prefork, 2 processes) on Redis behind gunicorn (2 workers), both started here on
   127.0.0.1 and stopped at the end; the Redis databases given are flushed first.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench9 .venv/bin/python bench/search_path_bench.py \\
        [--sizes 10000,100000,1000000] [--searches 24] [--post-searches 30] \\
        [--redis-url redis://127.0.0.1:6379/14] [--redis-cache-url redis://127.0.0.1:6379/13]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.bench_support import (  # noqa: E402
    server_seconds,
    spawn,
    submit_and_wait,
    throwaway_database,
    wait_healthy,
    wait_until,
)
from devtools.durable_local._http import free_port  # noqa: E402

STAGES = ("claim", "candidates", "search", "store")
SEED = 20261130
SEASON = [(date(2026, 12, 15) + timedelta(days=d)).isoformat() for d in range(120)]
CERTIFICATIONS = ("CASI-1", "CASI-2", "CASI-3", "CASI-4", "CSIA-2", "CSIA-3", "SAJ-1", "ISIA")
LANGUAGES = ("ja", "en", "zh", "ko")
TARGET_WARM_100K_MS = 30.0
TARGET_RATIO_100K = 30.0
TARGET_WARM_1M_MS = 150.0
TARGET_INDEX_1M_MB = 300.0
TARGET_POST_100K_MS = 150.0
TARGET_ENGINE_1M_MS = 10.0
TARGET_ENGINE_10M_MS = 100.0


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- data -----------------------------------------------------------------------------------------


def profile_rows(start: int, count: int, resort_regions: dict[str, str]):
    """Deterministic synthetic profiles shaped like SnowTrace's users (UUID ids), as COPY rows."""
    from matching.vocabulary.regions import region_mask

    rng = random.Random(SEED + start)
    resorts = sorted(resort_regions)
    regions = sorted(set(resort_regions.values()))
    for i in range(start, start + count):
        role = rng.choices(("buddy", "student", "coach"), weights=(5, 3, 2))[0]
        picked = rng.sample(resorts, rng.randint(1, 4))
        named = rng.sample(regions, rng.randint(1, 2)) if rng.random() < 0.4 else []
        dates = sorted(rng.sample(SEASON, rng.randint(0, 20)))
        reach = set(named) | {resort_regions[r] for r in picked}
        yield (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            f"rider{i}",
            rng.randint(6, 10) if role == "coach" else rng.randint(1, 10),
            role,
            json.dumps(picked),
            json.dumps(named),
            json.dumps(dates),
            rng.random() > 0.1,
            rng.randint(0, 100) if rng.random() < 0.8 else None,
            json.dumps(sorted(rng.sample(CERTIFICATIONS, rng.randint(1, 2))) if role == "coach" else []),
            json.dumps(sorted(rng.sample(LANGUAGES, rng.randint(1, 2)))),
            region_mask(reach),
        )


def insert_profiles(start: int, count: int, resort_regions: dict[str, str]) -> float:
    from django.db import connection

    began = time.perf_counter()
    columns = (
        "user_id, nickname, skill_level, role, resorts, regions, available_dates, open_to_matching, "
        "knowledge_score, certifications, languages, region_mask"
    )
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY matching_skierprofile ({columns}) FROM STDIN") as copy:
            for row in profile_rows(start, count, resort_regions):
                copy.write_row(row)
        cursor.execute("ANALYZE matching_skierprofile")
    return time.perf_counter() - began


def search_shapes(n: int, resort_regions: dict[str, str], seekers: list[str]) -> list[tuple[str, dict]]:
    """`n` searches of varied shapes (valid for the REST API too): roles, skill ranges, resorts,
    regions, dates, knowledge, certifications, limits; one in six names no location at all."""
    rng = random.Random(SEED)
    resorts = sorted(resort_regions)
    regions = sorted(set(resort_regions.values()))
    shapes = []
    for i in range(n):
        role = ("buddy", "student", "coach")[i % 3]
        low = rng.randint(1, 6)
        prefs: dict = {
            "role": role,
            "skill_level_min": low,
            "skill_level_max": rng.randint(low + 1, 10),
            "resorts": [] if i % 6 == 5 else rng.sample(resorts, rng.choice([1, 1, 2, 3])),
            "regions": [] if i % 6 == 5 else rng.sample(regions, rng.choice([0, 0, 1])),
            "dates": sorted(rng.sample(SEASON, rng.choice([0, 2, 6]))),
            "include_knowledge_score": i % 2 == 0,
            "knowledge_score": rng.choice([None, 40, 75]),
            "limit": rng.choice([10, 20, 20, 50]),
        }
        if role == "coach" and i % 4 == 2:
            prefs["required_certifications"] = [rng.choice(CERTIFICATIONS)]
        shapes.append((rng.choice(seekers), prefs))
    return shapes


# --- the two paths ------------------------------------------------------------------------------


def new_search(seeker_id: str, prefs: dict):
    from django.utils import timezone

    from matching.models import Engine, Search, SearchStatus

    return Search.objects.create(
        seeker_id=seeker_id,
        preferences=prefs,
        engine=Engine.CELERY,
        status=SearchStatus.DISPATCHED,
        deadline_at=timezone.now() + timedelta(hours=1),
    )


def run_warm(search_id, timings: dict) -> None:
    from workflows.celery_engine.run import search_run_on_celery

    outcome = search_run_on_celery(search_id=str(search_id), attempt=1, worker="bench-warm", timings=timings)
    if not outcome.startswith("succeeded"):
        raise SystemExit(f"warm search {search_id}: {outcome}")


def run_cold(search_id, timings: dict) -> None:
    """search_run_on_celery as it was before the warm index (same stages, same services)."""
    from matching.candidates.cold_path import prefiltered_profiles
    from matching.engine import ProfileIndex, SearchRequest
    from matching.selectors import resort_regions
    from matching.services.leases import search_claim
    from matching.services.searches import search_succeed

    began = time.perf_counter()
    search = search_claim(search_id=search_id, attempt=1, worker="bench-cold")
    timings["claim"] = (lap := time.perf_counter()) - began
    regions = resort_regions()
    profiles = list(
        prefiltered_profiles(seeker_id=search.seeker_id, preferences=search.preferences, resort_regions=regions)
    )
    timings["candidates"] = (mark := time.perf_counter()) - lap
    request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
    matches = ProfileIndex.build(profiles, regions).search(request)
    nicknames = {p.user_id: p.nickname for p in profiles}
    timings["search"] = (lap := time.perf_counter()) - mark
    if not search_succeed(search_id=search.pk, attempt=1, matches=matches, nicknames=nicknames):
        raise SystemExit(f"cold search {search_id} did not finish")
    timings["store"] = time.perf_counter() - lap


def cold_ranking(seeker_id: str, prefs: dict, regions: dict) -> list[list]:
    """The cold path's ranking (every prefiltered row read, an index built) as [user id, score]."""
    from matching.candidates.cold_path import prefiltered_profiles
    from matching.engine import ProfileIndex, SearchRequest

    profiles = list(prefiltered_profiles(seeker_id=seeker_id, preferences=prefs, resort_regions=regions))
    matches = ProfileIndex.build(profiles, regions).search(SearchRequest.from_preferences(seeker_id, prefs))
    return [[m.user_id, m.score] for m in matches]


def bench_engine(index, shapes) -> dict:
    """The engine alone on one index: the block search against the scan of every row (the
    unpartitioned path), alternating which runs first, on every shape; both answers compared."""
    from matching.engine import SearchRequest

    blocks, scan, scored, counted, identical = [], [], 0, 0, 0
    requests = [SearchRequest.from_preferences(seeker, prefs) for seeker, prefs in shapes]
    for request in requests[:2]:  # warm-up
        index.search_counted(request)
        index.search_counted(request, partitioned=False)
    for i, request in enumerate(requests):
        order = (True, False) if i % 2 == 0 else (False, True)
        answers = {}
        for partitioned in order:
            began = time.perf_counter()
            answers[partitioned] = index.search_counted(request, partitioned=partitioned)
            (blocks if partitioned else scan).append(time.perf_counter() - began)
        identical += answers[True] == answers[False]
        _, count, rows = index.search_scored(request)
        scored += rows
        counted += count
    return {
        "blocks_ms": statistics.median(blocks) * 1000,
        "blocks_p90_ms": statistics.quantiles(blocks, n=10)[-1] * 1000,
        "scan_ms": statistics.median(scan) * 1000,
        "scan_p90_ms": statistics.quantiles(scan, n=10)[-1] * 1000,
        "ratio": statistics.median(scan) / statistics.median(blocks),
        "scored_share": scored / max(counted, 1),
        "identical": identical,
        "searches": len(requests),
    }


def print_engine(label: str, figures: dict) -> None:
    print(
        f"engine at {label}, {figures['searches']} searches: block search median {figures['blocks_ms']:.2f} ms "
        f"(p90 {figures['blocks_p90_ms']:.2f}), scan of every row {figures['scan_ms']:.2f} ms "
        f"(p90 {figures['scan_p90_ms']:.2f}), scan/blocks {figures['ratio']:.1f}x; rows scored "
        f"{figures['scored_share']:.1%} of the matches; identical {figures['identical']}/{figures['searches']}"
    )


def bench_synthetic(size: int, shapes) -> dict:
    """The warm index's arrays repeated up to `size` profiles under new random user ids (the
    bench's distribution, without writing them to PostgreSQL); engine search times and memory."""
    import numpy as np

    from matching.candidates.warm_index import candidate_index
    from matching.engine import ProfileIndex

    base = candidate_index().current().base
    times = -(-size // len(base))
    rng = np.random.default_rng(SEED)
    index = ProfileIndex()
    index.resort_regions = base.resort_regions
    index.role_vocab = base.role_vocab
    for name in ("skill", "open", "knowledge", "role"):
        setattr(index, name, np.tile(np.asarray(getattr(base, name)), times)[:size])
    hex_ids = rng.integers(0, 2**63, size=(size, 2), dtype=np.int64).view(np.uint8).reshape(size, 16)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    index.user_ids = np.concatenate([digits[hex_ids >> 4], digits[hex_ids & 15]], axis=1).view("S32").ravel()
    index.uid_order = np.argsort(index.user_ids, kind="stable").astype(np.int64)
    index.uid_rank = np.empty(size, dtype=np.int64)
    index.uid_rank[index.uid_order] = np.arange(size, dtype=np.int64)
    for name in ("resorts", "regions", "dates", "certifications"):
        column = getattr(base, name)
        if column.words is None:
            raise SystemExit(f"--synthetic-size needs {name} as bitmasks (at most 256 distinct values)")
        tiled = type(column)(column.vocab, size, np.tile(np.asarray(column.non_empty), times)[:size])
        tiled.words = [np.tile(np.asarray(w), times)[:size] for w in column.words]
        setattr(index, name, tiled)
    index = index.in_block_order()  # as the builder leaves every index
    engine = bench_engine(index, shapes)
    return {"profiles": size, "index_mb": index.nbytes() / 1e6, "rss_mb": _rss_kb() / 1024, "engine": engine}


def stored_ranking(search_id) -> list[tuple]:
    from matching.models import SearchResult

    rows = SearchResult.objects.filter(search_id=search_id).order_by("rank")
    return list(rows.values_list("rank", "user_id", "nickname", "score", "breakdown"))


def bench_paths(shapes: list[tuple[str, dict]], warmups: int = 2) -> dict:
    """Each shape through both paths (alternating which goes first); per-stage seconds."""
    figures: dict[str, list[dict]] = {"warm": [], "cold": []}
    identical = 0
    result_counts = []
    for number, (seeker_id, prefs) in enumerate([*shapes[:warmups], *shapes]):
        searches = {"warm": new_search(seeker_id, prefs), "cold": new_search(seeker_id, prefs)}
        order = ("warm", "cold") if number % 2 == 0 else ("cold", "warm")
        timings: dict[str, dict] = {"warm": {}, "cold": {}}
        for path in order:
            (run_warm if path == "warm" else run_cold)(searches[path].pk, timings[path])
        if number < warmups:
            continue
        warm_ranking, cold_ranking = stored_ranking(searches["warm"].pk), stored_ranking(searches["cold"].pk)
        identical += warm_ranking == cold_ranking
        result_counts.append(len(warm_ranking))
        for path in figures:
            figures[path].append(timings[path])
    return {"figures": figures, "identical": identical, "searches": len(shapes), "results": result_counts}


def median_ms(runs: list[dict], stage: str | None = None) -> float:
    values = [sum(r.values()) if stage is None else r[stage] for r in runs]
    return statistics.median(values) * 1000


def p90_ms(runs: list[dict]) -> float:
    totals = sorted(sum(r.values()) for r in runs)
    return statistics.quantiles(totals, n=10)[-1] * 1000 if len(totals) > 1 else totals[0] * 1000


# --- the index's memory, in a process of its own --------------------------------------------------


def measure_index_in_subprocess(database_url: str, cache_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_CACHE_URL": cache_url, "LOG_LEVEL": "WARNING"}
    output = subprocess.run(
        [sys.executable, __file__, "--measure-index"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_index() -> None:
    import django

    django.setup()
    from django.db import connection

    from matching.candidates.warm_index import candidate_index

    connection.ensure_connection()
    before = _rss_kb()
    began = time.perf_counter()
    index = candidate_index()
    index.current()
    seconds = time.perf_counter() - began
    stats = index.stats()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "profiles": stats.profiles,
                "index_bytes": stats.index_bytes,
                "rss_before_kb": before,
                "rss_after_kb": _rss_kb(),
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


# --- N processes on one host: one copy each, one shared snapshot, or a prefork parent ------------


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _anon_kb() -> int:
    """This process's private anonymous memory (heap, numpy buffers), proportional share."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1])
    return 0


def _wait_for_file(path: Path, timeout: float, interval: float = 0.02) -> None:
    wait_until(path.exists, timeout, f"{path.name} to appear")


def index_worker(directory: Path, worker: int, prefork: int) -> None:
    """One worker process of --processes: idles until told to go, readies its warm index, runs
    the shared search shapes once and writes what it saw, then idles until told to stop."""
    import django

    django.setup()
    from django.db import connection

    from matching.candidates.warm_index import candidate_index
    from matching.engine import SearchRequest

    connection.ensure_connection()
    # What every worker has done before it holds an index (a Celery worker's broker and the cache
    # are Redis: their client modules are loaded; the ORM has run queries): done here before the
    # idle figure, so the index's share is the index, not the first use of these libraries.
    from django.core.cache import cache

    from matching.selectors import resort_regions

    cache.get("search-bench-warm-up")
    resort_regions()
    anon_idle = _anon_kb()
    (directory / f"started-{worker}").write_text(str(os.getpid()))
    while not (directory / f"go-{worker}").exists() and not (directory / "go-all").exists():
        time.sleep(0.01)
    began = time.perf_counter()
    index = candidate_index()
    index.current()
    ready = time.perf_counter() - began
    shapes = json.loads((directory / "shapes.json").read_text())

    def search_and_report(tag: str, ready_seconds: float) -> None:
        anon_ready = _anon_kb()
        rankings, times = [], []
        for seeker, prefs in shapes:
            request = SearchRequest.from_preferences(seeker, prefs)
            start = time.perf_counter()
            matches = index.current().search(request)
            times.append(time.perf_counter() - start)
            rankings.append([[m.user_id, m.score] for m in matches])
        stats = index.stats()
        report = {"pid": os.getpid(), "ready_seconds": ready_seconds, "snapshot": stats.snapshot,
                  "search_ms": [t * 1000 for t in times], "rankings": rankings,
                  "anon_ready_kb": anon_ready - anon_idle, "anon_searched_kb": _anon_kb() - anon_ready}  # fmt: skip
        (directory / f"{tag}.tmp").write_text(json.dumps(report))
        os.replace(directory / f"{tag}.tmp", directory / f"{tag}.json")

    def idle_until_stopped() -> None:
        # Also when the bench's directory is gone: a forked child may miss the stop file.
        while directory.exists() and not (directory / "stop").exists():
            time.sleep(0.05)

    if index.store is not None:  # the first process writes the snapshot: report once mapped
        deadline = time.monotonic() + 600
        while index.stats().snapshot is None and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = time.perf_counter() - began
    search_and_report(f"ready-{worker}", ready)
    if not prefork:
        idle_until_stopped()
        return
    # The prefork parent: its own figures first, then it forks when told (like Celery's parent
    # forking its pool after loading); the children search on the inherited index.
    while not (directory / "fork").exists():
        time.sleep(0.01)
    connection.close()  # children must not share the parent's socket
    children = []
    for child in range(prefork):
        pid = os.fork()
        if pid == 0:
            search_and_report(f"ready-{worker}-{child}", 0.0)
            idle_until_stopped()
            os._exit(0)
        children.append(pid)
    idle_until_stopped()
    for pid in children:
        os.waitpid(pid, 0)


def bench_processes(n: int, env: dict, shapes, cold_rankings, log_dir: Path) -> list[dict]:
    """The three ways N processes on one host can hold the index; a row of figures per way."""
    rows = []
    for way in ("one copy each", "host snapshot", "prefork parent"):
        directory = log_dir / f"procs-{way.replace(' ', '-')}"
        directory.mkdir()
        (directory / "shapes.json").write_text(json.dumps(shapes))
        worker_env = {**env, "MATCHING_INDEX_SNAPSHOT": "true" if way == "host snapshot" else "false",
                      "MATCHING_INDEX_SNAPSHOT_DIR": str(directory / "snapshot")}  # fmt: skip
        count = 1 if way == "prefork parent" else n
        with ExitStack() as stack:
            procs = []
            for worker in range(count):
                cmd = [sys.executable, __file__, "--index-worker", str(directory), "--worker-id", str(worker)]
                if way == "prefork parent":
                    cmd += ["--prefork", str(n)]
                procs.append(spawn(stack, cmd, worker_env, directory / f"worker-{worker}.log", new_session=True))
            stack.callback(lambda d=directory: (d / "stop").touch())
            for worker in range(count):
                _wait_for_file(directory / f"started-{worker}", 120)
            idle = {p.pid: _pss_kb(p.pid) for p in procs}
            (directory / "go-0").touch()  # the first process alone: loads (and writes the snapshot)
            _wait_for_file(directory / "ready-0.json", 900)
            first = json.loads((directory / "ready-0.json").read_text())
            one_index_kb = _pss_kb(procs[0].pid) - idle[procs[0].pid]
            (directory / "go-all").touch()
            (directory / "fork").touch()
            expected = [f"ready-{w}.json" for w in range(count)]
            expected += [f"ready-0-{c}.json" for c in range(n)] if way == "prefork parent" else []
            wait_until(
                lambda d=directory, names=expected: all((d / name).exists() for name in names),
                900,
                f"{way}: every process ready",
            )
            reports = [json.loads((directory / name).read_text()) for name in expected]
            pids = [r["pid"] for r in reports]
            total_kb = sum(_pss_kb(pid) for pid in pids)
            # Forked children have no idle figure of their own (they share the parent's idle
            # pages): their index share is not measurable this way; compare host PSS instead.
            idle_kb = None if way == "prefork parent" else sum(idle.values())
            identical = sum(r["rankings"] == cold_rankings for r in reports)
        others = [r["ready_seconds"] for r in reports[1:count]]
        rows.append({
            "way": way, "processes": len(pids), "total_mb": total_kb / 1024,
            "index_mb": None if idle_kb is None else (total_kb - idle_kb) / 1024, "one_index_mb": one_index_kb / 1024,
            "ratio": None if idle_kb is None else (total_kb - idle_kb) / max(1, one_index_kb),
            "first_ready": first["ready_seconds"], "others_ready": statistics.median(others) if others else None,
            "search_ms": statistics.median(t for r in reports for t in r["search_ms"]),
            "identical": identical, "reports": len(reports), "snapshot": first["snapshot"],
            "anon_ready_mb": [r["anon_ready_kb"] / 1024 for r in reports],
            "anon_searched_mb": [r["anon_searched_kb"] / 1024 for r in reports],
        })  # fmt: skip
    return rows


def print_processes(rows: list[dict], n_profiles: int) -> None:
    print(f"\n== {rows[0]['processes']} worker processes on one host, {n_profiles:,} profiles ==")
    print(f"{'way':<16}{'procs':>6}{'host PSS MB':>13}{'index MB':>10}{'one MB':>8}{'x one':>7}"
          f"{'1st ready s':>12}{'next ready s':>13}{'search ms':>10}  identical")  # fmt: skip
    for r in rows:
        others = "—" if r["others_ready"] is None else f"{r['others_ready']:.2f}"
        index_mb = "—" if r["index_mb"] is None else f"{r['index_mb']:.0f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['way']:<16}{r['processes']:>6}{r['total_mb']:>13.0f}{index_mb:>10}{r['one_index_mb']:>8.0f}"
              f"{ratio:>7}{r['first_ready']:>12.2f}{others:>13}{r['search_ms']:>10.1f}"
              f"  {r['identical']}/{r['reports']} processes")  # fmt: skip
    print("private memory (Pss_Anon) each process gained, MB: readying its index / running its searches")
    for r in rows:
        ready = ", ".join(f"{mb:.1f}" for mb in r["anon_ready_mb"])
        searched = ", ".join(f"{mb:.1f}" for mb in r["anon_searched_mb"])
        print(f"  {r['way']:<16}ready: {ready}\n  {'':<16}searches: {searched}")


# --- POST → succeeded through a real worker ---------------------------------------------------------


def bench_post(database_url: str, redis_url: str, cache_url: str, shapes, count: int, log_dir: Path) -> dict:
    import redis

    from matching.services.keys import api_key_create

    redis.Redis.from_url(redis_url).flushdb()
    redis.Redis.from_url(cache_url).flushdb()
    _, raw_key = api_key_create(name="bench", is_trusted_service=True)  # may name the user in X-User-Id
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "AWS_"))},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_CACHE_URL": cache_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
        "MATCHING_SEARCH_RATE": "100000/min",
        "LOG_LEVEL": "WARNING",
        "SNOWBUDDY_VAR_DIR": str(log_dir / "var"),
    }
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        worker_log = log_dir / "worker.log"
        spawn(
            stack,
            [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--concurrency", "2", "-l", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env,
            worker_log,
            new_session=True,
        )  # fmt: skip
        spawn(
            stack,
            [sys.executable, "-m", "gunicorn", "snowbuddy.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}"],
            env,
            log_dir / "gunicorn.log",
            new_session=True,
        )
        wait_until(lambda: "ready." in worker_log.read_text(), 120, "the Celery worker becoming ready")
        wait_healthy(base, 60, "gunicorn answering /health")
        client_ms, server_ms = [], []
        for number in range(count + 4):  # four warm-ups: both worker processes, both web workers
            _, prefs = shapes[number % len(shapes)]
            # Version 2 answers carry the lifecycle status and the timestamps.
            headers = {"X-API-Key": raw_key, "X-User-Id": f"bench-{number}", "Accept": "application/json; version=2"}
            body, seen = submit_and_wait(base, headers, prefs, poll_seconds=0.005)
            if number < 4:
                continue
            server_ms.append(server_seconds(body) * 1000)
            client_ms.append(seen * 1000)
    stage_lines = [line for line in worker_log.read_text().splitlines() if "indexed profiles (" in line]
    return {"client_ms": client_ms, "server_ms": server_ms, "worker_lines": stage_lines[-3:]}


# --- the report -------------------------------------------------------------------------------------


def print_size(n: int, load: dict, result: dict) -> dict:
    figures = result["figures"]
    print(f"\n== {n:,} profiles ({load['profiles']:,} open, in the warm index) ==")
    print(
        f"warm index (fresh process): loaded in {load['seconds']:.2f} s; index {load['index_bytes'] / 1e6:.1f} MB; "
        f"process RSS {load['rss_before_kb'] / 1024:.0f} → {load['rss_after_kb'] / 1024:.0f} MB "
        f"(+{(load['rss_after_kb'] - load['rss_before_kb']) / 1024:.0f} MB), peak {load['peak_rss_kb'] / 1024:.0f} MB"
    )
    print(f"per-stage medians over {result['searches']} searches (ms); results per search: "
          f"{min(result['results'])}..{max(result['results'])}")  # fmt: skip
    print(f"{'path':<6}" + "".join(f"{s:>12}" for s in STAGES) + f"{'total':>12}{'p90 total':>12}")
    for path in ("warm", "cold"):
        runs = figures[path]
        print(
            f"{path:<6}"
            + "".join(f"{median_ms(runs, s):>12.2f}" for s in STAGES)
            + f"{median_ms(runs):>12.2f}{p90_ms(runs):>12.2f}"
        )
    warm, cold = median_ms(figures["warm"]), median_ms(figures["cold"])
    ratio = cold / warm
    print(
        f"cold/warm total median: {ratio:.0f}x; identical rankings: {result['identical']}/{result['searches']} searches"
    )
    return {"n": n, "warm_ms": warm, "cold_ms": cold, "ratio": ratio, "index_mb": load["index_bytes"] / 1e6, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--searches", type=int, default=24, help="searches per size and path (at least 20)")
    parser.add_argument("--post-searches", type=int, default=30)
    parser.add_argument(
        "--engine-searches", type=int, default=60, help="shapes for the engine alone: block search vs scan"
    )
    parser.add_argument("--post-size", type=int, default=100_000, help="0 skips the worker measurement")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument(
        "--redis-cache-url", default=os.environ.get("BENCH_REDIS_CACHE_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="use the database named in DATABASE_URL and keep it (seed once, reuse after)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="at the largest size: N worker processes on this host, one index copy each vs one host "
        "snapshot vs a prefork parent (memory, time to ready, rankings)",
    )
    parser.add_argument("--process-searches", type=int, default=6, help="searches each of those processes runs")
    parser.add_argument(
        "--processes-only", action="store_true", help="skip the per-size load and path figures (--processes only)"
    )
    parser.add_argument(
        "--synthetic-size",
        type=int,
        default=0,
        help="also search an index of this many profiles made in memory by repeating the largest "
        "size's arrays under new user ids (e.g. 10000000): search median and memory",
    )
    parser.add_argument("--measure-index", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefork", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_index:
        measure_index()
        return
    if args.index_worker:
        index_worker(args.index_worker, args.worker_id, args.prefork)
        return
    if args.searches < 20:
        raise SystemExit("--searches must be at least 20")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    source = os.environ.get("DATABASE_URL", "")

    with (
        throwaway_database(source, "_search_bench", reuse=args.reuse_database) as (database_url, name),
        ExitStack() as stack,
    ):
        os.environ.update(
            DATABASE_URL=database_url,
            DATABASE_CONN_MAX_AGE="600",
            REDIS_URL=args.redis_url,
            REDIS_CACHE_URL=args.redis_cache_url,
            LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="snowbuddy.settings",
        )
        for key in [k for k in os.environ if k.startswith("MATCHING_WORKFLOW")]:
            del os.environ[key]
        import django

        django.setup()
        import redis
        from django.core.management import call_command

        from matching.candidates.warm_index import candidate_index, candidate_index_reset
        from matching.models import SkierProfile
        from matching.selectors import resort_regions

        redis.Redis.from_url(args.redis_cache_url).flushdb()
        call_command("migrate", verbosity=0)
        call_command("loaddata", "resorts", verbosity=0)
        regions = resort_regions()
        kind = "kept" if args.reuse_database else "throwaway"
        print(f"PostgreSQL database {name} ({kind}); Redis broker {args.redis_url}, cache {args.redis_cache_url}")
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="search-bench-")))

        summaries, post, engines = [], None, {}
        # A kept database already holds the first `have` profiles of the deterministic sequence.
        have = SkierProfile.objects.count()
        for n in sizes:
            if n < have:
                raise SystemExit(f"the database holds {have:,} profiles, more than the size {n:,}")
            seconds = insert_profiles(have, n - have, regions)
            print(f"\ninserted {n - have:,} profiles in {seconds:.1f} s (COPY), {n:,} in all")
            have = n
            if not args.processes_only:
                load = measure_index_in_subprocess(database_url, args.redis_cache_url)
            candidate_index_reset()
            candidate_index().current()  # this process's own warm index, loaded before timing
            seekers = list(SkierProfile.objects.order_by("?").values_list("user_id", flat=True)[:200])
            shapes = search_shapes(args.searches, regions, seekers)
            engine_shapes = search_shapes(args.engine_searches, regions, seekers)
            engines[n] = bench_engine(candidate_index().current().base, engine_shapes)
            print_engine(f"{n:,} profiles", engines[n])
            if not args.processes_only:
                summaries.append(print_size(n, load, bench_paths(shapes)))
            if n == args.post_size:
                post = bench_post(
                    database_url, args.redis_url, args.redis_cache_url, shapes, args.post_searches, log_dir
                )
                client, server = post["client_ms"], post["server_ms"]
                print(
                    f"\nPOST /matching/searches → succeeded, real worker on Redis, {n:,} profiles, {len(server)} runs:"
                )
                print(
                    f"  server (created_at → finished_at) median {statistics.median(server):.1f} ms, "
                    f"p90 {statistics.quantiles(server, n=10)[-1]:.1f} ms, min {min(server):.1f}, max {max(server):.1f}"
                )
                print(
                    f"  client (POST sent → GET shows succeeded, polled every 5 ms) median "
                    f"{statistics.median(client):.1f} ms, p90 {statistics.quantiles(client, n=10)[-1]:.1f} ms"
                )
                for line in post["worker_lines"]:
                    print(f"  worker: {line.split(': ', 1)[-1][:160]}")

        if args.processes:
            n = sizes[-1]
            process_shapes = shapes[: args.process_searches]
            cold = [cold_ranking(seeker, prefs, regions) for seeker, prefs in process_shapes]
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "AWS_"))},
                "DATABASE_URL": database_url,
                "REDIS_CACHE_URL": args.redis_cache_url,
                "LOG_LEVEL": "WARNING",
            }
            process_rows = bench_processes(args.processes, env, process_shapes, cold, log_dir)
            print_processes(process_rows, n)
        if args.synthetic_size:
            synthetic = bench_synthetic(args.synthetic_size, engine_shapes)
            engines[args.synthetic_size] = synthetic["engine"]
            print(
                f"\n== {synthetic['profiles']:,} profiles made in memory (the {sizes[-1]:,}-profile index's arrays "
                f"repeated under new user ids) ==\n"
                f"index {synthetic['index_mb']:.0f} MB; process RSS {synthetic['rss_mb']:.0f} MB"
            )
            print_engine(f"{synthetic['profiles']:,} profiles", synthetic["engine"])

        print("\ntargets:")
        by_size = {s["n"]: s for s in summaries}
        if 100_000 in by_size:
            s = by_size[100_000]
            ok = s["warm_ms"] <= TARGET_WARM_100K_MS and s["ratio"] >= TARGET_RATIO_100K
            print(f"  100k warm ≤ {TARGET_WARM_100K_MS:.0f} ms and ≥ {TARGET_RATIO_100K:.0f}x cold: "
                  f"{s['warm_ms']:.1f} ms, {s['ratio']:.0f}x → {'met' if ok else 'NOT met'}")  # fmt: skip
        if 1_000_000 in by_size:
            s = by_size[1_000_000]
            ok = s["warm_ms"] <= TARGET_WARM_1M_MS and s["index_mb"] <= TARGET_INDEX_1M_MB
            print(f"  1M warm ≤ {TARGET_WARM_1M_MS:.0f} ms, index ≤ {TARGET_INDEX_1M_MB:.0f} MB: "
                  f"{s['warm_ms']:.1f} ms, {s['index_mb']:.0f} MB → {'met' if ok else 'NOT met'}")  # fmt: skip
        if post:
            median_post = statistics.median(post["server_ms"])
            ok = median_post <= TARGET_POST_100K_MS
            print(f"  POST → succeeded ≤ {TARGET_POST_100K_MS:.0f} ms median at {args.post_size:,}: "
                  f"{median_post:.1f} ms → {'met' if ok else 'NOT met'}")  # fmt: skip
        for size, target in ((1_000_000, TARGET_ENGINE_1M_MS), (10_000_000, TARGET_ENGINE_10M_MS)):
            if size in engines:
                median = engines[size]["blocks_ms"]
                print(f"  engine search ≤ {target:.0f} ms median at {size:,}: {median:.1f} ms → "
                      f"{'met' if median <= target else 'NOT met'}")  # fmt: skip
        all_identical = all(s["identical"] == s["searches"] for s in [*summaries, *engines.values()])
        print(f"  identical rankings on every search: {'yes' if all_identical else 'NO'}")
        if not all_identical:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
