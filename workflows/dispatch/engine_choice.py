"""Which engine runs a new search: the same switches as the old service, plus staff's routing switch.

`MATCHING_WORKFLOW_URL` set and `MATCHING_WORKFLOW_AUTH_MODE` not `none` → the durable engine;
otherwise Celery. Clearing the URL is the documented rollback: no code change, no downtime.
Staff may also send every new search to Celery from the console (workflows/dispatch/routing.py).
While the Durable API's circuit breaker is open, new searches fail over to Celery
(`engine_for_new_search`), each with a `failed_over` event saying why.
"""

from dataclasses import dataclass

from django.conf import settings

from matching.models import Engine
from workflows.dispatch.routing import routing_mode
from workflows.durable_console.breaker import durable_breaker
from workflows.models import RoutingMode


def choose_engine() -> str:
    if routing_mode() == RoutingMode.CELERY:
        return Engine.CELERY
    return environment_engine()


def environment_engine() -> str:
    """The engine the environment names, whatever the routing switch says."""
    if settings.MATCHING_WORKFLOW_URL and settings.MATCHING_WORKFLOW_AUTH_MODE != "none":
        return Engine.DURABLE
    return Engine.CELERY


@dataclass(frozen=True)
class EngineChoice:
    engine: str
    failed_over: str = ""  # why a search meant for the durable engine runs on Celery ("" if it does not)


def engine_for_new_search(*, preferences: dict | None = None) -> EngineChoice:
    """The engine of a new search (or attempt). Vetted searches fail over too: the Celery engine asks
    GlobalCoach itself (workflows/celery_engine/vetting.py)."""
    engine = choose_engine()
    if engine != Engine.DURABLE:
        return EngineChoice(engine)
    reason = durable_breaker().open_reason()
    if not reason:
        return EngineChoice(engine)
    return EngineChoice(Engine.CELERY, failed_over=reason)
