"""Lenient parse benchmark: what SnowTrace's original body (lenient, names resolved, warnings kept)
costs a submit, against the console's strict body of the same search, in the same run.

A script, not a test. It builds a throwaway database (`<name>_parse_bench` on the PostgreSQL
server of DATABASE_URL, dropped at the end), loads the resort list, and then, interleaved, so
both see the same machine:

* POST /matching/searches (Django's test client, the whole view: authentication, parse,
  validation, throttles, the search and its dispatch record written) with the console's body and
  with the browser's body of the same search, written as people write it (`Happo-one`, `naeba`,
  a `date_range`, two unknown fields: warnings and an audit event);
* the parse alone (the serializer's `is_valid`) of each body.

It prints the median and p90 of each, and the difference of the medians. The broker is a
filesystem broker in a temporary directory (nothing consumes it); the limits are lifted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/lenient_parse_bench.py [--rounds 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATES = ["2027-01-05", "2027-01-06", "2027-01-07", "2027-01-08", "2027-01-09"]
CONSOLE_BODY = {
    "role": "buddy",
    "skill_level_min": 3,
    "skill_level_max": 8,
    "resorts": ["hakuba_happo_one", "yuzawa_naeba"],
    "dates": DATES,
    "limit": 100,
}
BROWSER_BODY = {
    "preferred_resorts": ["Happo-one", "naeba"],
    "date_range": {"start": DATES[0], "end": DATES[-1]},
    "skill_level_range": [3, 8],
    "preferred_role": "buddy",
}
# The same with two fields the console ignores: warnings in the answer and an audit event.
UNKNOWN_FIELDS = {"preferred_languages": ["en"], "travel_dates": {"start": DATES[0], "end": DATES[-1]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="parse-bench-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "snowbuddy.settings",
            "SNOWBUDDY_VAR_DIR": var,
            "REDIS_URL": "",
            "REDIS_CACHE_URL": "",
            "CELERY_BROKER_URL": "",
            "MATCHING_WORKFLOW_URL": "",
            "MATCHING_SEARCH_RATE": "1000000/min",
            "MATCHING_KEY_RATE": "1000000/min",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_databases, teardown_databases

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # Django's test client's host
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        sys.exit("set DATABASE_URL=postgres://… (the submit's dispatch relay writes from a thread: not SQLite)")
    db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_parse_bench"
    state = setup_databases(verbosity=0, interactive=False)
    try:
        call_command("loaddata", "resorts", verbosity=0)
        run(args.rounds, Client())
    finally:
        from django.db import connections

        from workflows.dispatch.submit import dispatch_relay

        dispatch_relay.wait_idle(timeout=30)
        connections.close_all()
        teardown_databases(state, verbosity=0)


def run(rounds: int, client) -> None:
    from matching.api.search_input import search_preferences_serializer
    from matching.services.keys import api_key_create
    from workflows.dispatch.submit import dispatch_relay

    key = api_key_create(name="bench", is_trusted_service=True)[1]
    headers = {"X-API-Key": key, "X-User-Id": "bench-user"}
    bodies = {
        "console (strict)": CONSOLE_BODY,
        "browser (lenient)": BROWSER_BODY,
        "browser + 2 unknown fields": {**BROWSER_BODY, **UNKNOWN_FIELDS},
    }
    raw = {name: json.dumps(body) for name, body in bodies.items()}

    def submit(name: str) -> float:
        started = time.perf_counter()
        response = client.post("/matching/searches", raw[name], content_type="application/json", headers=headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 202, response.content
        dispatch_relay.wait_idle(timeout=30)  # the relay's send, after the answer, is not the submit's time
        return elapsed

    def parse(name: str) -> float:
        started = time.perf_counter()
        serializer = search_preferences_serializer(json.loads(raw[name]), seeker_id="bench-user")
        assert serializer.is_valid(), serializer.errors
        return time.perf_counter() - started

    # The two bodies mean the same search.
    stored = [search_preferences_serializer(b, seeker_id="x") for b in bodies.values()]
    assert all(s.is_valid() for s in stored)
    assert all(s.validated_data == stored[0].validated_data for s in stored)

    for name in bodies:  # warm-up: imports, the resort name table, connections
        for _ in range(20):
            submit(name), parse(name)
    timings = {(kind, name): [] for kind in ("submit", "parse") for name in bodies}
    names = list(bodies)
    for round_no in range(rounds):
        shift = round_no % len(names)  # each body goes first, second and third equally often
        for name in names[shift:] + names[:shift]:
            timings[("submit", name)].append(submit(name))
            timings[("parse", name)].append(parse(name))

    print(f"{rounds} rounds, interleaved (the order rotating); database {client_db()}")
    print("| measure | body | median | p90 |")
    print("|---|---|---|---|")
    medians = {}
    for (kind, name), values in timings.items():
        values.sort()
        medians[(kind, name)] = statistics.median(values)
        p90 = values[int(len(values) * 0.9)]
        print(f"| {kind} | {name} | {medians[(kind, name)] * 1000:.3f} ms | {p90 * 1000:.3f} ms |")
    strict, *lenient = bodies
    for name in lenient:
        for kind in ("submit", "parse"):
            added = (medians[(kind, name)] - medians[(kind, strict)]) * 1000
            print(f"{name} - {strict}, {kind} median: {added:+.3f} ms (target: <= 1 ms)")


def client_db() -> str:
    from django.db import connection

    return connection.vendor


if __name__ == "__main__":
    main()
