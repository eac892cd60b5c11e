"""Tracing in the console's processes: `setup(kind)` once per process, after any fork.

Called from gunicorn's post_fork (each web worker), Celery's worker_process_init (each pool child;
worker_init for a pool that does not fork) and manage.py (runserver, commands). Off, and nothing
of the SDK imported, unless the OTEL_* variables ask for an exporter (workflows/durable/tracing.py,
which also sets up the requests and botocore instrumentations the Lambda side shares).

A SQL statement run outside any span makes no span (a trace of its own would be noise: health
checks, scrapes, the lease heartbeat), nor does Django's health check of a kept connection; the
worker's stages, the relay's send and the search API's requests count theirs on their span instead
of tracing each (`statements_counted` in workflows/tracing.py).
"""

from __future__ import annotations

import os

from workflows.durable import tracing

SERVICE_NAMES = {"web": "snowbuddy-web", "worker": "snowbuddy-worker", "manage": "snowbuddy-manage"}


def setup(kind: str) -> bool:
    """True if tracing is on in this process."""
    if not tracing.wanted():
        return False
    first = not tracing.enabled()
    if not tracing.configure(SERVICE_NAMES[kind]):
        return False
    if first:
        _instrument_console()
    return True


def _instrument_console() -> None:
    # Load balancers' health checks and Prometheus' scrapes would be a trace every few seconds each;
    # the standard variable still decides when it is set.
    os.environ.setdefault("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "/health$,/metrics$")
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    # Django's: a server span per request (continuing an incoming traceparent, e.g. the workflow's
    # callback), named by the route pattern. Must run before the WSGI handler loads its middleware.
    # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS leaves out the ones it names, as auto-instrumentation does.
    disabled = tracing.disabled_instrumentations()
    instrumentors = {"django": DjangoInstrumentor, "celery": CeleryInstrumentor, "psycopg": PsycopgInstrumentor}
    for name, instrumentor_class in instrumentors.items():
        instrumentor = instrumentor_class()
        if name not in disabled and not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    from django.db.backends.signals import connection_created

    connection_created.connect(_statements_outside_a_trace_untraced, dispatch_uid="snowbuddy-tracing")


def _statements_outside_a_trace_untraced(sender, connection, **_kwargs) -> None:
    """On each new database connection: a statement run outside any span makes no span.

    Without this, each would be a trace of its own: the excluded /health and /metrics (their
    SELECT 1 and the collector's gauges), the lease heartbeat's renewals, a command's queries.
    Once per connection object: Django reuses it when it connects again (the relay reconnects for
    each burst), and a wrapper per reconnect would make every statement slower than the last."""
    if _untraced_without_a_parent not in connection.execute_wrappers:
        # First, outermost: a block's execute_wrapper() that opened the connection pops its own.
        connection.execute_wrappers.insert(0, _untraced_without_a_parent)
    if "is_usable" not in vars(connection):
        # The health check (conn_health_checks) of a kept connection, a SELECT 1 on the raw
        # connection outside Django's cursor wrappers, once per request or task: a span of its own
        # in every poll's trace, or a trace of its own in the relay's thread. It makes none.
        connection.is_usable = _health_check_untraced(connection.is_usable)


def _health_check_untraced(is_usable):
    def untraced() -> bool:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with suppress_instrumentation():
            return is_usable()

    return untraced


def _untraced_without_a_parent(execute, sql, params, many, context):
    from opentelemetry import trace

    if trace.get_current_span().get_span_context().is_valid:
        return execute(sql, params, many, context)
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        return execute(sql, params, many, context)
