"""The gauges /metrics reads from the database and the cache, computed by one collector at scrape time.

A scrape every 15 s must cost the database a few indexed queries, not a scan: each read below is
served by an index (named beside it), and the answer is kept for METRICS_CACHE_SECONDS, so several
Prometheus servers, or a burst of scrapes, cost one read. The collector also reports what its last
read cost (`snowbuddy_metrics_read_queries`, `snowbuddy_metrics_read_seconds`); docs/observability.md
records the figures.

Only the console's /metrics serves these (snowbuddy/metrics.py), never a worker's port: Prometheus
would otherwise count each database gauge once per target.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from matching.models import (
    ACTIVE_STATUSES,
    Engine,
    NotificationState,
    Search,
    SearchEvent,
    SearchEventKind,
    SearchNotification,
    SearchStatus,
    SearchVetting,
    UserEvent,
)
from matching.selectors import stuck_q, vetting_overdue_q
from workflows.dispatch.engine_choice import environment_engine
from workflows.durable_console.breaker import durable_breaker
from workflows.models import SearchDispatch, SyncWatermark

BREAKER_STATES = ("closed", "half_open", "open")
WAITING_FOR_WORKER = (SearchStatus.PENDING, SearchStatus.DISPATCHED)


def mirror_lag_bound_seconds() -> int:
    """How stale the mirror may be before staff should look: three sync periods plus the skew."""
    return 3 * settings.MATCHING_MIRROR_SYNC_INTERVAL_SECONDS + settings.MATCHING_MIRROR_SYNC_SKEW_SECONDS


def _gauge(name: str, documentation: str, value: float | None = None, labels: dict | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), value)
    return family


class ConsoleStateCollector(Collector):
    """prometheus_client calls `collect()` on every scrape; the database is read at most every
    `cache_seconds` per process."""

    def __init__(self, cache_seconds: float | None = None) -> None:
        self.cache_seconds = settings.METRICS_CACHE_SECONDS if cache_seconds is None else cache_seconds
        self._lock = threading.Lock()
        self._families: list[GaugeMetricFamily] = []
        self._read_at: float | None = None
        self.last_queries = 0
        self.last_seconds = 0.0

    def describe(self):
        # Registering must not read the database (prometheus_client calls collect() when a
        # collector has no describe()).
        return []

    def collect(self):
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self.cache_seconds:
                self._families = self._read()
                self._read_at = time.monotonic()
            return list(self._families)

    def _read(self) -> list[GaugeMetricFamily]:
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        began = time.perf_counter()
        with connection.execute_wrapper(count):
            families = self._families_now()
        self.last_seconds = time.perf_counter() - began
        self.last_queries = queries
        families.append(
            _gauge("snowbuddy_metrics_read_queries", "Database queries the last metrics read made.", queries)
        )
        families.append(
            _gauge("snowbuddy_metrics_read_seconds", "Seconds the last metrics read took.", self.last_seconds)
        )
        return families

    def _families_now(self) -> list[GaugeMetricFamily]:
        now = timezone.now()
        out: list[GaugeMetricFamily] = []

        # 1. Unfinished searches, grouped: served by `search_status_created_idx` (few rows are active).
        active = GaugeMetricFamily(
            "snowbuddy_searches_active", "Unfinished searches by engine and status.", labels=["engine", "status"]
        )
        stuck = GaugeMetricFamily(
            "snowbuddy_searches_stuck",
            "Unfinished searches with no transition past their engine's stuck threshold.",
            labels=["engine"],
        )
        rows = (
            Search.objects.filter(status__in=list(ACTIVE_STATUSES))
            .values("engine", "status")
            .annotate(
                n=Count("pk"),
                stuck=Count("pk", filter=stuck_q(now)),
                overdue=Count("pk", filter=vetting_overdue_q(now)),
                oldest=Min("updated_at"),
            )
            .order_by()
        )
        stuck_by_engine = dict.fromkeys(Engine.values, 0)
        vetting_pending = vetting_overdue = 0
        waiting_oldest = None
        durable_active = 0
        for row in rows:
            active.add_metric([row["engine"], row["status"]], row["n"])
            stuck_by_engine[row["engine"]] = stuck_by_engine.get(row["engine"], 0) + row["stuck"]
            if row["status"] == SearchStatus.AWAITING_VETTING:
                vetting_pending += row["n"]
                vetting_overdue += row["overdue"]
            if row["engine"] == Engine.CELERY and row["status"] in WAITING_FOR_WORKER:
                waiting_oldest = min(filter(None, [waiting_oldest, row["oldest"]]))
            if row["engine"] == Engine.DURABLE:
                durable_active += row["n"]
        for engine, n in stuck_by_engine.items():
            stuck.add_metric([engine], n)
        out += [active, stuck]
        out.append(_gauge("snowbuddy_vetting_pending", "Searches awaiting a vetting answer.", vetting_pending))
        out.append(
            _gauge(
                "snowbuddy_vetting_overdue",
                "Searches awaiting vetting for more than half the time they had left.",
                vetting_overdue,
            )
        )
        out.append(
            _gauge(
                "snowbuddy_celery_waiting_oldest_age_seconds",
                "Age of the oldest Celery search waiting for a worker to claim it (0 when none waits).",
                (now - waiting_oldest).total_seconds() if waiting_oldest else 0,
            )
        )

        # 2. The latest claim: `event_kind_id_idx` (kind, -id), one row.
        last_claim = (
            SearchEvent.objects.filter(kind=SearchEventKind.CLAIMED)
            .order_by("-id")
            .values_list("at", flat=True)
            .first()
        )
        if last_claim is not None:
            out.append(
                _gauge(
                    "snowbuddy_last_claim_timestamp_seconds",
                    "Unix time a Celery worker last claimed a search.",
                    last_claim.timestamp(),
                )
            )

        # 3. Outboxes. Dispatch: partial index `dispatch_unsent_idx`. Vetting requests: partial index
        # `vetting_request_due_idx`. Notifications: `notification_state_created_idx`.
        outbox_depth = GaugeMetricFamily("snowbuddy_outbox_depth", "Rows waiting in an outbox.", labels=["outbox"])
        outbox_age = GaugeMetricFamily(
            "snowbuddy_outbox_oldest_age_seconds",
            "Age of an outbox's oldest waiting row (0 when empty).",
            labels=["outbox"],
        )
        dispatch = SearchDispatch.objects.filter(sent_at__isnull=True).aggregate(
            n=Count("pk"), oldest=Min("created_at")
        )
        vetting = SearchVetting.objects.filter(requested_at__isnull=True, answered_at__isnull=True).aggregate(
            n=Count("pk"), oldest=Min("created_at")
        )
        notifications = {
            row["state"]: row
            for row in SearchNotification.objects.filter(
                state__in=[NotificationState.PENDING, NotificationState.DEAD_LETTER]
            )
            .values("state")
            .annotate(n=Count("pk"), oldest=Min("created_at"))
            .order_by()
        }
        pending = notifications.get(NotificationState.PENDING, {"n": 0, "oldest": None})
        # User-core behaviour events (match requests): `userevent_state_id_idx`.
        user_events = {
            row["state"]: row
            for row in UserEvent.objects.filter(state__in=[NotificationState.PENDING, NotificationState.DEAD_LETTER])
            .values("state")
            .annotate(n=Count("pk"), oldest=Min("created_at"))
            .order_by()
        }
        events_pending = user_events.get(NotificationState.PENDING, {"n": 0, "oldest": None})
        for name, agg in (
            ("dispatch", dispatch),
            ("vetting", vetting),
            ("notification", pending),
            ("user_event", events_pending),
        ):
            outbox_depth.add_metric([name], agg["n"])
            outbox_age.add_metric([name], (now - agg["oldest"]).total_seconds() if agg["oldest"] else 0)
        out += [outbox_depth, outbox_age]
        dead = notifications.get(NotificationState.DEAD_LETTER, {"n": 0})["n"]
        out.append(
            _gauge(
                "snowbuddy_notifications_dead_lettered",
                "Completion notifications SnowTrace never acknowledged (until staff redeliver them).",
                dead,
            )
        )

        out.append(
            _gauge(
                "snowbuddy_user_events_dead_lettered",
                "Match-request events SnowTrace's user service never accepted (until staff redeliver them).",
                user_events.get(NotificationState.DEAD_LETTER, {"n": 0})["n"],
            )
        )

        # 4. Staff-attention markers: partial index `search_attention_idx`.
        flags = Search.objects.filter(Q(drift_flagged=True) | Q(callback_dead_lettered=True)).aggregate(
            drift=Count("pk", filter=Q(drift_flagged=True)),
            dead=Count("pk", filter=Q(callback_dead_lettered=True)),
        )
        out.append(
            _gauge("snowbuddy_drift_flagged_searches", "Searches whose mirror drift is flagged.", flags["drift"])
        )
        out.append(
            _gauge(
                "snowbuddy_callbacks_dead_lettered_searches",
                "Searches whose workflow callback was dead-lettered by the engine.",
                flags["dead"],
            )
        )

        # 5. The mirror: how long since the DynamoDB sync last completed (`SyncWatermark`, a handful
        # of rows). Reported only while the durable engine is in use.
        if durable_active or environment_engine() == Engine.DURABLE:
            synced = SyncWatermark.objects.filter(name__startswith="dynamodb:").aggregate(at=Max("updated_at"))["at"]
            if synced is not None:
                out.append(
                    _gauge(
                        "snowbuddy_mirror_lag_seconds",
                        "Seconds since the DynamoDB → console mirror sync last completed.",
                        (now - synced).total_seconds(),
                    )
                )
            out.append(
                _gauge(
                    "snowbuddy_mirror_lag_bound_seconds",
                    "The mirror lag staff should look at (3 sync periods plus the skew).",
                    mirror_lag_bound_seconds(),
                )
            )

        # 6. The Durable API circuit breaker: its shared state in the cache (no database read).
        state = durable_breaker().state()
        breaker = GaugeMetricFamily(
            "snowbuddy_durable_breaker_state",
            "The Durable API circuit breaker: 1 for its current state.",
            labels=["state"],
        )
        for name in BREAKER_STATES:
            breaker.add_metric([name], 1 if state.state == name else 0)
        out.append(breaker)
        out.append(
            _gauge(
                "snowbuddy_durable_breaker_failures",
                "Consecutive Durable API failures counted by the breaker.",
                state.failures,
            )
        )
        return out
