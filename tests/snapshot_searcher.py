"""A process that searches its warm index over a host snapshot, for tests/test_index_snapshot.py.

Run as `python -m tests.snapshot_searcher <snapshot dir> <snapshots> <max seconds> <expected ids, comma-separated>`
with DATABASE_URL / REDIS_CACHE_URL naming the test's database and cache. Every search asks for
the riders the test keeps rewriting; each must return every one of them exactly once. It stops
once it has searched on `snapshots` host snapshots (or after `max seconds`) and prints one JSON
line: searches made, violations seen, snapshot names this process searched on.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")

import django

django.setup()

from matching.candidates.warm_index import WarmProfileIndex  # noqa: E402
from matching.engine import SearchRequest  # noqa: E402

RIDERS = {"role": "coach", "skill_level_min": 1, "skill_level_max": 10, "required_certifications": ["X-TEST"]}


def main() -> None:
    directory, wanted, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    expected = sorted(sys.argv[4].split(","))
    # Refresh on every search, a new snapshot whenever the overlay holds more than 5 profiles.
    index = WarmProfileIndex(
        staleness_seconds=0, overlap_seconds=5, reload_seconds=0, delta_max=5, snapshot_dir=directory
    )
    request = SearchRequest.from_preferences("seeker", {**RIDERS, "limit": 500})
    searches, violations, names = 0, [], []
    index.current()
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len([n for n in names if n]) < wanted:
        found = [m.user_id for m in index.current().search(request)]
        searches += 1
        name = index.stats().snapshot
        if not names or names[-1] != name:
            names.append(name)
        if sorted(found) != expected:
            violations.append({"twice": len(found) - len(set(found)), "missing": sorted(set(expected) - set(found))})
    print(json.dumps({"searches": searches, "violations": violations[:5], "snapshots": names}), flush=True)


if __name__ == "__main__":
    main()
