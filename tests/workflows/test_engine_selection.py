import pytest

from matching.models import Engine
from workflows.orchestrator import choose_engine


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
