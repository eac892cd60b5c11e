"""Hands committed dispatch records to a background thread, so a request never waits on the broker
or the Durable API.

A submit writes its search and dispatch record in one transaction; after commit the record's id
goes on this process's relay queue and the request returns. The relay thread sends them in order.
When a send finds the broker unreachable the relay stays quiet towards it for a moment (the records
stay unsent and the periodic sweeper sends them); the Durable API has its own circuit breaker.
Nothing depends on the relay for correctness: a process that dies with ids in its queue only
delays them until the sweeper's turn. The trace context needs no hand-over either: each record
stores the `traceparent` of the request that wrote it, and the send runs under it
(`dispatch_send` in workflows/dispatch/submit.py), in this thread or in the sweeper's process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from django.db import connection

from matching.models import Engine
from workflows.models import SearchDispatch

logger = logging.getLogger(__name__)

QUIET_SECONDS = 2.0  # after the broker was unreachable, leave its records to the sweeper this long
_CLOSE_CONNECTION = -1  # not a record: the thread closes its database connection (close_connection)


class DispatchRelay:
    def __init__(self, send: Callable[[int], bool], *, maxsize: int = 10_000):
        self._send = send
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[int] = queue.Queue(maxsize)
        self._quiet_until: dict[str, float] = {}

    def submit(self, dispatch_id: int) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait(dispatch_id)
        except queue.Full:
            logger.warning("dispatch relay full; record %s is left to the sweeper", dispatch_id)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted record was handled (tests, orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close_connection(self, timeout: float = 10.0) -> bool:
        """Have the thread close its database connection now and wait for it (tests: before the test
        database is dropped). False if it did not within `timeout`."""
        with self._lock:
            if self._pid != os.getpid():
                return True  # no thread in this process, so no connection
        self._queue.put(_CLOSE_CONNECTION)
        return self.wait_idle(timeout)

    def forget_failures(self) -> None:
        """Send at once again to every engine (tests start each case afresh)."""
        self._quiet_until.clear()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # First use in this process (or a forked child, which inherits no threads).
            self._pid = os.getpid()
            self._queue = queue.Queue(self._maxsize)
            self._quiet_until = {}
            threading.Thread(target=self._run, name="dispatch-relay", daemon=True).start()

    def _run(self) -> None:
        # The thread's database connection is kept between bursts as a request thread's is (at most
        # CONN_MAX_AGE, closed at once when broken), not opened again for each: a connect is a new
        # PostgreSQL backend on every submit. Idle for CONN_MAX_AGE, it is closed.
        work = self._queue
        max_age = connection.settings_dict.get("CONN_MAX_AGE")
        idle_seconds = max_age if max_age else None  # 0: closed after each burst anyway
        while True:
            try:
                dispatch_id = work.get(timeout=idle_seconds)
            except queue.Empty:
                connection.close()
                continue
            try:
                if dispatch_id == _CLOSE_CONNECTION:
                    connection.close()
                else:
                    self._handle(dispatch_id)
            except Exception:
                logger.exception("dispatch relay: sending record %s failed; the sweeper will", dispatch_id)
            finally:
                work.task_done()
                if work.empty():
                    connection.close_if_unusable_or_obsolete()

    def _handle(self, dispatch_id: int) -> None:
        engine = SearchDispatch.objects.filter(pk=dispatch_id).values_list("engine", flat=True).first()
        if engine is None or time.monotonic() < self._quiet_until.get(engine, 0.0):
            return
        if not self._send(dispatch_id) and engine == Engine.CELERY:
            unsent = SearchDispatch.objects.filter(pk=dispatch_id, sent_at__isnull=True).exists()
            if unsent:
                self._quiet_until[engine] = time.monotonic() + QUIET_SECONDS
