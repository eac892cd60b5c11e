"""The staff routing switch, read by `choose_engine()` on every new search.

The switch is one database row (`EngineRouting`, pk 1). Each process keeps what it read for
`ROUTING_CACHE_SECONDS`, so a flip reaches every web and worker process within that bound with at
most one primary-key read per process per interval; the process that flips it forgets at once.
"""

from __future__ import annotations

import threading
import time

from workflows.models import EngineRouting, RoutingMode

ROUTING_CACHE_SECONDS = 2.0
_lock = threading.Lock()
_memo: dict[str, object] = {"mode": None, "until": 0.0}


def routing_mode() -> str:
    """`environment` (the default: the environment chooses the engine) or `celery`."""
    now = time.monotonic()
    with _lock:
        if _memo["mode"] is not None and now < _memo["until"]:
            return str(_memo["mode"])
    mode = EngineRouting.objects.filter(pk=1).values_list("mode", flat=True).first() or RoutingMode.ENVIRONMENT
    with _lock:
        _memo.update(mode=mode, until=now + ROUTING_CACHE_SECONDS)
    return mode


def routing_forget() -> None:
    with _lock:
        _memo.update(mode=None, until=0.0)
