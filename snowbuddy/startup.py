"""Fail fast at start-up: one line naming the variable, a non-zero exit, no traceback.

Two levels, used by the processes that start the console (docs/decisions.md, "Start-up checks"):

- `settings_or_exit()`: load the settings; every value is parsed there (snowbuddy/env.py), so a
  bad one stops the process. `manage.py`, `wsgi.py` and the Celery app all call it.
- `services_or_exit()`: reach what the settings name: the database (DATABASE_URL), the broker
  (REDIS_URL) and the cache (REDIS_CACHE_URL) when they are set. Only the long-running processes
  that cannot work without them call it: the gunicorn master before it forks
  (snowbuddy/gunicorn_conf.py), `manage.py runserver`, and the Celery worker and beat. One-off
  commands (`check`, `migrate`, …) and the test suite do not, so they never wait on a network.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

EXIT_CODE = 2
# A gunicorn worker that exits with 4 (its APP_LOAD_ERROR) stops the master; any other code and
# the master would boot a new worker, forever. wsgi.py uses it.
WSGI_EXIT_CODE = 4
SERVICE_TIMEOUT_SECONDS = 3


def fail(exc: BaseException, exit_code: int = EXIT_CODE) -> None:
    """Print `ImproperlyConfigured: <VAR>: <reason>` on one line and exit non-zero."""
    message = " ".join(str(exc).split())  # one line, whatever the message held
    print(f"ImproperlyConfigured: {message}", file=sys.stderr, flush=True)
    raise SystemExit(exit_code)


def settings_or_exit(exit_code: int = EXIT_CODE) -> None:
    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - loading the settings is the check
    except ImproperlyConfigured as exc:
        fail(exc, exit_code)


def services_or_exit() -> None:
    try:
        check_services()
    except ImproperlyConfigured as exc:
        fail(exc)


def redact(url: str) -> str:
    """A URL fit for a log line: the password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_services() -> None:
    """Raise ImproperlyConfigured naming the first configured service that cannot be reached."""
    import os

    from django.conf import settings
    from django.db import DatabaseError, connections

    connection = connections["default"]
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        target = os.environ.get("DATABASE_URL", "").strip() or str(connection.settings_dict["NAME"])
        raise ImproperlyConfigured(f"DATABASE_URL: cannot connect to {redact(target)} ({_first_line(exc)})") from None
    finally:
        connection.close()

    for name, url in (("REDIS_URL", settings.REDIS_URL), ("REDIS_CACHE_URL", settings.REDIS_CACHE_URL)):
        if not url or (name == "REDIS_CACHE_URL" and url == settings.REDIS_URL):
            continue
        _ping_redis(name, url)


def _ping_redis(name: str, url: str) -> None:
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=SERVICE_TIMEOUT_SECONDS, socket_timeout=SERVICE_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name}: cannot reach {redact(url)} ({_first_line(exc)})") from None
    finally:
        client.close()
