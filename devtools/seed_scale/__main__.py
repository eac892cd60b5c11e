"""`python -m devtools.seed_scale …`: the console's settings and Django set up as manage.py does, then the command.

Not a manage.py command: a deployment does not install devtools.
"""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "snowbuddy.settings")
    from snowbuddy.startup import settings_or_exit

    # A bad setting is one line naming the variable, as with manage.py (snowbuddy/startup.py).
    settings_or_exit()
    import django

    django.setup()
    from devtools.seed_scale.command import Command

    Command().run_from_argv(["python -m devtools.seed_scale", "seed_scale", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
