"""Tracing helpers of the console's own processes (web, relay, Celery worker): SQL counted on a span.

The psycopg instrumentation makes a span per SQL statement. On the paths a search takes many times
(its submit, the client's polls, the relay's send, the worker's stages) that is most of the spans
and a good part of what tracing costs (docs/observability.md, "Overhead"); there the statements
still run and are counted on the span that covers them, ``db.statement_count``, but make no span
of their own. Everything else inside keeps its instrumentation (a Celery publish on commit, an HTTP
call).

Console-side only: the Lambda side (workflows/durable/) runs no SQL. The SDK set-up and the rest of
the tracing helpers are in workflows/durable/tracing.py, which both sides share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import trace

from workflows.durable import tracing

T = TypeVar("T")
# On a span whose SQL statements were counted rather than traced one by one.
STATEMENT_COUNT = "db.statement_count"


@contextmanager
def statements_counted(connection: Any) -> Iterator[None]:
    """SQL run on `connection` (a Django database connection: anything with ``execute_wrappers``)
    inside this block makes no span of its own; the current span gets their number as
    ``db.statement_count``. A bare ``yield`` with tracing off or the current span not recording."""
    span = trace.get_current_span()
    if not tracing.enabled() or not span.is_recording():
        yield
        return
    # The psycopg (dbapi) instrumentation makes no span for a statement run under this.
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    count = 0

    def untraced(execute: Callable[..., T], sql: Any, params: Any, many: bool, context: Any) -> T:
        nonlocal count
        count += 1
        with suppress_instrumentation():
            return execute(sql, params, many, context)

    # Not Django's execute_wrapper(), which pops the last wrapper on the way out: a connection
    # opened inside the block (Celery's fix-up may close the worker's between tasks) may have added one.
    connection.execute_wrappers.append(untraced)
    try:
        yield
    finally:
        connection.execute_wrappers.remove(untraced)
        span.set_attribute(STATEMENT_COUNT, count)
