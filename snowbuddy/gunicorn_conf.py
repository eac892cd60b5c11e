"""gunicorn's configuration: `gunicorn -c python:snowbuddy.gunicorn_conf snowbuddy.wsgi`.

The master checks the settings and reaches the database, broker and cache before it forks any
worker, so a bad environment stops gunicorn with one line naming the variable (snowbuddy/startup.py)
instead of workers failing to boot one after another. When the durable engine is configured,
each worker starts loading the warm candidate index as it boots, so the workflow's ranking
requests never wait for a cold load (matching/candidates/warm_index.py). Each worker sets up OpenTelemetry
tracing for itself after the fork when the OTEL_* variables ask for it (snowbuddy/tracing.py).
"""

import os

# With LOG_FORMAT=json the access and error lines are JSON objects too (snowbuddy/logs.py).
logger_class = "snowbuddy.logs.GunicornLogger"


def on_starting(server) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")
    import django

    from snowbuddy.metrics import multiprocess_dir_reset
    from snowbuddy.startup import services_or_exit, settings_or_exit

    settings_or_exit()
    # Before any worker writes: the metric files of a previous run would otherwise still count.
    multiprocess_dir_reset()
    django.setup()
    services_or_exit()


def post_fork(server, worker) -> None:
    # Tracing is set up in each worker, before it loads the WSGI app (Django's instrumentation adds
    # its middleware then); off unless the OTEL_* variables ask for it (snowbuddy/tracing.py).
    from snowbuddy.tracing import setup

    setup("web")


def child_exit(server, worker) -> None:
    # The worker's live gauges (e.g. its warm index) leave the sum; its counters stay counted.
    from snowbuddy.metrics import process_exited

    process_exited(worker.pid)


def post_worker_init(worker) -> None:
    from django.conf import settings

    if settings.MATCHING_INDEX_PRELOAD and settings.MATCHING_WORKFLOW_URL:
        from matching.candidates.warm_index import candidate_index_preload

        candidate_index_preload()
