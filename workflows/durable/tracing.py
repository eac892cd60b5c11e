"""OpenTelemetry tracing for every process of a search: one trace from the submit to the callback.

Configured only by the standard ``OTEL_*`` variables, and off unless they ask for an exporter:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or
``OTEL_TRACES_EXPORTER=otlp|console``. ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
turn it off whatever else is set. Off means no SDK is imported or set up: the helpers below then
run against OpenTelemetry's no-op API, which still passes a caller's ``traceparent`` through.

Plain Python (the Lambda side imports no Django): the console's processes call
``snowbuddy.tracing.setup``, which adds the Django, Celery and psycopg instrumentations to what
``configure`` sets up here (requests and botocore, which the Lambda side uses too).

The W3C ``traceparent`` travels: web request → dispatch record (stored, so the relay thread or the
sweeper sends in the submit's trace) → the signed Durable API start (a header, signed with the
rest) → the execution input (``trace_context``; the workflow runs later, and each replay links
its invocation to the same parent) → the callback webhook (the requests instrumentation sets the
header; the console's Django instrumentation continues the trace).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

logger = logging.getLogger(__name__)

T = TypeVar("T")
TRACER_NAME = "snowbuddy"
# The W3C trace-context headers: the console signs them with the Durable API start
# (workflows/durable_console/client.py).
CARRIER_KEYS = ("traceparent", "tracestate")

_lock = threading.Lock()
_configured_pid: int | None = None
_provider: Any = None
_tracer: trace.Tracer | None = None


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces to be exported."""
    env = os.environ if env is None else env
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in (env.get("OTEL_TRACES_EXPORTER") or "").split(",") if e.strip()}
    if exporters == {"none"}:
        return False
    return bool(exporters or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def disabled_instrumentations(env: Mapping[str, str] | None = None) -> set[str]:
    """The instrumentations OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names (comma-separated: django,
    celery, psycopg, requests, botocore), as OpenTelemetry's auto-instrumentation reads it."""
    env = os.environ if env is None else env
    return {n.strip().lower() for n in (env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") or "").split(",") if n.strip()}


def configure(service_name: str, *, instrument: tuple[str, ...] = ("requests", "botocore")) -> bool:
    """Set up the SDK in this process once (again after a fork). True if tracing is on.

    `service_name` is the default ``service.name``; ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``) wins over it, as the standard says."""
    global _configured_pid, _provider
    if not wanted():
        return False
    with _lock:
        if _configured_pid == os.getpid():
            return True
        if _provider is not None:
            # A child forked after its parent set up tracing: the SDK's batch processor restarts its
            # export thread after a fork by itself (the provider can be set once per process anyway).
            _configured_pid = os.getpid()
            return True
        existing = trace.get_tracer_provider()
        if not isinstance(existing, trace.ProxyTracerProvider):
            # Set up already by someone else (an OpenTelemetry Lambda layer, opentelemetry-instrument):
            # use theirs rather than export twice.
            _provider, _configured_pid = existing, os.getpid()
            return True
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError:
            # A Lambda package built without the SDK: the platform's layer may set one up instead.
            logger.warning("OTEL_* asks for traces but opentelemetry-sdk is not installed; tracing stays off")
            return False
        resource = Resource.create({"process.pid": os.getpid()})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": service_name}))
        provider = TracerProvider(resource=resource)
        exporters = {e.strip().lower() for e in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")}
        if "otlp" in exporters:
            # OTLP over HTTP/protobuf; the exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout).
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if "console" in exporters:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        _provider = provider
        _configured_pid = os.getpid()
        instrument = tuple(name for name in instrument if name not in disabled_instrumentations())
        if "requests" in instrument:
            from opentelemetry.instrumentation.requests import RequestsInstrumentor

            if not RequestsInstrumentor().is_instrumented_by_opentelemetry:
                RequestsInstrumentor().instrument()
        if "botocore" in instrument:
            from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

            if not BotocoreInstrumentor().is_instrumented_by_opentelemetry:
                BotocoreInstrumentor().instrument()
        logger.info("tracing on: service %s", provider.resource.attributes.get("service.name"))
        return True


def enabled() -> bool:
    return _configured_pid == os.getpid()


def flush(timeout_millis: int = 5000) -> None:
    """Export what this process holds now: a Lambda sandbox may be frozen right after it returns."""
    if enabled() and hasattr(_provider, "force_flush"):
        _provider.force_flush(timeout_millis)


def tracer() -> trace.Tracer:
    """This code's tracer. One object per process: the SDK's get_tracer() builds its scope and
    resets the warnings filters on every call (a span per stage, per send). Got before the SDK is
    set up, it is the API's proxy, which hands over to the real one once there is one."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer


def carrier() -> dict[str, str]:
    """The current trace context as headers of the configured propagators (W3C `traceparent` and
    `tracestate`, and `baggage`, unless OTEL_PROPAGATORS says otherwise); {} when there is none."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def current_traceparent() -> str:
    return carrier().get("traceparent", "")


def trace_id_of(traceparent: str | None) -> str:
    """The 32-hex trace id of a ``traceparent`` ("" when it is missing or malformed)."""
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return ""
    return parts[1].lower()


def context_from(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The trace context carried by `headers` (any case), or the empty context."""
    if not isinstance(headers, Mapping):
        return otel_context.Context()
    lowered = {str(k).lower(): str(v) for k, v in headers.items() if isinstance(v, str)}
    return propagate.extract(lowered, context=otel_context.Context())


@contextmanager
def span_in(
    name: str,
    parent: Mapping[str, Any] | None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span whose parent is the trace context in `parent` (a carrier), made current.

    Exceptions are recorded but do not mark the span failed: the durable SDK suspends an
    invocation by raising, and a retried step is not an error of the search."""
    context = context_from(parent) if parent else None
    with tracer().start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=dict(attributes or {}),
        set_status_on_exception=False,
    ) as span:
        yield span


def in_current_context(name: str, fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` wrapped to run in a span under the context current *now*, whichever thread later calls it
    (the durable SDK may run a step's function on another thread, where the context would be lost)."""
    captured = otel_context.get_current()

    def run(*args: Any, **kwargs: Any) -> T:
        token = otel_context.attach(captured)
        try:
            with tracer().start_as_current_span(name, set_status_on_exception=False):
                return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run
