"""Which engine runs a new search: the same switches as the old service, plus staff's routing switch.

`MATCHING_WORKFLOW_URL` set and `MATCHING_WORKFLOW_AUTH_MODE` not `none` → the durable engine;
otherwise Celery. Clearing the URL is the documented rollback: no code change, no downtime.
Staff may also send every new search to Celery from the console (workflows/routing.py).
"""

from django.conf import settings

from matching.models import Engine
from workflows.models import RoutingMode
from workflows.routing import routing_mode


def choose_engine() -> str:
    if routing_mode() == RoutingMode.CELERY:
        return Engine.CELERY
    return environment_engine()


def environment_engine() -> str:
    """The engine the environment names, whatever the routing switch says."""
    if settings.MATCHING_WORKFLOW_URL and settings.MATCHING_WORKFLOW_AUTH_MODE != "none":
        return Engine.DURABLE
    return Engine.CELERY
