"""A Celery worker SIGKILLed with searches in flight, on Redis and on RabbitMQ: nothing lost, nothing
run twice to completion, every search finished within a minute, with the default lease settings.

The console runs as in production (gunicorn, one beat, workers). 100 searches are submitted and a
worker takes them. It is caught mid-task deterministically: the test holds a lock on the results
table, so each of the worker's two processes claims a search, scores it and then waits to store its
results (a search takes milliseconds on the warm index, too short to aim a signal at otherwise).
The worker is then SIGKILLed with its pool, the lock released, and another worker started. The dead
worker's leases expire and beat's lease sweeper sends its two searches again under a new
generation. On RabbitMQ the dead worker's unacknowledged messages come straight back and are
refused while its lease is still live; on Redis they would wait for the visibility timeout, which
recovery no longer depends on.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection
from kombu import Connection

from matching.models import Search, SearchEvent, SearchStatus
from tests.faults.conftest import submit, tally, unfinished
from tests.helpers.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
SEARCHES = 100
BOUND_SECONDS = 60


def _broker(kind: str) -> str:
    if kind == "redis":
        return settings.REDIS_URL
    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # the scenario needs the machine's RabbitMQ; say so plainly
        pytest.fail(f"RabbitMQ is not reachable at 127.0.0.1:5672 (guest/guest): {exc}")
    return RABBITMQ_URL


def _delete_queue(broker: str, queue: str) -> None:
    # Gone already is fine: Redis drops an empty list by itself.
    with Connection(broker, connect_timeout=3) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(queue)


def _dsn(env: dict[str, str]) -> str:
    return env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)


def _waiting_on_results(locker: psycopg.Connection) -> int:
    return locker.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'matching_searchresult'::regclass"
    ).fetchone()[0]


def _victim_running() -> int:
    connection.close()
    return Search.objects.filter(status=SearchStatus.RUNNING, lease_owner__contains="victim").count()


@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_a_worker_killed_with_searches_in_flight_loses_and_duplicates_nothing(
    broker_kind, console, snowtrace_key, candidates, report
):
    broker = _broker(broker_kind)
    console.env["CELERY_BROKER_URL"] = broker
    queue = console.env["CELERY_TASK_DEFAULT_QUEUE"]
    try:
        _, url = console.web()
        console.beat()
        with ThreadPoolExecutor(8) as pool, requests.Session() as session:
            ids = list(pool.map(lambda n: submit(session, url, snowtrace_key, f"rider-{n % 20}"), range(SEARCHES)))
        with psycopg.connect(_dsn(console.env)) as locker:
            locker.execute("LOCK TABLE matching_searchresult IN EXCLUSIVE MODE")  # reads go on, writes wait
            victim = console.worker("victim", concurrency=2)
            wait_for(
                lambda: _victim_running() >= 2 and _waiting_on_results(locker) >= 2,
                timeout=60,
                interval=0.05,
                message="both of the victim's processes to hold a claimed search",
            )
            killed_at = time.monotonic()
            victim.kill()
            locker.rollback()
        # Counted once it is dead: nothing can touch its claims until their leases expire.
        in_flight, held = unfinished(ids), _victim_running()
        console.worker("survivor", concurrency=2)

        wait_for(lambda: unfinished(ids) == 0, timeout=BOUND_SECONDS + 30, interval=0.5, message="every search")
        recovered_in = time.monotonic() - killed_at
        figures = tally(ids)
        resent = SearchEvent.objects.filter(search_id__in=ids, kind="lease_expired").count()
        report(
            f"worker SIGKILL on {broker_kind}",
            in_flight=in_flight,
            faults=f"1 SIGKILL (worker held {held} claimed)",
            lost=figures["lost"],
            duplicated=figures["duplicated"],
            recovered_s=round(recovered_in, 1),
            resent_after_lease_expiry=resent,
            bound_s=BOUND_SECONDS,
        )
        assert in_flight >= 50, f"only {in_flight} searches were in flight when the worker died"
        assert figures == {"lost": 0, "duplicated": 0}
        assert held == 2 and resent >= held  # the dead worker's searches came back through their leases
        assert recovered_in <= BOUND_SECONDS
    finally:
        console.stop()
        _delete_queue(broker, queue)
