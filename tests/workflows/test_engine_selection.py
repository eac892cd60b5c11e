import pytest

from matching.models import Engine
from workflows.dispatch.engine_choice import choose_engine

pytestmark = pytest.mark.django_db  # choose_engine() also reads the staff routing switch


@pytest.mark.parametrize(
    ("url", "mode", "engine"),
    [
        ("", "api_key", Engine.CELERY),
        ("", "iam_sigv4", Engine.CELERY),
        ("https://abc.lambda-url.ap-northeast-1.on.aws", "api_key", Engine.DURABLE),
        ("https://abc.lambda-url.ap-northeast-1.on.aws", "iam_sigv4", Engine.DURABLE),
        ("https://abc.lambda-url.ap-northeast-1.on.aws", "none", Engine.CELERY),
    ],
)
def test_the_engine_follows_the_old_services_switches(settings, url, mode, engine):
    settings.MATCHING_WORKFLOW_URL = url
    settings.MATCHING_WORKFLOW_AUTH_MODE = mode
    assert choose_engine() == engine


def test_the_staff_switch_sends_new_searches_to_celery_whatever_the_environment(settings):
    from workflows.dispatch.routing import routing_forget
    from workflows.models import EngineRouting

    settings.MATCHING_WORKFLOW_URL = "https://abc.lambda-url.ap-northeast-1.on.aws"
    settings.MATCHING_WORKFLOW_AUTH_MODE = "api_key"
    EngineRouting.objects.create(pk=1, mode="celery")
    routing_forget()
    assert choose_engine() == Engine.CELERY
