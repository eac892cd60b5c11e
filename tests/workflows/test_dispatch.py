"""Dispatch to the durable engine when the Durable API is down: the user is not kept waiting,
nothing is lost, and the sweeper sends it later."""

import time

import pytest
from django.utils import translation

from matching.admin.words import error_words
from matching.models import Search, SearchStatus
from tests.helpers.dispatch import past_the_grace
from workflows.dispatch.submit import dispatch_relay
from workflows.models import SearchDispatch

pytestmark = pytest.mark.django_db(transaction=True)

VETTED = {"role": "coach", "skill_level_min": 6, "skill_level_max": 10, "vetting_required": True}


@pytest.fixture
def durable_api_down(settings):
    settings.MATCHING_WORKFLOW_URL = "http://127.0.0.1:9"  # discard port: connection refused
    settings.MATCHING_WORKFLOW_AUTH_MODE = "api_key"
    settings.MATCHING_WORKFLOW_API_KEY = "k"
    settings.MATCHING_WORKFLOW_CALLBACK_URL = "http://127.0.0.1:8000/webhooks/matching"


def test_a_search_is_accepted_quickly_and_kept_when_the_durable_api_is_down(owner, resorts, durable_api_down):
    began = time.monotonic()
    response = owner.post("/matching/searches", VETTED)
    elapsed = time.monotonic() - began
    assert response.status_code == 202 and response.json()["engine"] == "durable"
    assert elapsed < 3, f"the request waited {elapsed:.1f}s on an unreachable Durable API"
    assert dispatch_relay.wait_idle(timeout=10)
    search = Search.objects.get(pk=response.json()["search_id"])
    assert search.status == SearchStatus.PENDING
    dispatch = SearchDispatch.objects.get(search=search)
    assert dispatch.sent_at is None and dispatch.send_count == 1
    assert "failed after 1 tries" in dispatch.last_error
    # Beside the English, the failure's code and values: the search page words them for staff.
    assert dispatch.last_error_code["code"] == "durable_unavailable"
    with translation.override("zh-hant"):
        assert "POST /workflows/matching/start 嘗試 1 次後失敗：" in error_words(dispatch.last_error_code)  # noqa: RUF001


def test_the_sweeper_retries_a_dispatch_the_durable_api_missed(owner, resorts, durable_api_down, settings):
    from workflows.dispatch.submit import dispatch_sweep

    search_id = owner.post("/matching/searches", VETTED).json()["search_id"]
    assert dispatch_relay.wait_idle(timeout=10)
    assert dispatch_sweep(now=past_the_grace()) == 0  # still down: nothing sent, nothing lost
    dispatch = SearchDispatch.objects.get(search_id=search_id)
    assert dispatch.sent_at is None and dispatch.send_count == 2
    assert "failed after 1 tries" in dispatch.last_error  # a start is never retried blind
    assert dispatch.start_uncertain is False  # refused connections never reached the API
    assert Search.objects.get(pk=search_id).status == SearchStatus.PENDING


@pytest.fixture
def engine_calls(monkeypatch):
    """What reached the engine: the send itself is the far side here."""
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "workflows.dispatch.submit._send_to_engine",
        lambda dispatch, quick: calls.append((dispatch.search_id, dispatch.attempt)),
    )
    return calls


@pytest.fixture
def celery_search(resorts, monkeypatch):
    from workflows.dispatch.submit import search_submit

    monkeypatch.setattr("workflows.dispatch.submit.dispatch_schedule", lambda **kw: None)
    return search_submit(seeker_id="owner-1", preferences={"role": "buddy", "skill_level_min": 1, "skill_level_max": 9})


def test_a_dispatch_already_sent_is_not_sent_again(celery_search, engine_calls):
    from workflows.dispatch.submit import dispatch_send

    dispatch = SearchDispatch.objects.get(search=celery_search)
    assert dispatch_send(dispatch_id=dispatch.pk) and dispatch_send(dispatch_id=dispatch.pk)
    assert engine_calls == [(celery_search.pk, 1)]
    assert SearchDispatch.objects.get(pk=dispatch.pk).send_count == 1


@pytest.mark.parametrize("moved_on", ["superseded", "finished"])
def test_a_dispatch_of_an_attempt_that_moved_on_is_closed_without_sending(celery_search, engine_calls, moved_on):
    from workflows.dispatch.submit import dispatch_send

    if moved_on == "superseded":
        Search.objects.filter(pk=celery_search.pk).update(attempt=2)
    else:
        Search.objects.filter(pk=celery_search.pk).update(status=SearchStatus.CANCELLED)
    dispatch = SearchDispatch.objects.get(search=celery_search)

    assert dispatch_send(dispatch_id=dispatch.pk)

    assert engine_calls == []
    assert SearchDispatch.objects.get(pk=dispatch.pk).sent_at is not None  # the sweeper will not try it again
