"""Serving the Prometheus metrics: `/metrics` on the console, a port on each Celery worker host.

Both answer only with `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time), and
both are off when METRICS_TOKEN is unset (/metrics is then a 404, the worker port never opens).

With PROMETHEUS_MULTIPROC_DIR set, every process of a service (gunicorn's workers, Celery's pool
children) writes its series to files in that directory and a scrape adds them up; each service
needs a directory of its own, emptied when it starts (gunicorn's master and Celery's main process
do it before they fork), and a process that exits is marked dead so its live gauges go with it.
The console's /metrics also serves the gauges read from the database (workflows/metrics_collector.py);
a worker's port does not, so Prometheus counts each of them once.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from snowbuddy.errors import error_response

logger = logging.getLogger(__name__)

_registries: dict[str, CollectorRegistry] = {}
_lock = threading.Lock()


def multiprocess_dir() -> str:
    # prometheus_client reads the variable itself when it is first imported; so does this.
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def multiprocess_dir_reset() -> None:
    """Empty the service's directory at start: files of a previous run would be added up forever."""
    directory = multiprocess_dir()
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """A worker process is gone: drop its live gauges (its counters keep counting in the sum)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


class _ThisProcess(Collector):
    """Without a multiprocess directory: this process's own series."""

    def describe(self):
        return []

    def collect(self):
        yield from REGISTRY.collect()


def registry(*, with_database: bool) -> CollectorRegistry:
    """The registry a scrape reads: every process's series, plus (console only) the database gauges."""
    key = "console" if with_database else "worker"
    with _lock:
        if key not in _registries:
            built = CollectorRegistry(auto_describe=False)
            if multiprocess_dir():
                multiprocess.MultiProcessCollector(built)
            else:
                built.register(_ThisProcess())
            if with_database:
                built.register(_database_collector())
            _registries[key] = built
        return _registries[key]


def _database_collector() -> Collector:
    # By name: the project wiring reaches the engines' collector without the Celery app (which the
    # domain's entry points import) depending on the engines.
    return import_string("workflows.metrics_collector.ConsoleStateCollector")()


def token_matches(authorization: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.METRICS_TOKEN
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are off")
    if not token_matches(request.headers.get("Authorization", "")):
        return error_response(
            401,
            "not_authenticated",
            "The metrics need Authorization: Bearer <METRICS_TOKEN>.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return HttpResponse(generate_latest(registry(with_database=True)), content_type=CONTENT_TYPE_LATEST)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def worker_metrics_app(environ, start_response):
    """The worker port's WSGI app: the same bearer token as /metrics."""
    if not token_matches(environ.get("HTTP_AUTHORIZATION", "")):
        start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
        return [b"The metrics need Authorization: Bearer <METRICS_TOKEN>.\n"]
    return make_wsgi_app(registry(with_database=False))(environ, start_response)


def worker_metrics_serve() -> tuple[str, int] | None:
    """Serve the worker's metrics on MATCHING_WORKER_METRICS_PORT in a daemon thread of the Celery main
    process (its pool children write to the shared directory). Returns the address, or None when off."""
    port = settings.MATCHING_WORKER_METRICS_PORT
    if not port or not settings.METRICS_TOKEN:
        return None
    server = make_server(
        settings.MATCHING_WORKER_METRICS_ADDR,
        port,
        worker_metrics_app,
        server_class=ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    logger.info("worker metrics on http://%s:%s/metrics", settings.MATCHING_WORKER_METRICS_ADDR, port)
    return settings.MATCHING_WORKER_METRICS_ADDR, port
