"""One OpenTelemetry trace per search, across every process, on the local durable stack.

A loopback OTLP/HTTP receiver (tests/helpers/otlp_receiver.py) is the collector of every process: the
console (a real gunicorn worker: the request, its dispatch relay thread and the callback), the
Durable API server, and the Lambda stand-in hosting the workflow. They are told about it only by
the standard OTEL_* variables. One vetted coach search runs (GlobalCoach approves), and its spans
must all share one trace id, with the callback's server span a child of a workflow span. On the
Celery engine, the worker's task continues the submit's trace through the relay's publish, and
its stages are spans whose SQL is counted rather than traced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from django.db import connection

from devtools.durable_local._http import free_port
from devtools.durable_local.stack import LocalDurableStack, StackConfig
from matching.management.demo_profiles import demo_profiles
from matching.models import Search, SearchStatus, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.helpers.bodies import E2E_COACH as COACH_SEARCH
from tests.helpers.otlp_receiver import OtlpReceiver
from tests.helpers.polling import port_answers, wait_for
from workflows.models import SearchDispatch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def otlp(monkeypatch):
    receiver = OtlpReceiver().start()
    # The standard variables only; the stack's children inherit them from this environment.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    yield receiver
    receiver.stop()


@contextmanager
def _process(cmd: list[str], env: dict[str, str], log_path: Path, ready) -> Iterator[subprocess.Popen]:
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or ready(), timeout=60, message=f"{cmd[2]} to be ready")
        assert proc.poll() is None, log_path.read_text()
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "AWS_"))}
    env.update(
        DATABASE_URL=_database_url(),
        SNOWBUDDY_VAR_DIR=str(tmp_path / "var"),
        MATCHING_SEARCH_RATE="1000/min",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def _own_broker() -> str:
    """The test broker's Redis server, database 14 (`make test` gives the broker 15 and the cache 12),
    emptied first."""
    url = urlsplit(os.environ["REDIS_URL"])._replace(path="/14").geturl()
    redis.Redis.from_url(url).flushdb()
    return url


def _gunicorn(port: int, env: dict[str, str], tmp_path: Path):
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
           "--bind", f"127.0.0.1:{port}", "--workers", "1"]  # fmt: skip
    return _process(cmd, env, tmp_path / "gunicorn.log", lambda: port_answers(port))


@pytest.fixture
def profiles(resorts):
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(400, resort_regions(), seed=21)
    )


@pytest.fixture
def traced_console(otlp, tmp_path, profiles, api_key):
    port = free_port()
    config = StackConfig.for_tests(
        tmp_path / "durable",
        console_base_url=f"http://127.0.0.1:{port}",
        globalcoach_mode="approve_all",
        globalcoach_delay_seconds=0.2,
    )
    with LocalDurableStack(config) as stack:
        # SigV4: the traceparent header must pass the signature check too.
        env = _console_env(tmp_path, **{**stack.env, "MATCHING_WORKFLOW_AUTH_MODE": "iam_sigv4"})
        with _gunicorn(port, env, tmp_path):
            yield f"http://127.0.0.1:{port}", api_key


def _search(search_id: str) -> Search:
    connection.close()  # read what gunicorn committed
    return Search.objects.get(pk=search_id)


def test_one_vetted_durable_search_is_one_trace_across_every_process(traced_console, otlp):
    base, key = traced_console
    headers = {"X-API-Key": key, "X-User-Id": "owner-1", "Accept": "application/json; version=2"}
    response = requests.post(f"{base}/matching/searches", json=COACH_SEARCH, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    search_id = response.json()["search_id"]
    wait_for(lambda: _search(search_id).status == SearchStatus.SUCCEEDED, timeout=90, message="the search to succeed")
    assert _search(search_id).result_count > 0  # vetted: GlobalCoach approved, the callback applied it

    # The trace id the console stored with the dispatch record (and the search page shows).
    trace_id = SearchDispatch.objects.get(search_id=search_id, attempt=1).trace_id
    assert len(trace_id) == 32

    def webhook_spans():
        return [
            s
            for s in otlp.spans(trace_id)
            if s.kind == SERVER and s.service == "snowbuddy-web" and "webhooks/matching" in s.name
        ]

    def complete():
        spans = otlp.spans(trace_id)
        names = {(s.service, s.name) for s in spans}
        return (
            ("snowbuddy-web", "dispatch send durable") in names
            and any(s.service == "snowbuddy-durable-api" and s.kind == SERVER for s in spans)
            and ("snowbuddy-workflow", "deliver-callback") in names
            and len([s for s in webhook_spans() if s.parent_span_id]) >= 2  # awaiting_vetting + the result
        )

    wait_for(complete, timeout=30, message="every process's spans at the collector")
    spans = otlp.spans(trace_id)
    by_id = {s.span_id: s for s in spans}
    services = {s.service for s in spans}
    assert {"snowbuddy-web", "snowbuddy-durable-api", "snowbuddy-workflow"} <= services
    # Three processes: the console's gunicorn worker, the Durable API server, the Lambda stand-in.
    pids = {s.service: s.pid for s in spans}
    assert len(set(pids.values())) == 3 and os.getpid() not in pids.values()

    # Web: the submit is the trace's root; the relay thread sends under it, through the signed start.
    submit = next(s for s in spans if s.service == "snowbuddy-web" and s.kind == SERVER and not s.parent_span_id)
    assert "matching/searches" in submit.name
    relay = next(s for s in spans if s.name == "dispatch send durable")
    assert relay.parent_span_id == submit.span_id
    start_call = next(s for s in spans if s.kind == CLIENT and s.name == "Durable API POST /workflows/matching/start")
    assert by_id[start_call.parent_span_id] == relay
    # Durable API: its server span continues the SigV4-signed traceparent of the console's call.
    api_start = next(
        s for s in spans if s.service == "snowbuddy-durable-api" and s.name.endswith("/workflows/matching/start")
    )
    assert api_start.parent_span_id == start_call.span_id
    # The workflow: every invocation (first run, and the replay after the vetting callback) hangs
    # off the start, carried in the execution input.
    invocations = [s for s in spans if s.name == "workflow invocation"]
    assert len(invocations) >= 2
    assert {s.parent_span_id for s in invocations} == {api_start.span_id}
    assert {s.attributes["snowbuddy.search_id"] for s in invocations} == {search_id}
    steps = {s.name for s in spans if s.service == "snowbuddy-workflow"}
    assert {"mark-running", "rank-candidates", "vetting-submit", "write-result", "deliver-callback"} <= steps
    # The workflow's ranking read is served by the console, in the same trace.
    assert any(s.service == "snowbuddy-web" and s.kind == SERVER and "matches" in s.name for s in spans)
    # The callback: the console's webhook span is a child of the workflow's (its HTTP client span
    # inside deliver-callback).
    deliver = next(s for s in spans if s.name == "deliver-callback")
    callback = [
        s
        for s in webhook_spans()
        if by_id.get(s.parent_span_id) and by_id[s.parent_span_id].service == "snowbuddy-workflow"
    ]
    assert callback, "the callback's span has a workflow span as its parent"
    assert any(by_id[s.parent_span_id].parent_span_id == deliver.span_id for s in callback)


def test_a_celery_search_is_one_trace_from_the_submit_to_the_worker(otlp, tmp_path, profiles, api_key):
    # No MATCHING_WORKFLOW_URL: the Celery engine. A solo-pool worker of its own, on a broker database
    # of its own: the session's untraced worker (tests/conftest.py) would otherwise take the search.
    port = free_port()
    env = _console_env(tmp_path, REDIS_URL=_own_broker())
    worker = [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--pool", "solo", "-l", "info",
              "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"trace-{port}@%h"]  # fmt: skip
    worker_log = tmp_path / "worker.log"
    with _gunicorn(port, env, tmp_path), _process(worker, env, worker_log, lambda: "ready" in worker_log.read_text()):
        headers = {"X-API-Key": api_key, "X-User-Id": "owner-1", "Accept": "application/json; version=2"}
        search = {**COACH_SEARCH, "vetting_required": False}
        response = requests.post(f"http://127.0.0.1:{port}/matching/searches", json=search, headers=headers, timeout=30)
        assert response.status_code == 202, response.text
        search_id = response.json()["search_id"]
        wait_for(lambda: _search(search_id).status == SearchStatus.SUCCEEDED, timeout=60, message="the search")
        trace_id = SearchDispatch.objects.get(search_id=search_id, attempt=1).trace_id

        def run_span():
            return next((s for s in otlp.spans(trace_id) if s.name == "run/workflows.tasks.run_search"), None)

        run = wait_for(run_span, timeout=30, message="the worker's task span at the collector")
        # A poll (SnowTrace's browser: once a second) is a trace of its own, its SQL counted on its span.
        polled = requests.get(f"http://127.0.0.1:{port}/matching/searches/{search_id}", headers=headers, timeout=30)
        assert polled.status_code == 200, polled.text

        def poll_span():
            return next((s for s in otlp.spans() if s.name.startswith("GET matching/searches/")), None)

        poll = wait_for(poll_span, timeout=30, message="the poll's span at the collector")
    assert not poll.parent_span_id and poll.attributes["db.statement_count"] >= 2
    assert [
        s.name
        for s in otlp.spans(poll.trace_id)
        if s is not poll and not str(s.attributes.get("db.statement", "")).startswith("SELECT set_config('TimeZone'")
    ] == []  # (a worker's first connection sets its time zone outside Django's cursor wrappers)
    spans = otlp.spans(trace_id)
    by_id = {s.span_id: s for s in spans}
    assert run.service == "snowbuddy-worker"
    # The worker's run is a child of the relay's publish, under the submit's request.
    publish = by_id[run.parent_span_id]
    assert (publish.service, publish.name) == ("snowbuddy-web", "apply_async/workflows.tasks.run_search")
    relay = by_id[publish.parent_span_id]
    assert relay.name == "dispatch send celery" and not by_id[relay.parent_span_id].parent_span_id
    assert relay.attributes["db.statement_count"] >= 1  # marking the record sent: counted, not traced
    # The submit's own SQL (the key, the search, its event and dispatch record) is counted on its span.
    submit = by_id[relay.parent_span_id]
    assert submit.name == "POST matching/searches$" and submit.attributes["db.statement_count"] >= 4
    # The worker's stages are in the same trace, below its run, with their SQL counted, not traced
    # (as the relay's is).
    stages = sorted((s for s in spans if s.name.startswith("stage ")), key=lambda s: s.start_ns)
    assert [s.name for s in stages] == ["stage claim", "stage candidates", "stage search", "stage store"]
    assert all(s.service == "snowbuddy-worker" and s.parent_span_id == run.span_id for s in stages)
    assert stages[0].attributes["db.statement_count"] >= 1 and stages[-1].attributes["db.statement_count"] >= 1
    # (Only a new connection's time-zone set-up escapes: Django runs it outside its cursor wrappers.)
    traced = [
        s.attributes["db.statement"]
        for s in spans
        if by_id.get(s.parent_span_id) in [submit, relay, *stages] and "db.system" in s.attributes
        and not s.attributes["db.statement"].startswith("SELECT set_config('TimeZone'")
    ]  # fmt: skip
    assert traced == []
