"""The dispatch relay and the Celery worker keep their database connection between bursts and tasks,
as Django keeps a request thread's (DATABASE_CONN_MAX_AGE), instead of connecting for each search."""

import threading

import pytest
from django.db import connection

from workflows.dispatch.relay import DispatchRelay


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_relay_keeps_its_connection_between_bursts_until_asked_to_close_it(settings):
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0
    relay = DispatchRelay(lambda _dispatch_id: True)
    backends: list[int] = []
    relay._handle = lambda _dispatch_id: backends.append(_backend_pid())
    for dispatch_id in (1, 2):  # two bursts
        relay.submit(dispatch_id)
        assert relay.wait_idle(timeout=10)
    assert relay.close_connection(timeout=10)
    relay.submit(3)
    assert relay.wait_idle(timeout=10)
    assert relay.close_connection(timeout=10)
    assert backends[0] == backends[1] != backends[2]


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_connection_between_tasks_unless_it_is_broken():
    from celery.fixups.django import DjangoWorkerFixup

    from snowbuddy.celery import _database_connections_as_after_a_request, app

    # Celery's Django fix-up would close it around every task; it recycles it after 1000 instead.
    assert DjangoWorkerFixup(app).db_reuse_max == 1000
    seen: list[object] = []

    def worker() -> None:  # a pool child's thread: a connection of its own
        _backend_pid()
        first = connection.connection
        _database_connections_as_after_a_request()  # task_postrun, task_prerun
        _database_connections_as_after_a_request()
        seen.append(connection.connection is first)
        connection.errors_occurred = True  # a task that hit a database error
        connection.connection.close()  # … on a connection that is gone
        _database_connections_as_after_a_request()
        seen.append(connection.connection is None)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=30)
    assert seen == [True, True]
