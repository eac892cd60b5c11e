"""A span per stage of a Celery run (claim, candidates, search, store), its SQL counted, not traced.

The psycopg instrumentation makes a span per SQL statement. On the worker's hot path that is some
fifteen spans a search, each a few hundred microseconds of Python on a path of ~40 ms (measured:
docs/observability.md, "Overhead"). Inside a stage span the statements are still run and counted
(`db.statement_count` on the stage's span) but make no span of their own; everything else keeps
its instrumentation: the Celery publish of the notification task on commit, any HTTP call.

With tracing off, or the stage not in a recording span, `stage_span` is a bare `yield`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from workflows.durable import tracing

STATEMENT_COUNT = "db.statement_count"


@contextmanager
def stage_span(stage: str) -> Iterator[None]:
    """`with stage_span("store"): ...`: one span named ``stage <name>``; SQL statements inside it are
    counted on it instead of each making a span."""
    if not tracing.enabled():
        yield
        return
    with tracing.tracer().start_as_current_span(f"stage {stage}", attributes={"stage": stage}) as span:
        if not span.is_recording():
            yield
            return
        # The psycopg (dbapi) instrumentation skips a statement run under this.
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        count = 0

        def untraced(execute, sql, params, many, context):
            nonlocal count
            count += 1
            with suppress_instrumentation():
                return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(untraced):
                yield
        finally:
            span.set_attribute(STATEMENT_COUNT, count)
