"""A circuit breaker on the Durable API, shared by every console process through the cache.

Closed: requests flow; consecutive failures (connection errors, timeouts, 5xx) are counted, and any
answer below 500 resets the count. At MATCHING_DURABLE_BREAKER_FAILURES in a row it opens: for
MATCHING_DURABLE_BREAKER_OPEN_SECONDS the client makes no request at all and new searches go to the
Celery engine (workflows/dispatch/engine_choice.py). After that it is half-open: requests flow again (beat's
`probe_durable_api` makes one if nothing else does); the first success closes it, a failure opens
it for another period.

The state lives in the Django cache (Redis in production), so one gunicorn worker's failures
protect the others and the Celery workers. When the cache itself is unreachable each process keeps
its own state, which is still a breaker, just not a shared one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from matching import metrics

logger = logging.getLogger(__name__)


class _LocalStore:
    """The per-process fallback when the cache cannot be reached."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values.get(key)

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def incr(self, key: str) -> int:
        with self._lock:
            self._values[key] = int(self._values.get(key) or 0) + 1
            return self._values[key]


_local = _LocalStore()


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed | open | half_open
    failures: int = 0
    opened_at: float | None = None
    reason: str = ""


class CircuitBreaker:
    def __init__(self, name: str, *, failure_threshold: int, open_seconds: float):
        self.name = name
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._failures_key = f"breaker:{name}:failures"
        self._open_key = f"breaker:{name}:open"

    # --- the shared store, falling back to this process's ------------------------------------

    def _get(self, key: str) -> Any:
        try:
            return cache.get(key)
        except Exception as exc:  # the cache is down: any error means "use the local state"
            logger.debug("breaker cache read failed: %s", exc)
            return _local.get(key)

    def _set(self, key: str, value: Any) -> None:
        _local.set(key, value)
        try:
            cache.set(key, value, timeout=None)
        except Exception as exc:
            logger.debug("breaker cache write failed: %s", exc)

    def _delete(self, key: str) -> None:
        _local.delete(key)
        try:
            cache.delete(key)
        except Exception as exc:
            logger.debug("breaker cache delete failed: %s", exc)

    def _incr(self, key: str) -> int:
        try:
            cache.add(key, 0, timeout=None)
            return int(cache.incr(key))
        except Exception as exc:
            logger.debug("breaker cache incr failed: %s", exc)
            return _local.incr(key)

    # --- the breaker ----------------------------------------------------------------------------

    def state(self) -> BreakerState:
        opened = self._get(self._open_key)
        failures = int(self._get(self._failures_key) or 0)
        if not opened:
            return BreakerState("closed", failures)
        since = float(opened["since"])
        state = "open" if time.time() - since < self.open_seconds else "half_open"
        return BreakerState(state, failures, since, str(opened.get("reason") or ""))

    def allow_request(self) -> bool:
        return self.state().state != "open"

    def open_reason(self, current: BreakerState | None = None) -> str:
        """Why the breaker is not closed ("" when it is): new searches fail over while it is not."""
        current = current or self.state()
        if current.state == "closed":
            return ""
        params = self.open_params(current)
        return f"Durable API circuit {current.state.replace('_', '-')} since {params['since']} UTC: {current.reason}"

    @staticmethod
    def open_params(current: BreakerState) -> dict:
        """The values `open_reason` names, for the console to word (matching.admin.words)."""
        opened = time.strftime("%H:%M:%S", time.gmtime(current.opened_at or 0))
        return {"state": current.state, "since": opened, "reason": current.reason}

    def record_success(self) -> None:
        if self._get(self._open_key):
            logger.warning("Durable API circuit closed: the API answers again")
            metrics.BREAKER_TRANSITIONS.labels(to="closed").inc()
            self._delete(self._open_key)
        self._delete(self._failures_key)

    def record_failure(self, reason: str) -> None:
        failures = self._incr(self._failures_key)
        opened = self._get(self._open_key)
        if opened or failures >= self.failure_threshold:
            # A failed half-open probe opens it for another period, too.
            if not opened:
                logger.warning("Durable API circuit opened after %d failures: %s", failures, reason)
                metrics.BREAKER_TRANSITIONS.labels(to="open").inc()
            self._set(self._open_key, {"since": time.time(), "reason": reason[:500]})


def durable_breaker() -> CircuitBreaker:
    return CircuitBreaker(
        "durable-api",
        failure_threshold=settings.MATCHING_DURABLE_BREAKER_FAILURES,
        open_seconds=settings.MATCHING_DURABLE_BREAKER_OPEN_SECONDS,
    )
