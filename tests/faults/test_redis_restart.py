"""The broker restarted with searches queued: a Redis server this test starts itself (on its own
loopback port, keeping nothing on disk) is restarted while 60 searches wait in it. The queue is
gone; the searches' queue leases expire and beat's lease sweeper sends them again."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests
from django.db import connection

from matching.models import Search, SearchStatus
from tests.faults.conftest import free_port, submit, tally, unfinished
from tests.helpers.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SEARCHES = 60
QUEUE_LEASE = 10  # MATCHING_QUEUE_LEASE_SECONDS (default 30)
BOUND_SECONDS = QUEUE_LEASE + 10 + 25  # + the sweep interval (10 s) + running them


class OwnRedis:
    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_for(lambda: _pings(client), timeout=15, message="our redis-server to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _dispatched(ids: list[str]) -> int:
    connection.close()
    return Search.objects.filter(pk__in=ids, status=SearchStatus.DISPATCHED).count()


def test_a_broker_restart_that_loses_the_queue_loses_no_search(
    console, few_candidates, snowtrace_key, tmp_path, report
):
    own = OwnRedis(free_port(), tmp_path / "own-redis.log")
    own.start()
    try:
        broker = f"redis://127.0.0.1:{own.port}/0"
        console.env.update(CELERY_BROKER_URL=broker, MATCHING_QUEUE_LEASE_SECONDS=str(QUEUE_LEASE))
        _, url = console.web()
        console.beat()
        with requests.Session() as session:
            ids = [submit(session, url, snowtrace_key, f"rider-{n % 10}") for n in range(SEARCHES)]
        wait_for(lambda: _dispatched(ids) == SEARCHES, timeout=30, message="every search to reach the broker")
        queued = redis.Redis(port=own.port).llen(console.env["CELERY_TASK_DEFAULT_QUEUE"])

        own.stop()  # SIGKILL: nothing on disk, the queue is gone
        restarted_at = time.monotonic()
        own.start()
        assert redis.Redis(port=own.port).llen(console.env["CELERY_TASK_DEFAULT_QUEUE"]) == 0
        console.worker("worker", concurrency=2)

        wait_for(lambda: unfinished(ids) == 0, timeout=BOUND_SECONDS + 30, interval=0.5, message="every search")
        recovered_in = time.monotonic() - restarted_at
        figures = tally(ids)
        report(
            "Redis broker restarted with searches queued",
            in_flight=f"{SEARCHES} ({queued} messages queued)",
            faults="1 SIGKILL + restart of redis-server (no persistence)",
            lost=figures["lost"],
            duplicated=figures["duplicated"],
            recovered_s=round(recovered_in, 1),
            queue_lease=f"{QUEUE_LEASE}s",
            bound_s=BOUND_SECONDS,
        )
        assert queued >= SEARCHES - 2  # they really were waiting in the broker (beat's own tasks aside)
        assert figures == {"lost": 0, "duplicated": 0}
        assert recovered_in <= BOUND_SECONDS
    finally:
        console.stop()
        own.stop()
