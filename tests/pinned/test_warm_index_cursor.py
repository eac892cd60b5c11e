"""The warm index's cursor advances with each refresh (to the database clock less the overlap), so a
refresh reads only the changes stamped since, not every change since the load.

The index's clock (`_database_now`, the clock that stamps `updated_at`) is driven by the test, and
the changes are stamped by it: a change stamped behind the advanced cursor is not read again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from matching.candidates.warm_index import WarmProfileIndex
from matching.engine import SearchRequest
from matching.models import SkierProfile
from matching.services.profiles import profile_upsert

pytestmark = pytest.mark.django_db

RIDERS = {"role": "coach", "skill_level_min": 1, "skill_level_max": 10, "required_certifications": ["X-PIN"]}
OVERLAP = 5  # seconds: MATCHING_INDEX_OVERLAP_SECONDS's default


def found(index: WarmProfileIndex) -> set[str]:
    return {m.user_id for m in index.current().search(SearchRequest.from_preferences("seeker", RIDERS))}


def rider(user_id: str) -> None:
    profile_upsert(user_id=user_id, nickname=user_id, skill_level=5, role="coach", certifications=["X-PIN"])


def stamp(user_id: str, at, **fields) -> None:
    SkierProfile.objects.filter(user_id=user_id).update(updated_at=at, **fields)


def test_a_refresh_reads_only_the_changes_stamped_since_the_last_one(resorts, monkeypatch, settings):
    assert settings.MATCHING_INDEX_OVERLAP_SECONDS == OVERLAP
    rider("early")
    start = SkierProfile.objects.get(user_id="early").updated_at
    stamp("early", start - timedelta(hours=1))
    clock = [start]
    monkeypatch.setattr("matching.candidates.warm_index._database_now", lambda: clock[0])
    index = WarmProfileIndex(staleness_seconds=0, overlap_seconds=OVERLAP, reload_seconds=3600, delta_max=20_000)
    assert found(index) == {"early"}  # the load: cursor at start - overlap

    rider("first")
    stamp("first", start + timedelta(seconds=30))
    clock[0] = start + timedelta(seconds=100)
    assert found(index) == {"early", "first"}  # this refresh read it; the cursor moves to start + 95 s

    # A change stamped behind the new cursor (start + 50 s) is not read again; one stamped after it is.
    stamp("first", start + timedelta(seconds=50), open_to_matching=False)
    rider("second")
    stamp("second", start + timedelta(seconds=150))
    clock[0] = start + timedelta(seconds=200)
    assert found(index) == {"early", "first", "second"}
    assert index.stats().changes_applied == 2
