"""A worker killed mid-task loses no search: the broker hands the message to another worker.

The worker is caught mid-task deterministically: the test holds a row lock on the search, so
the worker blocks inside its claim; it is then SIGKILLed with its pool child (a node dying,
not a polite stop). With early acks the message would be gone and the search stuck.
"""

import os
import signal
import time

import psycopg
import pytest
from django.db import connection

from matching.models import Search, SearchStatus
from tests.conftest import start_celery_worker, stop_celery_worker
from tests.helpers.bodies import OPEN_BUDDY as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.polling import wait_for
from workflows.dispatch.submit import search_submit
from workflows.tasks import run_search

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

QUEUE = "crash-test"
VISIBILITY_SECONDS = 4


def _dsn(env: dict) -> str:
    return env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)


def test_a_search_survives_its_worker_being_killed_mid_task(worker_env, tmp_path, resorts, monkeypatch):
    stub_dispatch_send(monkeypatch)
    search = search_submit(seeker_id="owner-1", preferences=PREFS)
    env = {**worker_env, "CELERY_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_SECONDS), "CELERY_TASK_TIME_LIMIT": "3"}

    # prefork: the task runs in a child, so an early ack would already have been sent.
    first = start_celery_worker(tmp_path / "first.log", env, queues=QUEUE, pool="prefork")
    with psycopg.connect(_dsn(worker_env)) as locker:
        locker.execute("SELECT 1 FROM matching_search WHERE search_id = %s FOR UPDATE", [search.pk])
        task = run_search.apply_async(args=[str(search.pk), 1], queue=QUEUE)
        wait_for(
            lambda: f"Task workflows.tasks.run_search[{task.id}] received" in (tmp_path / "first.log").read_text(),
            timeout=30,
            message="the worker to take it",
        )
        wait_for(
            lambda: locker.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('tuple', 'transactionid')"
            ).fetchone()[0],
            timeout=30,
            message="the worker to block on the search's row",
        )
        received_at = time.monotonic()
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker, parent and child
        first.wait(timeout=10)
        locker.rollback()

    connection.close()
    assert Search.objects.get(pk=search.pk).status == SearchStatus.PENDING  # not lost, not finished

    # The message becomes visible again once the visibility timeout has passed.
    wait_for(lambda: time.monotonic() - received_at > VISIBILITY_SECONDS + 0.5, timeout=30, message="visibility")
    second = start_celery_worker(tmp_path / "second.log", env, queues=QUEUE)
    try:

        def succeeded():
            connection.close()
            return Search.objects.get(pk=search.pk).status == SearchStatus.SUCCEEDED

        wait_for(succeeded, timeout=60, message="the redelivered search to succeed")
    finally:
        stop_celery_worker(second)
    assert task.id in (tmp_path / "second.log").read_text()
