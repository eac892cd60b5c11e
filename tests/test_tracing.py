"""Tracing is configured only by the standard OTEL_* variables, and completely off without them.

The whole trace across processes is tested on the local durable stack (tests/e2e/test_durable_tracing.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.durable import tracing

ROOT = Path(__file__).resolve().parent.parent

# What a gunicorn worker does after the fork (snowbuddy/gunicorn_conf.py), then a look at what got loaded.
PROBE = """
import json, sys
import django
django.setup()
from opentelemetry import trace
from django.conf import settings
from snowbuddy.tracing import setup
from workflows.durable import tracing
on = setup("web")
def instrumented():
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    classes = {"botocore": BotocoreInstrumentor, "celery": CeleryInstrumentor, "django": DjangoInstrumentor,
               "psycopg": PsycopgInstrumentor, "requests": RequestsInstrumentor}
    return sorted(name for name, cls in classes.items() if cls().is_instrumented_by_opentelemetry)
print(json.dumps({
    "instrumented": instrumented() if on else [],
    "on": on,
    "enabled": tracing.enabled(),
    "sdk": sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")),
    "instrumentations": sorted(m for m in sys.modules if m.startswith("opentelemetry.instrumentation.")
                               and not m.startswith("opentelemetry.instrumentation.utils")),
    "provider": type(trace.get_tracer_provider()).__name__,
    "middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
    "traceparent": tracing.current_traceparent(),
}))
"""


def _probe(**otel: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(DJANGO_SETTINGS_MODULE="snowbuddy.settings", **otel)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_otel_variables_no_sdk_is_set_up():
    probe = _probe()
    assert probe == {
        "instrumented": [],
        "on": False,
        "enabled": False,
        "sdk": [],
        "instrumentations": [],
        "provider": "ProxyTracerProvider",
        "middleware": [],
        "traceparent": "",
    }


def test_an_otlp_endpoint_turns_it_on_and_instruments_the_console():
    # Nothing is exported here: the process ends before the batch processor's first export.
    probe = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_BSP_SCHEDULE_DELAY="600000")
    assert probe["on"] and probe["enabled"] and probe["provider"] == "TracerProvider"
    assert "opentelemetry.instrumentation.django" in probe["instrumentations"]
    assert "opentelemetry.instrumentation.psycopg" in probe["instrumentations"]
    assert probe["middleware"], "Django's instrumentation middleware is in place"
    assert probe["instrumented"] == ["botocore", "celery", "django", "psycopg", "requests"]


def test_the_standard_variable_leaves_out_the_instrumentations_it_names():
    probe = _probe(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="psycopg, botocore",
    )
    assert probe["on"]
    assert probe["instrumented"] == ["celery", "django", "requests"]


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "console"}, False),  # naming a service asks for no exporter
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
    ],
)
def test_only_the_standard_variables_turn_tracing_on(env, wanted):
    assert tracing.wanted(env) is wanted


def test_a_traceparent_gives_its_trace_id():
    assert tracing.trace_id_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    assert tracing.trace_id_of("") == tracing.trace_id_of("garbage") == ""
    assert tracing.trace_id_of(f"00-{'0' * 32}-b7ad6b7169203331-01") == ""


REQUESTS_PROBE = """
import django, json
django.setup()
from snowbuddy.tracing import setup
assert setup("web")
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
from django.db import connection
connection.ensure_connection()  # its set-up statement (time zone) runs outside Django's cursor
exporter.clear()
from django.test import Client
client = Client(raise_request_exception=False, HTTP_HOST="localhost")
for path in ("/health", "/metrics", "/matching/searches"):
    client.get(path)
spans = exporter.get_finished_spans()
print("SERVER SPANS", json.dumps(sorted({s.name for s in spans if s.kind.name == "SERVER"})))
print("OTHER ROOTS", json.dumps([s.name for s in spans if s.parent is None and s.kind.name != "SERVER"]))
for _ in range(3):  # as the dispatch relay does after each burst
    connection.close()
    connection.ensure_connection()
print("WRAPPERS", [w.__name__ for w in connection.execute_wrappers])
import threading
from workflows.durable import tracing
from workflows.tracing import statements_counted
left = []
def worker():  # a Celery child: its connections opened inside a stage, closed after each task
    for _ in range(3):
        with tracing.tracer().start_as_current_span("stage"), statements_counted(connection):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        connection.close()
    left.extend(w.__name__ for w in connection.execute_wrappers)
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print("WORKER WRAPPERS", left)
"""


def test_health_checks_and_scrapes_make_no_traces():
    # Not even their SQL statements (the health check's SELECT 1) as traces of their own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(DJANGO_SETTINGS_MODULE="snowbuddy.settings", OTEL_TRACES_EXPORTER="console")
    result = subprocess.run(
        [sys.executable, "-c", REQUESTS_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # (the console exporter prints the spans too, at exit)
    line = next(line for line in result.stdout.splitlines() if line.startswith("SERVER SPANS "))
    assert json.loads(line.removeprefix("SERVER SPANS ")) == ["GET matching/searches$"]
    line = next(line for line in result.stdout.splitlines() if line.startswith("OTHER ROOTS "))
    assert json.loads(line.removeprefix("OTHER ROOTS ")) == []
    # The rule is set once per connection object, however often it connects again, and a counting
    # block leaves no wrapper behind (each one left would slow every later statement).
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRAPPERS "))
    assert line == "WRAPPERS ['_untraced_without_a_parent']"
    line = next(line for line in result.stdout.splitlines() if line.startswith("WORKER WRAPPERS "))
    assert line == "WORKER WRAPPERS ['_untraced_without_a_parent']"


@pytest.mark.django_db
def test_the_worker_stages_are_spans_whose_sql_is_counted_not_traced(
    resorts, monkeypatch, django_capture_on_commit_callbacks
):
    # In this process: a private provider (the global one is set once per process) and the psycopg
    # instrumentation on the test's own database connection.
    from django.db import connection
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from matching.models import SearchStatus
    from tests.helpers.bodies import OPEN_BUDDY
    from tests.helpers.dispatch import stub_dispatch_send
    from workflows.celery_engine.run import search_run_on_celery
    from workflows.dispatch.submit import search_submit
    from workflows.tracing import STATEMENT_COUNT

    stub_dispatch_send(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        search = search_submit(seeker_id="owner-1", preferences=OPEN_BUDDY)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "enabled", lambda: True)
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    connection.ensure_connection()
    PsycopgInstrumentor.instrument_connection(connection.connection, tracer_provider=provider)
    try:
        with provider.get_tracer("test").start_as_current_span("run"):
            connection.cursor().execute("SELECT 1")  # outside a stage: a span of its own
            with django_capture_on_commit_callbacks(execute=True):
                outcome = search_run_on_celery(search_id=str(search.pk), attempt=1)
    finally:
        PsycopgInstrumentor.uninstrument_connection(connection.connection)
    assert outcome.startswith("succeeded"), outcome
    search.refresh_from_db()
    assert search.status == SearchStatus.SUCCEEDED

    spans = exporter.get_finished_spans()
    run = next(s for s in spans if s.name == "run")
    stages = {s.name: s for s in spans if s.name.startswith("stage ")}
    assert list(stages) == ["stage claim", "stage candidates", "stage search", "stage store"]
    assert all(s.parent.span_id == run.context.span_id for s in stages.values())
    assert stages["stage claim"].attributes[STATEMENT_COUNT] >= 1
    assert stages["stage store"].attributes[STATEMENT_COUNT] >= 3
    statements = [s for s in spans if "db.system" in s.attributes or "db.system.name" in s.attributes]
    assert [s.attributes.get("db.statement") for s in statements] == ["SELECT 1"]


@pytest.mark.django_db
def test_the_search_apis_submit_and_poll_count_their_sql_on_the_request_span(
    resorts, api_key, no_dispatch, monkeypatch
):
    # The request's server span is the current span when the view runs (the Django instrumentation's
    # middleware makes it; here the test's own span stands in for it, on a private provider).
    from django.db import connection
    from django.test import Client
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.helpers.bodies import OPEN_BUDDY
    from workflows.tracing import STATEMENT_COUNT

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "enabled", lambda: True)
    client = Client(HTTP_X_API_KEY=api_key, HTTP_X_USER_ID="owner-1", HTTP_ACCEPT="application/json; version=2")
    connection.ensure_connection()
    # uninstrument_connection() leaves the flag set, and a later instrument_connection() would keep
    # another test's provider.
    connection.connection._is_instrumented_by_opentelemetry = False
    PsycopgInstrumentor.instrument_connection(connection.connection, tracer_provider=provider)
    try:
        with provider.get_tracer("test").start_as_current_span("POST matching/searches$"):
            submitted = client.post("/matching/searches", OPEN_BUDDY, content_type="application/json")
        assert submitted.status_code == 202, submitted.content
        with provider.get_tracer("test").start_as_current_span("GET matching/searches/(?P<search_id>[^/]+)$"):
            polled = client.get(f"/matching/searches/{submitted.json()['search_id']}")
        assert polled.status_code == 200, polled.content
        with provider.get_tracer("test").start_as_current_span("elsewhere"):
            connection.cursor().execute("SELECT 1")  # SQL outside the search API: a span of its own
    finally:
        PsycopgInstrumentor.uninstrument_connection(connection.connection)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    # The key, the search, its event and dispatch record on the submit; the key and the search on a poll.
    assert spans["POST matching/searches$"].attributes[STATEMENT_COUNT] >= 4
    assert spans["GET matching/searches/(?P<search_id>[^/]+)$"].attributes[STATEMENT_COUNT] >= 2
    assert STATEMENT_COUNT not in spans["elsewhere"].attributes
    statements = [s for s in spans.values() if "db.system" in s.attributes or "db.system.name" in s.attributes]
    assert [(s.attributes.get("db.statement"), s.parent.span_id) for s in statements] == [
        ("SELECT 1", spans["elsewhere"].context.span_id)
    ]
    assert connection.execute_wrappers == [], "the counting wrapper is gone after each request"
