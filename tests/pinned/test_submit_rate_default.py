"""The per-user submit limit defaults to the old service's 15 searches a minute: the sixteenth in a
minute is refused, and the window is a minute (not an hour, not a second). The throttle's clock is
driven by the test, not slept through."""

import pytest

from matching.api.throttling import SearchSubmitThrottle
from matching.models import Search

pytestmark = pytest.mark.django_db

VALID = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}


@pytest.fixture(autouse=True)
def _no_dispatch(monkeypatch):
    monkeypatch.setattr("workflows.dispatch.submit.dispatch_send", lambda **kw: True)


@pytest.fixture
def clock(monkeypatch):
    """The per-user throttle's clock (seconds), moved by the test; the per-key one is left alone."""
    now = [1_000_000.0]
    monkeypatch.setattr(SearchSubmitThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def test_fifteen_searches_a_minute_per_user_by_default(owner, resorts, settings, clock):
    assert settings.MATCHING_SEARCH_RATE == "15/min", "the default (MATCHING_SEARCH_RATE unset)"

    assert [owner.post("/matching/searches", VALID).status_code for _ in range(15)] == [202] * 15
    clock[0] += 59
    refused = owner.post("/matching/searches", VALID)
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60

    clock[0] += 2  # a minute after the first fifteen: the window has passed
    assert [owner.post("/matching/searches", VALID).status_code for _ in range(15)] == [202] * 15
    assert owner.post("/matching/searches", VALID).status_code == 429
    assert Search.objects.count() == 30
