"""A production-sized console database, generated inside PostgreSQL (`python -m devtools.seed_scale`).

Rows are produced by `INSERT … SELECT … FROM generate_series(…)` on the server, so a million
searches with their events, results, dispatches, executions and webhook deliveries take minutes
on two cores, and nothing crosses the wire but the statements.

How it is shaped:

* Every random choice is a hash of (seed, row number, purpose) (`pg_temp.seed_u`), so the same
  seed and `--until` give the same rows; no `random()` whose order a plan could change.
* Each search follows a *lifecycle path* built here in Python (`build_paths`): the ordered events
  an attempt goes through on its engine (submitted, dispatched, claimed or running, awaiting
  vetting, intervened, drift flagged, the outcome, retried…), each with a time window after the
  search's creation. The windows of one path never overlap, so events come out in order, and the
  search's own timestamps (started, finished, updated, deadline) are computed from the very same
  windows and hashes as its events.
* Statements name their columns through the models' `_meta`; a column the seed does not set gets
  its database default, NULL, or the field's Python default (`insert_select`), so new fields with
  defaults do not break it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import product

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import NOT_PROVIDED, AutoField, BigAutoField, Model, SmallAutoField

from matching.engine import rules
from matching.models import (
    STAFF_ACTOR_PREFIX,
    Engine,
    NotificationState,
    Search,
    SearchEvent,
    SearchEventKind,
    SearchNotification,
    SearchResult,
    SearchStatus,
    StaffAction,
    StaffActionKind,
    StaffActionOutcome,
    staff_actor,
)
from matching.regions import KNOWN_REGIONS
from workflows.models import (
    DriftState,
    ExecutionTimelineEntry,
    SearchDispatch,
    TimelineKind,
    TimelineSource,
    WebhookDelivery,
    WebhookOutcome,
    WorkflowExecution,
)

S = SearchStatus
K = SearchEventKind
TERMINAL = (S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT)
# vetting, intervened, running observed (durable), flagged (drift), dead-lettered callback, acknowledged by staff
FLAG_NAMES = "virfda"
NO_FLAGS = "-" * len(FLAG_NAMES)

# Search volume by hour of day in Japan (most users plan in the evening and early morning) and
# by ISO weekday (Mon..Sun): weekends are busier.
HOUR_OF_DAY_JST = (
    0.45, 0.25, 0.15, 0.10, 0.10, 0.20, 0.50, 0.95, 1.15, 1.05, 0.90, 0.85,
    1.00, 0.90, 0.80, 0.80, 0.85, 0.95, 1.10, 1.30, 1.50, 1.55, 1.30, 0.85,
)  # fmt: skip
WEEKDAY = (0.90, 0.88, 0.90, 0.95, 1.15, 1.35, 1.20)
STAFF = tuple(staff_actor(name) for name in ("aiko", "ben", "chiara", "daisuke", "emma"))
CANCEL_REASONS = ("user changed their mind", "duplicate search", "user withdrew", "wrong dates entered")
RETRY_REASONS = ("stale profiles", "provider outage resolved", "user asked again", "rerun after the fix")
ACK_NOTES = ("known emulator lag, item caught up", "checked the execution by hand", "user informed")
CELERY_ERRORS = (
    "gave up after 4 tries: OperationalError: server closed the connection unexpectedly",
    "internal error: ValueError",
    "gave up after 4 tries: ConnectionError: the profile source did not answer",
)
DURABLE_ERRORS = (
    "the workflow reported failed",
    "candidates_unavailable: the candidates page timed out",
    "vetting_rejected: no candidate was approved",
)
DRIFT_REASONS = (
    "the durable execution does not exist (expired, deleted or never started) while the console says running",
    "running for 2400s with an item with no execution ARN (dispatch sent)",
    "could not read the durable execution: ThrottlingException: Rate exceeded",
)
NICK_PARTS = ("Powder", "Carve", "Mogul", "Yuki", "Tree", "Corduroy", "Bluebird", "Kaze", "Sora", "Ridge")
CERTIFICATIONS = ("CASI-1", "CASI-2", "CASI-3", "CASI-4", "CSIA-2", "CSIA-3", "SAJ-1", "ISIA")
ARN_PREFIX = "arn:aws:lambda:ap-northeast-1:123456789012:function:snowbuddy-matching:live/durable-execution/"
TEMP_TABLES = (
    "seed_hours", "seed_plan", "seed_paths", "seed_steps", "seed_attempts", "seed_combos",
    "seed_timeline_template", "seed_timeline_events",
)  # fmt: skip
RESULT_STRIDE = 7919  # a prime: rank r's candidate is (base + r·stride) mod pool, distinct within a search


# --- lifecycle paths ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    attempt: int
    kind: str
    from_status: str
    to_status: str
    actor: str  # may hold {seeker}, {staff}, {worker}, {canceller}
    detail: str  # may hold {engine}, {results}, {error}, {reason}, {retry_reason}, {drift_reason}
    lo: float  # seconds after the search's created_at
    hi: float


@dataclass
class Attempt:
    number: int
    status: str
    first: int  # step indexes into Path.steps
    dispatched: int | None = None
    started: int | None = None
    ended: int | None = None
    version: int = 0  # the DynamoDB item version its mirror row ends on (durable)


@dataclass
class Path:
    key: str
    engine: str
    steps: list[Step] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def updated(self) -> int:
        """The last step that changed the search row (a status transition)."""
        return max(i for i, s in enumerate(self.steps) if s.to_status)

    @property
    def seconds(self) -> float:
        return self.steps[-1].hi


def path_key(engine: str, status: str, attempts: int, flags: str) -> str:
    return f"{engine}|{status}|{attempts}|{flags}"


class _Builder:
    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout, self.t = path, timeout, 0.0

    def add(self, attempt: int, kind: str, frm: str, to: str, actor: str, detail: str, gap: tuple[float, float]):
        lo, hi = self.t + gap[0], self.t + gap[1]
        return self._append(Step(attempt, str(kind), str(frm), str(to), actor, detail, lo, hi))

    def at_deadline(self, attempt: Attempt, kind: str, frm: str, actor: str, detail: str) -> int:
        # The deadline is the attempt's first event + timeout; the sweeper or the workflow acts
        # within a minute after it.
        lo = max(self.t + 0.001, self.path.steps[attempt.first].hi + self.timeout)
        return self._append(Step(attempt.number, str(kind), str(frm), str(S.TIMED_OUT), actor, detail, lo, lo + 60))

    def _append(self, step: Step) -> int:
        self.path.steps.append(step)
        self.t = step.hi
        return len(self.path.steps) - 1


def _run_attempt(b: _Builder, number: int, engine: str, outcome: str, flags: set[str], previous: str | None) -> Attempt:
    durable = engine == Engine.DURABLE
    if previous is None:
        first = b.add(number, K.SUBMITTED, "", S.PENDING, "user:{seeker}", "engine={engine}", (0, 0))
    else:
        detail = f"attempt {number} on {{engine}}: {{retry_reason}}"
        first = b.add(number, K.RETRIED, previous, S.PENDING, "{staff}", detail, (600, 72_000))
    attempt = Attempt(number, str(outcome), first)
    b.path.attempts.append(attempt)
    if outcome == S.PENDING:
        return attempt
    attempt.dispatched = b.add(number, K.DISPATCHED, S.PENDING, S.DISPATCHED, "system", "", (0.01, 0.25))
    attempt.version = 1 if durable else 0  # the start marker on the item
    flagged = durable and "f" in flags
    if outcome == S.DISPATCHED:
        if flagged:
            b.add(number, K.DRIFT_FLAGGED, "", "", "reconciler", "{drift_reason}", (900, 3600))
        return attempt
    state = S.DISPATCHED
    vetting = durable and "v" in flags
    if not durable:
        attempt.started = b.add(number, K.CLAIMED, S.DISPATCHED, S.RUNNING, "celery:{worker}", "", (0.005, 0.8))
        state = S.RUNNING
    else:
        attempt.version += 1  # mark-running
        if vetting or "r" in flags or outcome == S.RUNNING:
            attempt.started = b.add(number, K.RUNNING, S.DISPATCHED, S.RUNNING, "durable-sync", "", (0.5, 5))
            state = S.RUNNING
    if outcome == S.RUNNING:
        if flagged:
            b.add(number, K.DRIFT_FLAGGED, "", "", "reconciler", "{drift_reason}", (900, 3600))
        return attempt
    final_gap = (0.05, 2.5)
    if vetting:
        attempt.version += 1
        b.add(number, K.AWAITING_VETTING, S.RUNNING, S.AWAITING_VETTING, "durable-sync", "", (1, 40))
        state = S.AWAITING_VETTING
        if flagged:
            b.add(number, K.DRIFT_FLAGGED, "", "", "reconciler", "{drift_reason}", (300, 1800))
        if outcome == S.AWAITING_VETTING:
            return attempt
        if "i" in flags and outcome in (S.SUCCEEDED, S.FAILED):
            decision = "approve (approved: all)" if outcome == S.SUCCEEDED else "reject (approved: none)"
            b.add(number, K.INTERVENED, "", "", "{staff}", f"{decision} answered for GlobalCoach", (300, 5400))
            final_gap = (1, 6)
        else:
            final_gap = (120, 7200)
    if durable:
        attempt.version += 2  # write-result, then the callback delivery state
    reporter = "durable-sync" if durable and "d" in flags else ("durable-callback" if durable else "system")
    if outcome == S.SUCCEEDED:
        attempt.ended = b.add(number, K.SUCCEEDED, state, S.SUCCEEDED, reporter, "{results} results", final_gap)
    elif outcome == S.FAILED:
        attempt.ended = b.add(number, K.FAILED, state, S.FAILED, reporter, "{error}", final_gap)
    elif outcome == S.TIMED_OUT:
        actor = reporter if vetting else "system"  # a vetting wait times out in the workflow, else the sweeper
        attempt.ended = b.at_deadline(attempt, K.TIMED_OUT, state, actor, "{error}")
    elif outcome == S.CANCELLED:
        attempt.ended = b.add(number, K.CANCELLED, state, S.CANCELLED, "{canceller}", "{reason}", (2, 600))
        if durable:
            b.add(number, K.REMOTE_CANCEL, "", "", "system", "durable execution stopped", (0.05, 1.5))
    if "a" in flags and attempt.ended is not None:
        # Staff saw the flag (or the dead letter) and acknowledged it: the markers are cleared.
        b.add(number, K.DRIFT_ACKNOWLEDGED, "", "", "{staff}", "{ack_note}", (600, 43_200))
    return attempt


def build_path(engine: str, status: str, attempts: int, flags: str, *, timeout: float) -> Path:
    """The events of a search that ends in `status` on its `attempts`-th attempt."""
    path = Path(path_key(engine, status, attempts, flags), engine)
    b = _Builder(path, timeout)
    wanted = {f for f in flags if f != "-"}
    previous = None
    for number in range(1, attempts + 1):
        last = number == attempts
        # Earlier attempts failed fast and were retried by staff; only the last carries the flags.
        outcome = status if last else S.FAILED
        attempt = _run_attempt(b, number, engine, outcome, wanted if last else set(), previous)
        previous = attempt.status
    return path


def build_paths(*, timeout: float) -> dict[str, Path]:
    """Every path the plan can pick (all combinations, cheap: ~1,500 paths)."""
    paths = {}
    flag_sets = (
        "".join(f if on else "-" for f, on in zip(FLAG_NAMES, bits, strict=True))
        for bits in product(*[(0, 1)] * len(FLAG_NAMES))
    )
    for engine, status, attempts, flags in product(Engine.values, S.values, (1, 2, 3), list(flag_sets)):
        path = build_path(engine, status, attempts, flags, timeout=timeout)
        paths[path.key] = path
    return paths


# --- result scores ------------------------------------------------------------------------------


def score_combinations(with_knowledge: bool) -> list[tuple[float, dict]]:
    """(score, breakdown) pairs a candidate inside the skill range can get, best first."""
    combos = []
    knowledge_values = (1.0, 0.9, 0.75, 0.5) if with_knowledge else (None,)
    for location, availability, role, knowledge in product(
        (rules.LOCATION_RESORT, rules.LOCATION_REGION, 0.0),
        (rules.AVAILABILITY_COMMON, rules.AVAILABILITY_UNKNOWN, 0.0),
        (rules.ROLE_SOUGHT, rules.ROLE_COACH_FOR_BUDDY, rules.ROLE_OTHER),
        knowledge_values,
    ):
        score = rules.round_score(rules.weighted_total(1.0, location, availability, role, knowledge))
        if rules.passes_threshold(score):
            combos.append((score, rules.make_breakdown(1.0, location, availability, role, knowledge).to_dict()))
    combos.sort(key=lambda c: -c[0])
    return combos


# --- SQL helpers ----------------------------------------------------------------------------------


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def insert_select(model: type[Model], values: dict[str, str], source: str, params: dict) -> tuple[str, dict]:
    """`INSERT INTO <model> (<columns>) SELECT <values> <source>`.

    Fields not in `values` are left to the database (an auto id, a `db_default`, NULL) or get their
    Python default as a parameter; a required field with neither stops the seed with its name.
    """
    columns, exprs, params = [], [], dict(params)
    for name, expr in values.items():
        columns.append(column(model, name))
        exprs.append(expr)
    for f in model._meta.concrete_fields:
        if f.name in values or isinstance(f, AutoField | BigAutoField | SmallAutoField):
            continue
        if getattr(f, "db_default", NOT_PROVIDED) is not NOT_PROVIDED or f.null:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            expr = "now()"
        elif f.has_default():
            key = f"default_{f.column}"
            params[key] = f.get_db_prep_save(f.get_default(), connection)
            expr = f"%({key})s"
        else:
            raise ImproperlyConfigured(
                f"seed_scale does not know how to fill {model.__name__}.{f.name} (NOT NULL, no default): "
                "add it to devtools/seed_scale/rows.py"
            )
        columns.append(connection.ops.quote_name(f.column))
        exprs.append(expr)
    sql = f"INSERT INTO {table(model)} ({', '.join(columns)})\nSELECT {', '.join(exprs)}\n{source}"
    return sql, params


def _at(step: str, lo: str, hi: str, base: str = "p.created_at") -> str:
    """The time of a path step for plan row `p` (NULL when the step is NULL): same hash as its event."""
    return f"{base} + make_interval(secs => {lo} + ({hi} - {lo}) * pg_temp.seed_u(p.i, 100 + {step}))"


def _u(k: int) -> str:
    return f"pg_temp.seed_u(p.i, {k})"


def _pick(array_param: str, k: int) -> str:
    """One element of a text[] parameter, chosen by hash k."""
    return f"(%({array_param})s::text[])[1 + floor({_u(k)} * cardinality(%({array_param})s::text[]))::int]"


# --- the seed ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleConfig:
    searches: int = 1_000_000
    seed: int = 2026
    days: int = 90
    until: datetime | None = None
    active: int | None = None  # default: 0.3 % of the searches
    results_per_search: float = 1.0
    timeline_sample: float = 0.01
    timeout_seconds: int = 86_400
    executions: str = "all"  # "all" attempts that reached an engine, or only "durable" ones
    api_key_id: int | None = None  # the SnowTrace key the searches came in with
    durable_share: float = 0.7  # of new searches once the durable engine is rolled out
    rollout_days: int = 40  # the durable share grows from 10 % over the first days

    @property
    def active_count(self) -> int:
        return round(self.searches * 0.003) if self.active is None else self.active


@dataclass
class TableReport:
    name: str
    rows: int
    seconds: float


def _hours_sql() -> str:
    return """
CREATE TEMP TABLE seed_hours ON COMMIT DROP AS
WITH h AS (
    SELECT g AS h, %(start)s::timestamptz + make_interval(hours => g) AS hour_start
    FROM generate_series(0, %(hours)s - 1) AS g
), w AS (
    SELECT h, hour_start,
           (%(hod)s::float8[])[extract(hour FROM hour_start AT TIME ZONE 'Asia/Tokyo')::int + 1]
         * (%(dow)s::float8[])[extract(isodow FROM hour_start AT TIME ZONE 'Asia/Tokyo')::int]
         * (0.55 + 0.45 * h / %(hours)s::float8)
         * (0.8 + 0.4 * pg_temp.seed_u(h / 24, 9000)) AS w
    FROM h
), c AS MATERIALIZED (
    SELECT h, hour_start,
           CASE WHEN h = %(hours)s - 1 THEN %(n)s
                ELSE floor(%(n)s * sum(w) OVER (ORDER BY h) / sum(w) OVER ())::bigint END AS upto
    FROM w
)
SELECT h, hour_start,
       %(offset)s + coalesce(lag(upto) OVER (ORDER BY h), 0) AS lo,
       %(offset)s + upto AS hi
FROM c
"""


def flag(letter: str, flags: str = "p.flags") -> str:
    """SQL: the path of plan row `p` carries this flag."""
    return f"substr({flags}, {FLAG_NAMES.index(letter) + 1}, 1) = '{letter}'"


def _plan_sql() -> str:
    """One row per search: its time, seeker, engine, preferences' inputs and lifecycle path."""
    u = _u
    # Only our own expressions are formatted in; every value is a bound parameter.
    return f"""
CREATE TEMP TABLE seed_plan ON COMMIT DROP AS
WITH t AS MATERIALIZED (
    SELECT i, %(offset)s + %(n)s - 1 - i AS r, hr.h / 24 AS day,
           hr.hour_start + make_interval(secs => 3600.0 * ((i - hr.lo) + pg_temp.seed_u(i, 1)) / (hr.hi - hr.lo))
               AS created_at
    FROM seed_hours hr CROSS JOIN LATERAL generate_series(hr.lo, hr.hi - 1) AS i
), c AS MATERIALIZED (
    SELECT p.*,
           CASE WHEN r < %(live)s THEN 'live'
                WHEN created_at >= %(window_start)s AND {u(2)} < %(p_vetting)s THEN 'vetting'
                WHEN created_at >= %(window_start)s AND {u(2)} < %(p_vetting)s + %(p_stuck)s THEN 'stuck'
                ELSE 'done' END AS cls
    FROM t AS p
), e AS MATERIALIZED (
    SELECT p.*,
           CASE WHEN cls = 'vetting' THEN 'durable'
                WHEN {u(3)} < least(%(durable_share)s, 0.1 + (%(durable_share)s - 0.1) * day / %(rollout_days)s::float8)
                    THEN 'durable'
                ELSE 'celery' END AS engine,
           CASE WHEN cls = 'vetting' THEN 'coach' WHEN {u(4)} < 0.55 THEN 'buddy'
                WHEN {u(4)} < 0.8 THEN 'student' ELSE 'coach' END AS role
    FROM c AS p
), f AS MATERIALIZED (
    SELECT p.*,
           cls = 'vetting' OR (cls = 'done' AND role = 'coach' AND engine = 'durable' AND {u(5)} < 0.3) AS vetting
    FROM e AS p
), g AS MATERIALIZED (
    SELECT p.*,
           CASE cls
               WHEN 'live' THEN CASE WHEN r < 3 THEN 'pending' WHEN r < 7 THEN 'dispatched' ELSE 'running' END
               WHEN 'vetting' THEN 'awaiting_vetting'
               WHEN 'stuck' THEN CASE WHEN {u(6)} < 0.35 THEN 'dispatched' ELSE 'running' END
               ELSE CASE WHEN vetting THEN
                        CASE WHEN {u(6)} < 0.80 THEN 'succeeded' WHEN {u(6)} < 0.90 THEN 'failed'
                             WHEN {u(6)} < 0.96 THEN 'timed_out' ELSE 'cancelled' END
                    ELSE
                        CASE WHEN {u(6)} < 0.935 THEN 'succeeded' WHEN {u(6)} < 0.965 THEN 'failed'
                             WHEN {u(6)} < 0.985 THEN 'cancelled' ELSE 'timed_out' END
                    END
           END AS status0,
           CASE WHEN cls <> 'done' THEN 1 WHEN {u(7)} < 0.03 THEN 2 WHEN {u(7)} < 0.035 THEN 3 ELSE 1 END AS attempts0
    FROM f AS p
), fl AS MATERIALIZED (
    SELECT p.*,
           engine = 'durable' AND vetting AND status0 IN ('succeeded', 'failed') AND {u(8)} < 0.25 AS f_i,
           engine = 'durable' AND (vetting OR status0 = 'running' OR {u(11)} < 0.5) AS f_r,
           engine = 'durable' AND ((cls = 'stuck' AND {u(9)} < 0.5)
                                   OR (cls = 'done' AND vetting AND {u(9)} < 0.02)) AS f_f,
           engine = 'durable' AND cls = 'done' AND status0 IN ('succeeded', 'failed', 'timed_out')
               AND {u(10)} < 0.002 AS f_d
    FROM g AS p
), k AS MATERIALIZED (
    SELECT p.*,
           engine || '|' || status0 || '|' || attempts0 || '|'
           || CASE WHEN engine = 'durable' AND vetting THEN 'v' ELSE '-' END
           || CASE WHEN f_i THEN 'i' ELSE '-' END
           || CASE WHEN f_r THEN 'r' ELSE '-' END
           || CASE WHEN f_f THEN 'f' ELSE '-' END
           || CASE WHEN f_d THEN 'd' ELSE '-' END
           || CASE WHEN (f_f OR f_d) AND cls = 'done' AND {u(24)} < 0.5 THEN 'a' ELSE '-' END AS key0
    FROM fl AS p
), chosen AS MATERIALIZED (
    -- A path must end before --until; the newest searches fall back to shorter ones.
    SELECT p.*,
           CASE WHEN p.created_at + make_interval(secs => k0.seconds) <= %(until)s THEN p.key0
                WHEN p.created_at + make_interval(secs => k1.seconds) <= %(until)s THEN k1.path_key
                ELSE p.engine || '|pending|1|' || %(no_flags)s END AS path_key
    FROM k AS p
    JOIN seed_paths k0 ON k0.path_key = p.key0
    JOIN seed_paths k1 ON k1.path_key = p.engine || '|succeeded|1|' || %(no_flags)s
), base AS (
    SELECT p.i, p.r, p.created_at, p.engine, p.role, p.vetting, p.cls, p.path_key,
           split_part(p.path_key, '|', 4) AS flags,
           split_part(p.path_key, '|', 2) AS status,
           split_part(p.path_key, '|', 3)::int AS attempt,
           md5(%(seed)s || ':' || p.i)::uuid AS search_id,
           'u' || lpad(floor(%(seekers)s * power({u(12)}, 1.6))::bigint::text, 6, '0') AS seeker_id
    FROM chosen AS p
)
SELECT p.*,
       CASE WHEN p.status <> 'succeeded' THEN 0
            WHEN {flag("v")} THEN 1 + floor({u(13)} * 5)::int
            ELSE least(20, floor(-ln(1 - {u(13)}) * %(result_scale)s))::int END AS result_count,
       {u(14)} < 0.3 AS with_knowledge,
       {_pick("staff", 15)} AS staff,
       'celery@worker-' || (1 + floor({u(16)} * 4)::int) AS worker,
       {_pick("cancel_reasons", 17)} AS reason,
       {_pick("retry_reasons", 18)} AS retry_reason,
       {_pick("drift_reasons", 19)} AS drift_reason,
       CASE WHEN {u(20)} < 0.7 THEN 'user:' || p.seeker_id ELSE {_pick("staff", 15)} END AS canceller,
       CASE p.status
           WHEN 'failed' THEN CASE WHEN p.engine = 'durable' THEN {_pick("durable_errors", 22)}
                                   ELSE {_pick("celery_errors", 22)} END
           WHEN 'timed_out' THEN CASE WHEN p.vetting AND p.engine = 'durable'
                                      THEN 'vetting_timeout: no vetting answer in time'
                                      ELSE 'the search did not finish before its deadline' END
           WHEN 'cancelled' THEN 'cancelled: ' || {_pick("cancel_reasons", 17)}
           ELSE '' END AS error,
       floor({u(23)} * 6)::int AS combo,
       {_pick("ack_notes", 25)} AS ack_note,
       {u(21)} < %(timeline_sample)s OR p.cls <> 'done' OR {flag("f")} AS timeline
FROM base AS p
"""  # noqa: S608


class ScaleSeed:
    """Runs the statements in order; `progress(name, rows, seconds)` is told after each table."""

    def __init__(self, config: ScaleConfig, *, offset: int, progress: Callable[[TableReport], None]):
        self.config, self.offset, self.progress = config, offset, progress
        self.paths = build_paths(timeout=config.timeout_seconds)
        self.reports: list[TableReport] = []

    # The parameters every statement may use.
    def params(self) -> dict:
        c = self.config
        until = c.until
        assert until is not None
        hours = c.days * 24
        start = until - timedelta(hours=hours)
        window_hours = min(20.0, 0.8 * c.timeout_seconds / 3600)
        succeeded_share = 0.93
        per_succeeded = max(c.results_per_search / succeeded_share, 0.01)
        return {
            "seed": str(c.seed),
            "n": c.searches,
            "offset": self.offset,
            "hours": hours,
            "start": start,
            "until": until,
            "hod": list(HOUR_OF_DAY_JST),
            "dow": list(WEEKDAY),
            "live": min(20, c.searches // 100),
            "window_start": until - timedelta(hours=window_hours),
            "durable_share": c.durable_share,
            "rollout_days": c.rollout_days,
            "seekers": min(max(1000, c.searches // 4), 999_999),  # six-digit user ids
            "pool": self._pool(),
            # floor(Exp(mean m)) has mean 1 / (e^(1/m) - 1): solve for the mean per succeeded search.
            "result_scale": 1 / math.log(1 + 1 / per_succeeded),
            "timeline_sample": c.timeline_sample,
            "staff": list(STAFF),
            "cancel_reasons": list(CANCEL_REASONS),
            "retry_reasons": list(RETRY_REASONS),
            "drift_reasons": list(DRIFT_REASONS),
            "ack_notes": list(ACK_NOTES),
            "no_flags": NO_FLAGS,
            "api_key": c.api_key_id,
            "celery_errors": list(CELERY_ERRORS),
            "durable_errors": list(DURABLE_ERRORS),
            "nick_parts": list(NICK_PARTS),
            "timeout": c.timeout_seconds,
            "arn_prefix": ARN_PREFIX,
        }

    def _pool(self) -> int:
        pool = min(max(1000, self.config.searches // 10), 999_999)
        return pool + 1 if pool % RESULT_STRIDE == 0 else pool

    def run(self) -> list[TableReport]:
        with connection.cursor() as cursor:
            self.cursor = cursor
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # Compiling these long expressions costs far more than running them.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            self._functions()
            self._paths_tables()
            params = self.params()
            self._timed("plan (temporary)", _hours_sql(), params, count="SELECT count(*) FROM seed_hours")
            self._active_probabilities(params)
            planned = self._timed("plan (temporary)", _plan_sql(), params)
            if planned != self.config.searches:
                raise RuntimeError(f"planned {planned} searches instead of {self.config.searches}: a path is missing")
            cursor.execute("ANALYZE seed_plan")
            self._searches(params)
            self._events(params)
            self._results(params)
            self._dispatches(params)
            self._executions(params)
            self._webhook_deliveries(params)
            self._notifications(params)
            self._staff_actions(params)
            self._timelines(params)
        return self.reports

    # --- infrastructure

    def _timed(self, name: str, sql: str, params: dict, *, count: str | None = None) -> int:
        started = time.monotonic()
        self.cursor.execute(sql, params)
        rows = self.cursor.rowcount
        if count:
            self.cursor.execute(count)
            rows = self.cursor.fetchone()[0]
        report = TableReport(name, rows, time.monotonic() - started)
        if not name.endswith("(temporary)"):
            self.reports.append(report)
        self.progress(report)
        return rows

    def _functions(self) -> None:
        # Temporary tables go at commit; a caller's enclosing transaction (a test) may still hold them.
        self.cursor.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{name}" for name in TEMP_TABLES))
        seed = int(self.config.seed)
        # 52 bits of a 64-bit hash of (row, purpose) as a float in [0, 1); inlined by the planner.
        self.cursor.execute(
            f"""
CREATE OR REPLACE FUNCTION pg_temp.seed_u(i bigint, k integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(i, {seed}::bigint * 65536 + k) & 4503599627370495)::double precision
             / 4503599627370496.0 $$"""
        )

    def _paths_tables(self) -> None:
        cur = self.cursor
        cur.execute(
            """
CREATE TEMP TABLE seed_paths (path_key text PRIMARY KEY, seconds float8, updated_step int, updated_lo float8,
                              updated_hi float8) ON COMMIT DROP;
CREATE TEMP TABLE seed_steps (path_key text, step int, attempt int, kind text, from_status text, to_status text,
                              actor text, detail text, lo float8, hi float8, PRIMARY KEY (path_key, step))
    ON COMMIT DROP;
CREATE TEMP TABLE seed_attempts (path_key text, attempt int, status text, current boolean, version int,
                                 first_step int, first_lo float8, first_hi float8,
                                 dispatched_step int, dispatched_lo float8, dispatched_hi float8,
                                 started_step int, started_lo float8, started_hi float8,
                                 ended_step int, ended_lo float8, ended_hi float8,
                                 PRIMARY KEY (path_key, attempt)) ON COMMIT DROP;
CREATE TEMP TABLE seed_combos (with_knowledge boolean, idx int, score float8, breakdown jsonb,
                               PRIMARY KEY (with_knowledge, idx)) ON COMMIT DROP;
"""
        )

        def window(path: Path, index: int | None) -> tuple:
            if index is None:
                return (None, None, None)
            step = path.steps[index]
            return (index, step.lo, step.hi)

        cur.executemany(
            "INSERT INTO seed_paths VALUES (%s, %s, %s, %s, %s)",
            [(p.key, p.seconds, *window(p, p.updated)) for p in self.paths.values()],
        )
        cur.executemany(
            "INSERT INTO seed_steps VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (p.key, i, s.attempt, s.kind, s.from_status, s.to_status, s.actor, s.detail, s.lo, s.hi)
                for p in self.paths.values()
                for i, s in enumerate(p.steps)
            ],
        )
        cur.executemany(
            "INSERT INTO seed_attempts VALUES (" + ", ".join(["%s"] * 17) + ")",  # noqa: S608 (placeholders)
            [
                (
                    p.key,
                    a.number,
                    a.status,
                    a.number == len(p.attempts),
                    a.version,
                    *window(p, a.first),
                    *window(p, a.dispatched),
                    *window(p, a.started),
                    *window(p, a.ended),
                )
                for p in self.paths.values()
                for a in p.attempts
            ],
        )
        cur.executemany(
            "INSERT INTO seed_combos VALUES (%s, %s, %s, %s::jsonb)",
            [
                (knowledge, idx, score, json.dumps(breakdown))
                for knowledge in (False, True)
                for idx, (score, breakdown) in enumerate(score_combinations(knowledge))
            ],
        )
        cur.execute("ANALYZE seed_paths; ANALYZE seed_steps; ANALYZE seed_attempts; ANALYZE seed_combos")

    def _active_probabilities(self, params: dict) -> None:
        """Spread the active searches over the newest hours: 70 % await vetting, 30 % are stuck."""
        self.cursor.execute(
            "SELECT coalesce(sum(hi - lo), 0) FROM seed_hours WHERE hour_start >= %(window_start)s", params
        )
        in_window = max(int(self.cursor.fetchone()[0]) - params["live"], 1)
        active = max(self.config.active_count - params["live"], 0)
        params["p_vetting"] = min(1.0, 0.7 * active / in_window)
        params["p_stuck"] = min(1.0 - params["p_vetting"], 0.3 * active / in_window)

    # --- tables

    def _searches(self, params: dict) -> None:
        u = _u
        resorts = list(self._resort_ids())
        params = {**params, "resorts": resorts, "regions": list(KNOWN_REGIONS), "certs": list(CERTIFICATIONS)}
        # Up to three distinct resorts (index steps ≥ 1 that sum to < 43) and up to four sorted dates.
        resort = "(%(resorts)s::text[])[1 + mod({}, cardinality(%(resorts)s::text[]))]"
        r1 = f"floor({u(30)} * 43)::int"
        r2 = f"{r1} + 1 + floor({u(31)} * 20)::int"
        r3 = f"{r2} + 1 + floor({u(32)} * 20)::int"
        n_resorts = f"floor({u(33)} * 4)::int"
        d1 = f"1 + floor({u(34)} * 20)::int"
        d2 = f"{d1} + 1 + floor({u(35)} * 5)::int"
        d3 = f"{d2} + 1 + floor({u(36)} * 5)::int"
        d4 = f"{d3} + 1 + floor({u(37)} * 5)::int"

        def date(offset: str) -> str:
            return f"to_char(p.created_at::date + {offset}, 'YYYY-MM-DD')"

        skill_min = f"1 + floor({u(38)} * 7)::int"
        preferences = f"""jsonb_build_object(
            'role', p.role,
            'skill_level_min', {skill_min},
            'skill_level_max', least(10, {skill_min} + 1 + floor({u(39)} * 4)::int),
            'resorts', CASE {n_resorts} WHEN 0 THEN '[]'::jsonb
                WHEN 1 THEN jsonb_build_array({resort.format(r1)})
                WHEN 2 THEN jsonb_build_array({resort.format(r1)}, {resort.format(r2)})
                ELSE jsonb_build_array({resort.format(r1)}, {resort.format(r2)}, {resort.format(r3)}) END,
            'regions', CASE WHEN {u(40)} < 0.25
                THEN jsonb_build_array(
                    (%(regions)s::text[])[1 + floor({u(41)} * cardinality(%(regions)s::text[]))::int])
                ELSE '[]'::jsonb END,
            'dates', CASE floor({u(42)} * 5)::int WHEN 0 THEN '[]'::jsonb
                WHEN 1 THEN jsonb_build_array({date(d1)})
                WHEN 2 THEN jsonb_build_array({date(d1)}, {date(d2)})
                WHEN 3 THEN jsonb_build_array({date(d1)}, {date(d2)}, {date(d3)})
                ELSE jsonb_build_array({date(d1)}, {date(d2)}, {date(d3)}, {date(d4)}) END,
            'include_knowledge_score', p.with_knowledge,
            'knowledge_score', CASE WHEN p.with_knowledge AND {u(43)} < 0.85 THEN floor({u(44)} * 101)::int END,
            'required_certifications', CASE WHEN p.vetting OR (p.role = 'coach' AND {u(45)} < 0.3)
                THEN jsonb_build_array((%(certs)s::text[])[1 + floor({u(46)} * cardinality(%(certs)s::text[]))::int])
                ELSE '[]'::jsonb END,
            'vetting_required', p.vetting,
            'limit', 20)"""
        first = _at("a.first_step", "a.first_lo", "a.first_hi")
        values = {
            "search_id": "p.search_id",
            "seeker_id": "p.seeker_id",
            "preferences": preferences,
            "status": "p.status",
            "engine": "p.engine",
            "attempt": "p.attempt",
            "created_at": "p.created_at",
            "updated_at": _at("sp.updated_step", "sp.updated_lo", "sp.updated_hi"),
            "started_at": _at("a.started_step", "a.started_lo", "a.started_hi"),
            "finished_at": _at("a.ended_step", "a.ended_lo", "a.ended_hi"),
            "deadline_at": f"{first} + make_interval(secs => %(timeout)s)",
            "error": "p.error",
            "result_count": "p.result_count",
            # The console's attention markers: raised by the drift check and the mirror, cleared by
            # a staff acknowledgement.
            "drift_flagged": f"{flag('f')} AND NOT {flag('a')}",
            "callback_dead_lettered": f"{flag('d')} AND NOT {flag('a')}",
            "api_key": "%(api_key)s",
        }
        source = """FROM seed_plan p
JOIN seed_paths sp ON sp.path_key = p.path_key
JOIN seed_attempts a ON a.path_key = p.path_key AND a.current
ORDER BY p.i"""
        self._timed("searches", *insert_select(Search, values, source, params))

    def _resort_ids(self) -> Iterator[str]:
        from matching.models import Resort

        ids = list(Resort.objects.order_by("id").values_list("id", flat=True))
        if not ids:
            raise ImproperlyConfigured("no resorts: load them first (manage.py loaddata resorts)")
        return iter(ids)

    def _events(self, params: dict) -> None:
        actor = (
            "replace(replace(replace(replace(s.actor, '{seeker}', p.seeker_id), '{staff}', p.staff), "
            "'{worker}', p.worker), '{canceller}', p.canceller)"
        )
        detail = (
            "replace(replace(replace(replace(replace(replace(replace(s.detail, '{engine}', p.engine), "
            "'{results}', p.result_count::text), '{error}', p.error), '{reason}', p.reason), "
            "'{retry_reason}', p.retry_reason), '{drift_reason}', p.drift_reason), '{ack_note}', p.ack_note)"
        )
        values = {
            "search": "p.search_id",
            "attempt": "s.attempt",
            "at": _at("s.step", "s.lo", "s.hi"),
            "kind": "s.kind",
            "from_status": "s.from_status",
            "to_status": "s.to_status",
            "actor": actor,
            "detail": detail,
        }
        source = """FROM seed_plan p
JOIN seed_steps s ON s.path_key = p.path_key
ORDER BY p.i, s.step"""
        self._timed("search events", *insert_select(SearchEvent, values, source, params))

    def _results(self, params: dict) -> None:
        u = _u
        user = f"mod(floor(%(pool)s * power({u(50)}, 2))::bigint + g.rank * {RESULT_STRIDE}, %(pool)s)"
        parts = "(%(nick_parts)s::text[])"
        nick = f"{parts}[1 + mod({user}, 10)::int] || {parts}[1 + mod({user} / 10, 10)::int] || {user}"
        values = {
            "search": "p.search_id",
            "attempt": "p.attempt",
            "rank": "g.rank",
            "user_id": f"'u' || lpad({user}::text, 6, '0')",
            "nickname": nick,
            "score": "c.score",
            "breakdown": "c.breakdown",
        }
        # Ranks walk down the score table from a per-search start, two ranks per step: best first.
        source = """FROM seed_plan p
CROSS JOIN LATERAL generate_series(1, p.result_count) AS g(rank)
JOIN seed_combos c ON c.with_knowledge = p.with_knowledge
    AND c.idx = least(p.combo + (g.rank - 1) / 2,
                      CASE WHEN p.with_knowledge THEN %(last_combo_k)s ELSE %(last_combo)s END)
WHERE p.result_count > 0
ORDER BY p.i, g.rank"""
        params = {
            **params,
            "last_combo": len(score_combinations(False)) - 1,
            "last_combo_k": len(score_combinations(True)) - 1,
        }
        self._timed("search results", *insert_select(SearchResult, values, source, params))

    def _dispatches(self, params: dict) -> None:
        values = {
            "search": "p.search_id",
            "attempt": "a.attempt",
            "engine": "p.engine",
            "created_at": _at("a.first_step", "a.first_lo", "a.first_hi"),
            "sent_at": _at("a.dispatched_step", "a.dispatched_lo", "a.dispatched_hi"),
            "send_count": "CASE WHEN a.dispatched_step IS NULL THEN 0 ELSE 1 END",
            "last_error": "''",
        }
        source = """FROM seed_plan p
JOIN seed_attempts a ON a.path_key = p.path_key
ORDER BY p.i, a.attempt"""
        self._timed("dispatches", *insert_select(SearchDispatch, values, source, params))

    def _executions(self, params: dict) -> None:
        u = _u
        durable = "p.engine = 'durable'"
        name = "p.search_id::text || '-a' || a.attempt"
        ended = _at("a.ended_step", "a.ended_lo", "a.ended_hi")
        # A durable execution runs before the console hears of it (if it ever sees `running`).
        started = (
            f"coalesce({_at('a.started_step', 'a.started_lo', 'a.started_hi')}, CASE WHEN {durable} AND a.status "
            f"NOT IN ('pending', 'dispatched') THEN "
            f"{_at('a.dispatched_step', 'a.dispatched_lo', 'a.dispatched_hi')} + interval '0.4 seconds' END)"
        )
        synced = (
            f"coalesce({ended}, %(until)s - make_interval(secs => 60 * {u(60)})) + make_interval(secs => 30 * {u(61)})"
        )
        flagged = f"a.current AND {flag('f')}"
        vetting = f"a.current AND {flag('v')}"
        drift_state = (
            f"CASE WHEN {flagged} AND {flag('a')} THEN '{DriftState.ACKNOWLEDGED}' "
            f"WHEN {flagged} THEN '{DriftState.FLAGGED}' "
            f"WHEN {vetting} AND {u(62)} < 0.05 THEN '{DriftState.REPAIRED}' "
            f"WHEN ({vetting} OR p.cls <> 'done') AND {u(62)} < 0.75 THEN '{DriftState.OK}' ELSE '' END"
        )
        values = {
            "search": "p.search_id",
            "attempt": "a.attempt",
            "engine": "p.engine",
            "execution_name": f"CASE WHEN {durable} THEN {name} ELSE '' END",
            "execution_arn": (
                f"CASE WHEN {durable} THEN %(arn_prefix)s || {name} || '/' || md5({name})::uuid ELSE '' END"
            ),
            "status": "a.status",
            "version": "CASE WHEN p.engine = 'durable' THEN a.version ELSE 0 END",
            "error": (
                "CASE WHEN a.current THEN p.error WHEN a.status = 'failed' THEN 'the workflow reported failed' "
                "ELSE '' END"
            ),
            "started_at": started,
            "ended_at": ended,
            "last_synced_at": synced,
            "celery_task_id": f"CASE WHEN {durable} THEN '' ELSE md5('task:' || {name})::uuid::text END",
            "item_updated_at": f"CASE WHEN {durable} THEN coalesce({ended}, {started}) END",
            "history_synced_at": f"CASE WHEN {durable} THEN {synced} END",
            "history_complete": f"{durable} AND a.ended_step IS NOT NULL",
            "drift_state": drift_state,
            "drift_reason": (
                f"CASE WHEN {flagged} THEN p.drift_reason WHEN ({drift_state}) <> '' THEN 'in agreement' ELSE '' END"
            ),
            "drift_checked_at": f"CASE WHEN ({drift_state}) <> '' THEN {synced} END",
        }
        only = "" if self.config.executions == "all" else f"AND {durable}"
        source = f"""FROM seed_plan p
JOIN seed_attempts a ON a.path_key = p.path_key
WHERE a.dispatched_step IS NOT NULL {only}
ORDER BY p.i, a.attempt"""
        self._timed("workflow executions", *insert_select(WorkflowExecution, values, source, params))

    def _webhook_deliveries(self, params: dict) -> None:
        ended = _at("a.ended_step", "a.ended_lo", "a.ended_hi")
        values = {
            "webhook_id": "'msg_' || p.search_id::text || '-a' || a.attempt || '_v' || a.version",
            "search": "p.search_id",
            # The console cancels first; the workflow's own callback then finds a finished search.
            "received_at": (
                f"{ended} + CASE WHEN a.status = 'cancelled' THEN interval '2 seconds' ELSE interval '0' END"
            ),
            "status": "a.status",
            "version": "a.version",
            "outcome": "CASE WHEN a.status = 'cancelled' THEN 'ignored_terminal' ELSE 'applied' END",
        }
        # A dead-lettered callback never arrived (the sync applied the outcome instead).
        source = f"""FROM seed_plan p
JOIN seed_attempts a ON a.path_key = p.path_key
WHERE p.engine = 'durable' AND a.ended_step IS NOT NULL AND NOT (a.current AND {flag("d")})
ORDER BY p.i, a.attempt"""
        self._timed("webhook deliveries", *insert_select(WebhookDelivery, values, source, params))

    def _notifications(self, params: dict) -> None:
        """The completion notifications to SnowTrace: one per finished attempt, delivered at once,
        except a few dead-lettered after a day of retries (on a receiver that kept answering 503)."""
        u = _u
        ended = _at("a.ended_step", "a.ended_lo", "a.ended_hi")
        dead = f"({u(70)} < 0.001 AND {ended} < %(until)s - interval '1 day')"
        sent = f"{ended} + make_interval(secs => 0.05 + 1.5 * {u(71)})"
        values = {
            "search": "p.search_id",
            "attempt": "a.attempt",
            "status": "a.status",
            "state": (
                f"CASE WHEN {dead} THEN '{NotificationState.DEAD_LETTER}' ELSE '{NotificationState.DELIVERED}' END"
            ),
            "created_at": ended,
            "next_attempt_at": "NULL",
            "retry_until": f"{ended} + interval '1 day'",
            "last_attempt_at": f"CASE WHEN {dead} THEN {ended} + interval '1 day' ELSE {sent} END",
            "sent_at": f"CASE WHEN {dead} THEN NULL ELSE {sent} END",
            "tries": f"CASE WHEN {dead} THEN 12 ELSE 1 END",
            "last_status_code": f"CASE WHEN {dead} THEN 503 ELSE 204 END",
            "last_error": f"CASE WHEN {dead} THEN 'HTTP 503 Service Unavailable' ELSE '' END",
        }
        source = """FROM seed_plan p
JOIN seed_attempts a ON a.path_key = p.path_key
WHERE a.ended_step IS NOT NULL
ORDER BY p.i, a.attempt"""
        self._timed("search notifications", *insert_select(SearchNotification, values, source, params))

    def _staff_actions(self, params: dict) -> None:
        """The console's audit trail of what staff did: retries, cancels, vetting answers, acknowledgements."""
        kinds = {
            K.RETRIED: StaffActionKind.RETRY,
            K.CANCELLED: StaffActionKind.CANCEL,
            K.INTERVENED: StaffActionKind.INTERVENE,
            K.DRIFT_ACKNOWLEDGED: StaffActionKind.ACKNOWLEDGE_DRIFT,
        }
        action = "CASE e.kind " + " ".join(f"WHEN '{k.value}' THEN '{v.value}'" for k, v in kinds.items()) + " END"
        values = {
            "at": "e.at",
            "username": f"substr(e.actor, {len(STAFF_ACTOR_PREFIX) + 1})",
            "action": action,
            "search": "e.search_id",
            "attempt": "e.attempt",
            # A retry's detail is "attempt N on ENGINE: reason"; the others carry the reason itself.
            "reason": f"CASE WHEN e.kind = '{K.RETRIED.value}' THEN split_part(e.detail, ': ', 2) ELSE e.detail END",
            "parameters": (
                f"CASE e.kind WHEN '{K.RETRIED.value}' THEN jsonb_build_object('engine', s.engine) "
                f"WHEN '{K.INTERVENED.value}' THEN jsonb_build_object('decision', split_part(e.detail, ' ', 1)) "
                "ELSE '{}'::jsonb END"
            ),
            "status_before": "CASE WHEN e.from_status <> '' THEN e.from_status ELSE s.status END",
            "status_after": "CASE WHEN e.to_status <> '' THEN e.to_status ELSE s.status END",
            "outcome": f"'{StaffActionOutcome.DONE}'",
            "detail": "''",
        }
        source = f"""FROM {table(SearchEvent)} e
JOIN {table(Search)} s ON s.{column(Search, "search_id")} = e.{column(SearchEvent, "search")}
WHERE e.{column(SearchEvent, "actor")} LIKE '{STAFF_ACTOR_PREFIX}%%'
  AND e.{column(SearchEvent, "kind")} = ANY(%(staff_kinds)s)
ORDER BY e.{column(SearchEvent, "id")}"""
        params = {**params, "staff_kinds": [k.value for k in kinds]}
        self._timed("staff actions", *insert_select(StaffAction, values, source, params))

    def _timelines(self, params: dict) -> None:
        """Timelines of a sample of executions (and of every active or flagged one), as the mirror builds them.

        Console transitions become `console` entries; on the durable engine each transition also
        brings the item and history entries the workflow writes around it (TIMELINE_TEMPLATE).
        """
        self.cursor.execute(
            """
CREATE TEMP TABLE seed_timeline_template (kind text, actor text, seq int, source text, entry_kind text,
                                          name text, event text, ms int, detail jsonb) ON COMMIT DROP"""
        )
        self.cursor.executemany(
            "INSERT INTO seed_timeline_template VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
            [
                (
                    str(kind),
                    actor,
                    seq,
                    *map(str, entry[:4]),
                    entry[4],
                    None if entry[5] is None else json.dumps(entry[5]),
                )
                for (kind, actor), entries in TIMELINE_TEMPLATE.items()
                for seq, entry in enumerate(entries, start=1)
            ],
        )
        sampled = """
CREATE TEMP TABLE seed_timeline_events ON COMMIT DROP AS
SELECT x.id AS execution_id, x.engine, x.execution_arn, e.id AS event_id, e.at, e.kind, e.actor,
       e.from_status, e.to_status, e.detail, e.attempt
FROM seed_plan p
JOIN {execution} x ON x.{x_search} = p.search_id
JOIN {event} e ON e.{e_search} = p.search_id AND e.{e_attempt} = x.{x_attempt}
WHERE p.timeline""".format(
            execution=table(WorkflowExecution),
            event=table(SearchEvent),
            x_search=column(WorkflowExecution, "search"),
            x_attempt=column(WorkflowExecution, "attempt"),
            e_search=column(SearchEvent, "search"),
            e_attempt=column(SearchEvent, "attempt"),
        )
        self.cursor.execute(sampled)
        console = {
            "execution": "t.execution_id",
            "key": "'event:' || t.event_id",
            "at": "t.at",
            "source": f"'{TimelineSource.CONSOLE}'",
            "kind": f"'{TimelineKind.TRANSITION.value}'",
            "name": "left(t.actor, 200)",
            "event": "left(t.kind, 60)",
            "detail": "jsonb_build_object('from', t.from_status, 'to', t.to_status, 'detail', t.detail)",
        }
        sql, p1 = insert_select(ExecutionTimelineEntry, console, "FROM seed_timeline_events t", params)
        key = (
            "CASE tp.source"
            " WHEN 'history' THEN 'history:' || left(md5(t.execution_arn), 12) || ':' || (t.event_id * 16 + tp.seq)"
            " WHEN 'webhook' THEN 'webhook:' || left(md5('msg_' || t.execution_id || ':' || t.event_id), 32)"
            " ELSE 'item:' || left(md5(t.event_id || ':' || tp.seq), 32) END"
        )
        engine_side = {
            "execution": "t.execution_id",
            "key": key,
            "at": "t.at + make_interval(secs => tp.ms / 1000.0)",
            "source": "tp.source",
            "kind": "tp.entry_kind",
            "name": "tp.name",
            "event": "CASE WHEN tp.event = '{status}' THEN t.to_status ELSE tp.event END",
            "detail": (
                "CASE WHEN tp.detail ? 'attempt' THEN jsonb_build_object('attempt', t.attempt) ELSE tp.detail END"
            ),
        }
        source = """FROM seed_timeline_events t
JOIN seed_timeline_template tp ON tp.kind = t.kind AND (tp.actor = '' OR tp.actor = t.actor)
WHERE t.engine = 'durable'"""
        sql2, p2 = insert_select(ExecutionTimelineEntry, engine_side, source, params)
        started = time.monotonic()
        self.cursor.execute(sql, p1)
        rows = self.cursor.rowcount
        self.cursor.execute(sql2, p2)
        rows += self.cursor.rowcount
        report = TableReport("execution timeline entries", rows, time.monotonic() - started)
        self.reports.append(report)
        self.progress(report)


# (kind, actor or "" for any) → entries (source, entry kind, name, event, ms after the transition, detail)
# as the mirror copies them from the DynamoDB item and the durable execution history.
TIMELINE_TEMPLATE: dict[tuple[str, str], list[tuple]] = {
    (K.DISPATCHED, ""): [
        ("item", TimelineKind.API, "start", "dispatched", 40, {"attempt": 0}),
        ("history", TimelineKind.EXECUTION, "", "ExecutionStarted", 120, None),
    ],
    (K.RUNNING, ""): [
        ("history", TimelineKind.STEP, "mark-running", "StepStarted", -300, None),
        ("history", TimelineKind.STEP, "mark-running", "StepSucceeded", -250, None),
        ("item", TimelineKind.STEP, "mark-running", "running", -250, None),
    ],
    (K.AWAITING_VETTING, ""): [
        ("history", TimelineKind.STEP, "fetch-candidates-1", "StepSucceeded", -900, None),
        ("history", TimelineKind.STEP, "score", "StepSucceeded", -700, None),
        ("history", TimelineKind.STEP, "vetting-prepare", "StepSucceeded", -500, None),
        ("history", TimelineKind.CALLBACK, "vetting create callback id", "CallbackStarted", -300, None),
        ("item", TimelineKind.CALLBACK, "vetting", "awaiting_vetting", -200, None),
    ],
    **{
        (K(status), "durable-callback"): [
            ("history", TimelineKind.STEP, "write-result", "StepSucceeded", -60, None),
            ("item", TimelineKind.STEP, "write-result", "{status}", -60, None),
            ("history", TimelineKind.STEP, "deliver-callback", "StepSucceeded", 20, None),
            ("item", TimelineKind.WEBHOOK, "callback", "delivered", 25, {"attempts": 1}),
            ("webhook", TimelineKind.WEBHOOK, str(status), WebhookOutcome.APPLIED, 0, None),
            ("history", TimelineKind.EXECUTION, "", "ExecutionSucceeded", 40, None),
        ]
        for status in (S.SUCCEEDED, S.FAILED, S.TIMED_OUT)
    },
    **{
        (K(status), "durable-sync"): [
            ("history", TimelineKind.STEP, "write-result", "StepSucceeded", -30_000, None),
            ("item", TimelineKind.STEP, "write-result", "{status}", -30_000, None),
            ("history", TimelineKind.STEP, "deliver-callback", "StepFailed", -5_000, {"error": "ConnectTimeout"}),
            ("history", TimelineKind.STEP, "record-dead-letter", "StepSucceeded", -4_900, None),
            ("item", TimelineKind.WEBHOOK, "deliver-callback", "dead_letter", -4_900, {"error": "ConnectTimeout"}),
            ("item", TimelineKind.WEBHOOK, "callback", "dead_letter", -4_900, {"attempts": 5}),
            ("history", TimelineKind.EXECUTION, "", "ExecutionSucceeded", -4_800, None),
        ]
        for status in (S.SUCCEEDED, S.FAILED, S.TIMED_OUT)
    },
    (K.REMOTE_CANCEL, ""): [
        ("item", TimelineKind.API, "cancel", "cancelled", 10, None),
        ("history", TimelineKind.EXECUTION, "", "ExecutionStopped", 30, None),
    ],
}
