"""gunicorn's configuration: `gunicorn -c python:snowbuddy.gunicorn_conf snowbuddy.wsgi`.

The master checks the settings and reaches the database, broker and cache before it forks any
worker, so a bad environment stops gunicorn with one line naming the variable (snowbuddy/startup.py)
instead of workers failing to boot one after another. When the durable engine is configured,
each worker starts loading the warm candidate index as it boots, so the workflow's ranking
requests never wait for a cold load (matching/candidates.py). Each worker sets up OpenTelemetry
tracing for itself after the fork when the OTEL_* variables ask for it (snowbuddy/tracing.py).
"""

import os


def on_starting(server) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")
    import django

    from snowbuddy.startup import services_or_exit, settings_or_exit

    settings_or_exit()
    django.setup()
    services_or_exit()


def post_fork(server, worker) -> None:
    # Tracing is set up in each worker, before it loads the WSGI app (Django's instrumentation adds
    # its middleware then); off unless the OTEL_* variables ask for it (snowbuddy/tracing.py).
    from snowbuddy.tracing import setup

    setup("web")


def post_worker_init(worker) -> None:
    from django.conf import settings

    if settings.MATCHING_INDEX_PRELOAD and settings.MATCHING_WORKFLOW_URL:
        from matching.candidates import candidate_index_preload

        candidate_index_preload()
