"""The console's Prometheus series that processes record as things happen (docs/observability.md).

Counters and histograms are incremented by the services that own each transition, after the
transaction that made it commits, so a rolled-back transition is never counted. With
PROMETHEUS_MULTIPROC_DIR set (before this module is first imported) every process writes its
values to files there and /metrics adds them up across gunicorn workers and Celery children.
Series read from the database (outbox depth, stuck searches…) are not here: one collector
computes them at scrape time (workflows/metrics_collector.py).

Labels are low-cardinality only: engine, status, stage, outcome, route pattern. Never a search
id, a user id or a raw path.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge, Histogram

# Submit → finish spans milliseconds (a warm Celery search) to an hour (a durable search waiting
# on GlobalCoach); stages and HTTP requests stay well under a minute.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOAD_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_outbox_log = logging.getLogger("matching.outbox")

SEARCHES_SUBMITTED = Counter("snowbuddy_searches_submitted", "Searches submitted (attempt 1), by engine.", ["engine"])
SEARCHES_RETRIED = Counter("snowbuddy_searches_retried", "New attempts of a search (staff or API retry).", ["engine"])
SEARCHES_FINISHED = Counter(
    "snowbuddy_searches_finished",
    "Attempts that reached a terminal status, by engine and status.",
    ["engine", "status"],
)
SEARCHES_CLAIMED = Counter("snowbuddy_searches_claimed", "Attempts claimed by a Celery worker.", ["engine"])
SEARCH_DURATION = Histogram(
    "snowbuddy_search_duration_seconds",
    "Submit (or retry) → terminal status of an attempt, by engine, shape (plain or vetted) and terminal status.",
    ["engine", "shape", "status"],
    buckets=DURATION_BUCKETS,
)
SEARCH_STAGE = Histogram(
    "snowbuddy_search_stage_seconds",
    "Seconds of each stage of a Celery run: claim, candidates (index refresh), search, store.",
    ["engine", "stage"],
    buckets=STAGE_BUCKETS,
)
CALLBACKS = Counter("snowbuddy_workflow_callbacks", "Signed workflow callbacks received, by outcome.", ["outcome"])
LEASE_RECOVERIES = Counter(
    "snowbuddy_lease_recoveries", "Expired Celery leases taken back, by outcome (resent or failed).", ["outcome"]
)
FAILOVERS = Counter(
    "snowbuddy_failovers",
    "Searches meant for the durable engine sent to Celery while the Durable API breaker was open.",
)
BREAKER_TRANSITIONS = Counter(
    "snowbuddy_durable_breaker_transitions", "Durable API circuit breaker openings and closings.", ["to"]
)
OUTBOX_SENDS = Counter(
    "snowbuddy_outbox_sends",
    "Outbox sends by outbox (dispatch, notification, vetting) and outcome (sent, retry, dead_letter, refused).",
    ["outbox", "outcome"],
)
HTTP_REQUESTS = Counter(
    "snowbuddy_http_requests", "HTTP requests by route pattern, method and status.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "snowbuddy_http_request_duration_seconds",
    "HTTP request latency by route pattern and method.",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
)
INDEX_PROFILES = Gauge(
    "snowbuddy_warm_index_profiles",
    "Profiles a search can see in the warm candidate index (the largest among live processes).",
    multiprocess_mode="livemax",
)
INDEX_LOADED = Gauge(
    "snowbuddy_warm_index_loaded_timestamp_seconds",
    "Unix time of the oldest live warm index's last full load from the database.",
    multiprocess_mode="livemin",
)
INDEX_REFRESHED = Gauge(
    "snowbuddy_warm_index_refreshed_timestamp_seconds",
    "Unix time a live warm index last caught up with the database (the most recent among processes).",
    multiprocess_mode="livemax",
)
INDEX_LOAD = Histogram(
    "snowbuddy_warm_index_load_seconds", "Seconds a full load of the warm candidate index took.", buckets=LOAD_BUCKETS
)


def search_shape(preferences: dict | None) -> str:
    """`vetted` for a coach search that waits on GlobalCoach (minutes to hours), else `plain`."""
    preferences = preferences or {}
    return "vetted" if preferences.get("role") == "coach" and preferences.get("vetting_required") else "plain"


def search_finished(*, engine: str, shape: str, status: str, seconds: float) -> None:
    SEARCHES_FINISHED.labels(engine=engine, status=status).inc()
    SEARCH_DURATION.labels(engine=engine, shape=shape, status=status).observe(max(seconds, 0.0))


def search_stages(*, engine: str, stages: dict[str, float]) -> None:
    for stage, seconds in stages.items():
        SEARCH_STAGE.labels(engine=engine, stage=stage).observe(seconds)


def index_loaded(*, profiles: int, load_seconds: float) -> None:
    now = time.time()
    INDEX_LOAD.observe(load_seconds)
    INDEX_PROFILES.set(profiles)
    INDEX_LOADED.set(now)
    INDEX_REFRESHED.set(now)


def index_refreshed(*, profiles: int) -> None:
    INDEX_PROFILES.set(profiles)
    INDEX_REFRESHED.set(time.time())


def outbox_send(
    *, outbox: str, outcome: str, search_id, attempt: int | None, engine: str = "", detail: str = ""
) -> None:
    """Count one outbox send and log it: one line per try of a dispatch, notification, vetting request or
    user-core event (which belongs to no search)."""
    OUTBOX_SENDS.labels(outbox=outbox, outcome=outcome).inc()
    level = logging.WARNING if outcome in ("dead_letter", "refused", "failed") else logging.INFO
    _outbox_log.log(
        level,
        "%s send%s: %s%s",
        outbox,
        f" of search {search_id} attempt {attempt}" if search_id is not None else "",
        outcome,
        f" ({detail})" if detail else "",
        extra={
            "search_id": "" if search_id is None else str(search_id),
            "attempt": attempt,
            "engine": engine,
            "outbox": outbox,
            "outcome": outcome,
            "detail": detail[:300],
        },
    )
