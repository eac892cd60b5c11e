#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")
    from django.core.exceptions import ImproperlyConfigured

    from snowbuddy.startup import fail, services_or_exit, settings_or_exit

    # A bad setting is one line naming the variable, not a traceback (snowbuddy/startup.py).
    settings_or_exit()
    # Off unless the OTEL_* variables ask for it; the dispatch relay thread of runserver sends in
    # the submit's trace (snowbuddy/tracing.py).
    from snowbuddy.tracing import setup as tracing_setup

    tracing_setup("manage")
    try:
        if sys.argv[1:2] == ["runserver"]:
            import django

            django.setup()
            services_or_exit()
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        fail(exc)


if __name__ == "__main__":
    main()
