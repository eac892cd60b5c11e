"""The lease a Celery worker holds on the attempt it runs, renewed by a heartbeat thread.

`search_claim` hands the worker a claim generation and a lease of MATCHING_LEASE_SECONDS; while the
task runs, `LeaseHeartbeat` renews it every MATCHING_LEASE_RENEW_SECONDS with a conditional UPDATE on
that generation. A worker that dies (SIGKILL, OOM, a lost node) stops renewing; the lease expires and
workflows/celery_engine/recovery.py sends the attempt again under a new generation, so the dead worker, should it
come back, can no longer finish it. A slow but living worker keeps renewing and is never re-run.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from django.conf import settings
from django.db import DatabaseError, connection

from matching.models import Search
from matching.services.leases import search_lease_release, search_lease_renew

logger = logging.getLogger(__name__)


class LeaseHeartbeat:
    """`with LeaseHeartbeat(search): ...` renews the claimed search's lease until the block ends.

    `lost` is set when a renewal finds the generation no longer holds the lease (it expired and was
    taken over); completion writes are conditional on the generation anyway, so the flag only lets
    the task stop early. Leaving the block by an exception gives the lease up at once, so a retry of
    the task can claim again without waiting for it to expire.
    """

    def __init__(self, search: Search, *, renew_every: float | None = None, lease_seconds: int | None = None):
        self.search_id = search.pk
        self.attempt = search.attempt
        self.generation = search.claim_generation
        self.lease_seconds = lease_seconds or settings.MATCHING_LEASE_SECONDS
        self.renew_every = renew_every or settings.MATCHING_LEASE_RENEW_SECONDS
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.search_id}", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.renew_every + 5)
        if exc_type is not None:
            try:
                search_lease_release(search_id=self.search_id, attempt=self.attempt, generation=self.generation)
            except DatabaseError:
                logger.warning("could not release the lease of %s; it expires on its own", self.search_id)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.renew_every):
                try:
                    renewed = search_lease_renew(
                        search_id=self.search_id,
                        attempt=self.attempt,
                        generation=self.generation,
                        lease_seconds=self.lease_seconds,
                    )
                except DatabaseError as exc:
                    # The next beat tries again; the lease is long enough to miss one.
                    logger.warning("lease renewal of %s failed: %s", self.search_id, exc)
                    connection.close()
                    continue
                if not renewed:
                    logger.warning("search %s generation %s lost its lease", self.search_id, self.generation)
                    self.lost.set()
                    return
        finally:
            connection.close()  # this thread's own connection
