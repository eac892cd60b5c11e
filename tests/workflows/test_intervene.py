"""Staff answer a pending vetting request only for a search that waits on vetting; anything else is
refused before the Durable API (or GlobalCoach's outbox) is touched."""

import pytest

from matching.models import Engine, Search, SearchEvent, SearchStatus
from tests.helpers.bodies import VETTED_COACH as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from workflows.dispatch.submit import search_submit
from workflows.staff_actions import InterventionNotAllowed, search_intervene

pytestmark = pytest.mark.django_db


@pytest.fixture
def search(resorts, monkeypatch, settings):
    stub_dispatch_send(monkeypatch)
    settings.MATCHING_WORKFLOW_URL = ""  # were the API asked, the client could not even be built
    return search_submit(seeker_id="owner-1", preferences=PREFS)


@pytest.mark.parametrize(
    ("engine", "status"),
    [
        (Engine.CELERY, SearchStatus.RUNNING),
        (Engine.DURABLE, SearchStatus.RUNNING),
        (Engine.DURABLE, SearchStatus.SUCCEEDED),
    ],
)
def test_intervening_outside_a_durable_vetting_wait_is_refused(search, engine, status):
    Search.objects.filter(pk=search.pk).update(engine=engine, status=status)
    search.refresh_from_db()

    with pytest.raises(InterventionNotAllowed):
        search_intervene(search=search, decision="approve", acting_user="staff:reviewer")

    assert not SearchEvent.objects.filter(search=search, kind="intervened").exists()


def test_an_unknown_decision_is_refused(search):
    Search.objects.filter(pk=search.pk).update(engine=Engine.DURABLE, status=SearchStatus.AWAITING_VETTING)
    search.refresh_from_db()
    with pytest.raises(ValueError, match="approve or reject"):
        search_intervene(search=search, decision="maybe", acting_user="staff:reviewer")
