"""Which engine runs a new search: the same switches as the old service.

`MATCHING_WORKFLOW_URL` set and `MATCHING_WORKFLOW_AUTH_MODE` not `none` → the durable engine;
otherwise Celery. Clearing the URL is the documented rollback: no code change, no downtime.
"""

from django.conf import settings

from matching.models import Engine


def choose_engine() -> str:
    if settings.MATCHING_WORKFLOW_URL and settings.MATCHING_WORKFLOW_AUTH_MODE != "none":
        return Engine.DURABLE
    return Engine.CELERY
