"""Log lines: readable text by default, one JSON object per line with LOG_FORMAT=json.

Every line carries the context fields `request_id`, `search_id`, `attempt`, `engine` and
`trace_id`, empty where unknown. A line's own `extra={...}` wins; otherwise `ContextFilter` fills
them from the context bound for the request (snowbuddy/middleware.py) or the Celery task
(snowbuddy/celery.py), and `trace_id` from the active OpenTelemetry span when there is one.
Adding a field to every line is adding it to CONTEXT_FIELDS and binding it where it is known.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from snowbuddy.env import env_choice

CONTEXT_FIELDS = ("request_id", "search_id", "attempt", "engine", "trace_id")
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("snowbuddy_log_context", default={})  # noqa: B039 - never mutated


def bind(**fields) -> contextvars.Token:
    """Add fields to the current context (request, task); returns the token `unbind` takes."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


@contextmanager
def log_context(**fields) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current_context() -> dict:
    return dict(_context.get())


def current_trace_id() -> str:
    """The active span's trace id (32 hex digits), or "" with no span or no OpenTelemetry."""
    try:
        from opentelemetry import trace
    except ImportError:
        return ""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


class ContextFilter(logging.Filter):
    """Puts the context fields on every record that passes the handler (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) in (None, ""):
                setattr(record, name, context.get(name, ""))
        if not record.trace_id:
            record.trace_id = current_trace_id()
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, the context fields, and any extras."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in CONTEXT_FIELDS:
            log_data.setdefault(name, getattr(record, name, "") or "")


def log_format() -> str:
    # Read here as well as in settings: gunicorn's master sets up its loggers before Django loads.
    return env_choice("LOG_FORMAT", "text", ("text", "json"))


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, with the console's formatter when LOG_FORMAT=json. Each access line is
    then a JSON object with the request's method, path, status, duration and request id."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        if log_format() != "json":
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                handler.addFilter(ContextFilter())

    def access(self, resp, req, environ, request_time) -> None:
        if log_format() != "json":
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        safe_atoms = self.atoms_wrapper_class(atoms)
        status = str(atoms["s"])
        self.access_log.info(
            self.cfg.access_log_format,
            safe_atoms,
            extra={
                "request_id": atoms.get("{x-request-id}o", ""),
                "method": atoms["m"],
                "path": atoms["U"],
                "status": int(status) if status.isdigit() else status,
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "bytes": atoms["B"],
                "remote_addr": atoms["h"],
                "user_agent": atoms["a"],
                "pid": os.getpid(),
            },
        )
        return None
