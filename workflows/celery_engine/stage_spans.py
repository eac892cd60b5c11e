"""A span per stage of a Celery run (claim, candidates, search, store), its SQL counted, not traced.

The psycopg instrumentation makes a span per SQL statement: on the worker's hot path some ten a
search, each a few hundred microseconds of Python on a path of ~30 ms (measured: docs/
observability.md, "Overhead"). Inside a stage span the statements still run and are counted
(`db.statement_count` on the stage's span, `statements_counted` in workflows/tracing.py) but
make no span of their own; everything else keeps its instrumentation: the Celery publish of the
notification task on commit, any HTTP call.

With tracing off, `stage_span` is a bare `yield`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from workflows.durable import tracing
from workflows.tracing import statements_counted


@contextmanager
def stage_span(stage: str) -> Iterator[None]:
    """`with stage_span("store"): ...`: one span named ``stage <name>``; SQL statements inside it are
    counted on it instead of each making a span."""
    if not tracing.enabled():
        yield
        return
    with (
        tracing.tracer().start_as_current_span(f"stage {stage}", attributes={"stage": stage}),
        statements_counted(connection),
    ):
        yield
