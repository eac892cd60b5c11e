"""Benchmark of the matching engine: ProfileIndex.search against the match_baseline loop.

Run with `make bench` (`.venv/bin/python bench/engine_bench.py`). Not a test: it prints a table
of medians and fails loudly if the two paths ever rank differently.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matching.engine import (
    Profile,
    ProfileIndex,
    SearchRequest,
    match_baseline,
)

# The 43 resorts of the reference data (shared/data/resorts_for_matcher.json), 8 regions.
RESORT_REGIONS = {
    "fukushima_inawashiro": "Fukushima Prefecture",
    "fukushima_nekoma_mountain": "Fukushima Prefecture",
    "gunma_marunuma_kogen": "Gunma Prefecture",
    "gunma_minakami_kogen": "Gunma Prefecture",
    "gunma_oze_iwakura": "Gunma Prefecture",
    "gunma_white_valley": "Gunma Prefecture",
    "hokkaido_furano": "Hokkaido",
    "hokkaido_niseko_moiwa": "Hokkaido",
    "hokkaido_rusutsu": "Hokkaido",
    "hokkaido_sapporo_teine": "Hokkaido",
    "hokkaido_tomamu": "Hokkaido",
    "iwate_appi_kogen": "Iwate Prefecture",
    "iwate_shizukuishi": "Iwate Prefecture",
    "hakuba_cortina": "Nagano Prefecture",
    "hakuba_goryu_47": "Nagano Prefecture",
    "hakuba_happo_one": "Nagano Prefecture",
    "hakuba_iwatake": "Nagano Prefecture",
    "hakuba_norikura": "Nagano Prefecture",
    "hakuba_tsugaike_kogen": "Nagano Prefecture",
    "nagano_karuizawa_prince": "Nagano Prefecture",
    "nagano_kurohime_kogen": "Nagano Prefecture",
    "nagano_madarao_kogen": "Nagano Prefecture",
    "nagano_nozawa_onsen": "Nagano Prefecture",
    "nagano_ryuoo_ski_park": "Nagano Prefecture",
    "myoko_akakura_kanko": "Niigata Prefecture",
    "myoko_akakura_onsen": "Niigata Prefecture",
    "myoko_ikenotaira": "Niigata Prefecture",
    "myoko_lotte_arai": "Niigata Prefecture",
    "myoko_suginohara": "Niigata Prefecture",
    "yuzawa_gala": "Niigata Prefecture",
    "yuzawa_ishiuchi_maruyama": "Niigata Prefecture",
    "yuzawa_iwappara": "Niigata Prefecture",
    "yuzawa_joetsu_kokusai": "Niigata Prefecture",
    "yuzawa_kagura": "Niigata Prefecture",
    "yuzawa_kandatsu": "Niigata Prefecture",
    "yuzawa_maiko_kogen": "Niigata Prefecture",
    "yuzawa_naeba": "Niigata Prefecture",
    "yuzawa_nakazato": "Niigata Prefecture",
    "yuzawa_naspa_ski_garden": "Niigata Prefecture",
    "yuzawa_park": "Niigata Prefecture",
    "tochigi_edelweiss": "Tochigi Prefecture",
    "tochigi_hunter_mountain_shiobara": "Tochigi Prefecture",
    "yamagata_zao_onsen": "Yamagata Prefecture",
}
REGIONS = sorted(set(RESORT_REGIONS.values()))
RESORTS = sorted(RESORT_REGIONS)
SEASON = [(date(2026, 12, 1) + timedelta(days=d)).isoformat() for d in range(120)]
ROLES = ("buddy", "student", "coach")
CERTIFICATIONS = ("CASI-1", "CASI-2", "CASI-3", "CASI-4", "CSIA-2", "SAJ-1")
LANGUAGES = ("ja", "en", "zh", "ko")
SEED = 20261128

SEARCH = {
    "role": "buddy",
    "skill_level_min": 4,
    "skill_level_max": 8,
    "resorts": ["hakuba_happo_one", "myoko_lotte_arai"],
    "regions": ["Hokkaido"],
    "dates": SEASON[40:46],
    "limit": 20,
}
VARIANTS = {
    "no knowledge": {},
    "knowledge": {"include_knowledge_score": True, "knowledge_score": 65},
}


def make_profiles(n: int, seed: int = SEED) -> list[Profile]:
    """Deterministic synthetic profiles: 1-4 resorts, some regions, 0-20 dates, ~10% closed."""
    rng = np.random.default_rng(seed)
    user_ids = [f"{x:016x}" for x in rng.integers(0, 2**63, n).tolist()]
    skill = rng.integers(1, 11, n).tolist()
    role = rng.choice(3, n, p=[0.5, 0.3, 0.2]).tolist()
    open_ = (rng.random(n) >= 0.1).tolist()
    knowledge = rng.integers(0, 101, n).tolist()
    has_knowledge = (rng.random(n) >= 0.2).tolist()
    n_resorts = rng.integers(1, 5, n).tolist()
    resort_draw = rng.integers(0, len(RESORTS), (n, 4), dtype=np.int16).tolist()
    n_regions = rng.choice(3, n, p=[0.6, 0.3, 0.1]).tolist()
    region_draw = rng.integers(0, len(REGIONS), (n, 2), dtype=np.int16).tolist()
    n_dates = rng.integers(0, 21, n).tolist()
    date_draw = rng.integers(0, len(SEASON), (n, 20), dtype=np.int16).tolist()
    n_certs = rng.integers(1, 3, n).tolist()
    cert_draw = rng.integers(0, len(CERTIFICATIONS), (n, 2), dtype=np.int16).tolist()
    language = rng.integers(0, len(LANGUAGES), n).tolist()

    profiles = []
    for i in range(n):
        is_coach = role[i] == 2
        profiles.append(
            Profile(
                user_id=user_ids[i],
                nickname=f"rider{i}",
                skill_level=skill[i],
                role=ROLES[role[i]],
                resorts=tuple(dict.fromkeys(RESORTS[j] for j in resort_draw[i][: n_resorts[i]])),
                regions=tuple(dict.fromkeys(REGIONS[j] for j in region_draw[i][: n_regions[i]])),
                available_dates=tuple(SEASON[d] for d in sorted(set(date_draw[i][: n_dates[i]]))),
                open_to_matching=open_[i],
                knowledge_score=knowledge[i] if has_knowledge[i] else None,
                certifications=(
                    tuple(dict.fromkeys(CERTIFICATIONS[j] for j in cert_draw[i][: n_certs[i]])) if is_coach else ()
                ),
                languages=(LANGUAGES[language[i]],),
            )
        )
    return profiles


def median_seconds(fn, runs: int):
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def default_runs(n: int) -> tuple[int, int]:
    """(engine runs, baseline runs) for a size."""
    if n <= 10_000:
        return 15, 5
    if n <= 100_000:
        return 15, 3
    return 5, 3


def bench_size(n: int, engine_runs: int, baseline_runs: int) -> list[dict]:
    """Build the index over n profiles, time both searches, and compare their rankings."""
    profiles = make_profiles(n)
    seeker_id = profiles[n // 2].user_id
    # Keep the collector off the profiles themselves: we time searches, not GC passes.
    gc.collect()
    gc.freeze()
    try:
        start = time.perf_counter()
        index = ProfileIndex.build(profiles, RESORT_REGIONS)
        build_s = time.perf_counter() - start
        rows = []
        for name, extra in VARIANTS.items():
            request = SearchRequest.from_preferences(seeker_id, {**SEARCH, **extra})
            engine_s, engine_result = median_seconds(partial(index.search, request), engine_runs)
            baseline_s, baseline_result = median_seconds(
                partial(match_baseline, request, profiles, RESORT_REGIONS), baseline_runs
            )
            rows.append(
                {
                    "n": n,
                    "search": name,
                    "build_s": build_s,
                    "engine_s": engine_s,
                    "baseline_s": baseline_s,
                    "results": len(engine_result),
                    "identical": engine_result == baseline_result,
                }
            )
        return rows
    finally:
        gc.unfreeze()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated profile counts")
    parser.add_argument("--runs", type=int, help="engine runs per size (default 15, 5 above 100k)")
    parser.add_argument("--baseline-runs", type=int, help="baseline runs per size (default 5, 3 above 10k)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, seed {SEED}")
    header = (
        f"{'profiles':>9}  {'search':<12}  {'build s':>7}  {'engine ms':>9}  {'baseline ms':>11}  "
        f"{'ratio':>6}  {'engine ns/p':>11}  {'base ns/p':>9}  {'results':>7}  {'identical':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for n in sizes:
        engine_runs, baseline_runs = default_runs(n)
        for row in bench_size(n, args.runs or engine_runs, args.baseline_runs or baseline_runs):
            rows.append(row)
            print(
                f"{n:>9,}  {row['search']:<12}  {row['build_s']:>7.2f}  {row['engine_s'] * 1e3:>9.2f}  "
                f"{row['baseline_s'] * 1e3:>11.1f}  {row['baseline_s'] / row['engine_s']:>5.0f}x  "
                f"{row['engine_s'] / n * 1e9:>11.1f}  {row['baseline_s'] / n * 1e9:>9.0f}  "
                f"{row['results']:>7}  {'yes' if row['identical'] else 'NO':>9}",
                flush=True,
            )
        gc.collect()
    print("medians; engine runs 15 (5 above 100k), baseline runs 5 (3 above 10k) unless --runs/--baseline-runs")

    for row in rows:
        if row["n"] == 100_000:
            met = row["engine_s"] <= 0.050 and row["baseline_s"] / row["engine_s"] >= 20
            print(f"target at 100k ({row['search']}): <= 50 ms and >= 20x baseline: {'met' if met else 'NOT MET'}")
    if not all(row["identical"] for row in rows):
        print("RANKINGS DIFFER between ProfileIndex.search and match_baseline", file=sys.stderr)
        return 1
    print("rankings identical (user ids, scores, breakdowns, order) for every size and search")
    return 0


if __name__ == "__main__":
    sys.exit(main())
