"""How many candidates the location filter keeps: the old service's literal filter against ours.

Run with `.venv/bin/python bench/location_filter_counts.py [--profiles N]`. The old filter kept a
candidate only on a literal overlap (a resort both sides named, or a region both sides named);
the console, like the old *scorer*, also counts the regions of each side's resorts. Prints, on the
demo profiles (matching/management/demo_profiles.py) and the 43 resorts of matching/fixtures/resorts.json, the
candidates each filter keeps for every one-resort and every one-region search.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matching.engine.rules import expand_regions  # noqa: E402
from matching.management.demo_profiles import demo_profiles  # noqa: E402 - plain Python, no Django


def resort_regions() -> dict[str, str]:
    rows = json.loads((ROOT / "matching" / "fixtures" / "resorts.json").read_text())
    return {row["pk"]: row["fields"]["region"] for row in rows}


def old_filter_keeps(profile: dict, resorts: list[str], regions: list[str]) -> bool:
    return bool(set(resorts) & set(profile["resorts"])) or bool(set(regions) & set(profile["regions"]))


def console_filter_keeps(profile: dict, resorts: list[str], regions: list[str], mapping: dict[str, str]) -> bool:
    if set(resorts) & set(profile["resorts"]):
        return True
    seeker = expand_regions(resorts, regions, mapping)
    return not seeker.isdisjoint(expand_regions(profile["resorts"], profile["regions"], mapping))


def measure(count: int = 5000, seed: int = 2026) -> dict[str, dict[str, float]]:
    """Totals of kept candidates per kind of search, for both filters, and their ratio."""
    mapping = resort_regions()
    profiles = [p for p in demo_profiles(count, mapping, seed=seed) if p["open_to_matching"]]
    searches = {
        "one resort": [([r], []) for r in sorted(mapping)],
        "one region": [([], [g]) for g in sorted(set(mapping.values()))],
    }
    searches["all location searches"] = searches["one resort"] + searches["one region"]
    report = {}
    for kind, cases in searches.items():
        old = [sum(old_filter_keeps(p, r, g) for p in profiles) for r, g in cases]
        ours = [sum(console_filter_keeps(p, r, g, mapping) for p in profiles) for r, g in cases]
        assert all(o <= c for o, c in zip(old, ours, strict=True)), "the console must keep a superset"
        report[kind] = {
            "searches": len(cases),
            "old_median": statistics.median(old),
            "console_median": statistics.median(ours),
            "ratio": sum(ours) / sum(old),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=5000)
    args = parser.parse_args()
    report = measure(args.profiles)
    print(f"open demo profiles of {args.profiles}, seed 2026")
    print(f"{'search':<22} {'searches':>8} {'old median':>11} {'console median':>15} {'console/old':>12}")
    for kind, row in report.items():
        medians = f"{row['old_median']:>11} {row['console_median']:>15}"
        print(f"{kind:<22} {row['searches']:>8} {medians} {row['ratio']:>11.2f}x")


if __name__ == "__main__":
    main()
