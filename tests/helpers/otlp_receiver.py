"""A loopback OTLP/HTTP trace receiver: what a collector would get, decoded with opentelemetry-proto.

Accepts ``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``, gzip or not) and keeps every
span as a flat `ReceivedSpan`. Tests read `spans()`; the overhead bench uses it as its collector.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.helpers.http import FakeHandler, LoopbackHttpServer


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind: 2 server, 3 client, 4 producer, 5 consumer
    service: str
    pid: int | None
    attributes: dict[str, Any] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class OtlpReceiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        self.server = LoopbackHttpServer(_Handler, self, host)

    @property
    def endpoint(self) -> str:
        return self.server.url

    def _add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            service=str(resource.get("service.name", "")),
                            pid=resource.get("process.pid"),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                        )
                    )
        with self._lock:
            self._spans.extend(received)
            self.requests += 1

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def start(self) -> OtlpReceiver:
        self.server.start(poll_interval=0.1)
        return self

    def stop(self) -> None:
        self.server.stop()


class _Handler(FakeHandler):
    def do_POST(self) -> None:
        raw = self.read_body()
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        if self.path != "/v1/traces":
            self.reply(404)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(raw)
        self.fake._add(request)
        self.reply(200, ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")
