"""The warm candidate index: a cold load ranks like the database path, and every change (update,
close, delete) reaches searches within the staleness bound."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, transaction

from matching.candidates.cold_path import prefiltered_profiles
from matching.candidates.warm_index import WarmProfileIndex, candidate_index, profile_index_invalidate, rank_candidates
from matching.engine import ProfileIndex, SearchRequest
from matching.management.demo_profiles import demo_profiles
from matching.models import Resort, SkierProfile
from matching.selectors import forget_resort_regions, resort_regions
from matching.services.profiles import profile_close, profile_delete, profile_upsert, profiles_upsert_many
from tests.helpers.polling import wait_for
from tests.test_profile_source import _random_preferences

pytestmark = pytest.mark.django_db(transaction=True)

BOUND = 0.3  # seconds: the staleness bound these tests configure
TOLERANCE = 0.7  # time for one refresh query and the polling step on a busy 2-core machine
OPEN_SEARCH = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "limit": 100}
# Only the riders these tests write hold this certification: a search that sees just them.
RIDERS = {"role": "coach", "skill_level_min": 1, "skill_level_max": 10, "required_certifications": ["X-TEST"]}


def warm(*, bound: float = BOUND, delta_max: int = 20_000, reload_seconds: float = 3600) -> WarmProfileIndex:
    return WarmProfileIndex(
        staleness_seconds=bound, overlap_seconds=5, reload_seconds=reload_seconds, delta_max=delta_max
    )


def found(index: WarmProfileIndex, prefs: dict = RIDERS, seeker: str = "seeker") -> list[str]:
    return [m.user_id for m in index.current().search(SearchRequest.from_preferences(seeker, prefs))]


def rider(user_id: str, **fields) -> None:
    profile_upsert(
        **{
            "user_id": user_id,
            "nickname": user_id,
            "skill_level": 5,
            "role": "coach",
            "resorts": ["yuzawa_naeba"],
            "certifications": ["X-TEST"],
        }
        | fields
    )


@pytest.fixture
def population(resorts):
    regions = resort_regions()
    profiles = list(demo_profiles(600, regions, seed=11))
    profiles_upsert_many(profiles=[_write(p) for p in profiles])
    profile_delete(user_id="u000007")
    return regions


def _write(fields: dict):
    from matching.vocabulary.profile_input import ProfileWrite

    return ProfileWrite(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def test_a_cold_load_ranks_exactly_like_the_database_path_and_reports_its_size(population):
    index = warm()
    rng = random.Random(5)
    for _ in range(30):
        prefs = _random_preferences(rng, population)
        request = SearchRequest.from_preferences("u000001", prefs)
        cold = list(prefiltered_profiles(seeker_id="u000001", preferences=prefs, resort_regions=population))
        assert index.current().search(request) == ProfileIndex.build(cold, population).search(request)
    stats = index.stats()
    closed = SkierProfile.objects.filter(open_to_matching=False).count()
    assert stats.profiles == stats.base_profiles == 600 - closed  # closed and deleted are not loaded
    assert 0 < stats.index_bytes < 600 * 400
    assert "MB" in stats.line()


def test_an_update_a_close_and_a_delete_become_visible_within_the_bound(population):
    index = warm()
    rider("mover", skill_level=2)
    rider("closer")
    rider("leaver")
    assert set(found(index)) == {"mover", "closer", "leaver"}
    high = {**RIDERS, "skill_level_min": 9}
    assert "mover" not in found(index, high)

    for change, visible in [
        (lambda: rider("mover", skill_level=9), lambda: "mover" in found(index, high)),
        (lambda: profile_close(user_id="closer"), lambda: "closer" not in found(index)),
        (lambda: profile_delete(user_id="leaver"), lambda: "leaver" not in found(index)),
    ]:
        change()  # committed: the service's own transaction
        committed = time.monotonic()
        wait_for(visible, timeout=BOUND + 5, interval=0.02, message="the change to reach searches")
        assert time.monotonic() - committed <= BOUND + TOLERANCE
    assert set(found(index)) == {"mover"}
    assert index.stats().base_profiles > 500  # followed by refreshes, not reloads


@pytest.mark.parametrize("change", ["close", "delete"])
def test_no_search_that_starts_after_the_commit_plus_the_bound_returns_the_profile(population, change):
    index = warm()
    rider("target", knowledge_score=50)
    assert "target" in found(index)
    stop = threading.Event()

    def other_writers() -> None:  # unrelated changes keep the refresh path busy meanwhile
        try:
            n = 0
            while not stop.is_set():
                rider(f"noise-{n % 20}", skill_level=1 + n % 10)
                n += 1
        finally:
            connection.close()

    noise = threading.Thread(target=other_writers)
    noise.start()
    try:
        (profile_close if change == "close" else profile_delete)(user_id="target")
        committed = time.monotonic()
        observed: list[tuple[float, bool]] = []
        while time.monotonic() < committed + 4 * BOUND:
            started = time.monotonic()
            observed.append((started - committed, "target" in found(index)))
    finally:
        stop.set()
        noise.join()
    late = [present for since, present in observed if since > BOUND]
    assert late and not any(late), observed[-5:]
    assert len(observed) > 20


def test_a_write_committed_after_a_refresh_that_began_after_its_stamp_is_still_seen(population):
    index = warm(bound=0.0)
    index.current()
    stamped = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                rider("late-committer")  # stamped now, by the database clock
                stamped.set()
                release.wait(10)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert stamped.wait(10)
    assert "late-committer" not in found(index)  # this refresh ran after the stamp, before the commit
    release.set()
    writer.join()
    assert "late-committer" in found(index)  # the overlap re-read it


def test_invalidating_the_index_reloads_it_so_hard_deleted_rows_disappear(population):
    index = warm(bound=0.0)
    rider("gone-1")
    rider("gone-2")
    rider("stays")
    assert set(found(index)) == {"gone-1", "gone-2", "stays"}
    SkierProfile.objects.filter(user_id__startswith="gone-").delete()  # bypasses the tombstones
    assert set(found(index)) == {"gone-1", "gone-2", "stays"}  # invisible to the change cursor
    profile_index_invalidate()
    assert set(found(index)) == {"stays"}


def test_a_resort_moving_region_reloads_the_index(population):
    index = warm(bound=0.0)
    rider("far", resorts=["yamagata_zao_onsen"])
    hokkaido = {**RIDERS, "regions": ["Hokkaido"]}
    assert "far" not in found(index, hokkaido)
    Resort.objects.filter(pk="yamagata_zao_onsen").update(region="Hokkaido")
    forget_resort_regions()
    assert "far" in found(index, hokkaido)


def test_a_delta_past_its_limit_is_folded_into_a_new_base_in_the_background(population):
    index = warm(bound=0.0, delta_max=100)
    index.current()
    base_before = index.stats().base_profiles
    new = [_write({**p, "user_id": f"new-{i}"}) for i, p in enumerate(demo_profiles(150, population, seed=3))]
    profiles_upsert_many(profiles=new)
    assert index.current() is not None and index.stats().delta_profiles > 100  # past the limit: a reload starts
    wait_for(
        lambda: (
            index.current() is not None and (s := index.stats()).delta_profiles == 0 and s.base_profiles > base_before
        ),
        timeout=20,
        message="the background reload to swap in a new base",
    )
    cold = list(prefiltered_profiles(seeker_id="s", preferences=OPEN_SEARCH, resort_regions=population))
    request = SearchRequest.from_preferences("s", OPEN_SEARCH)
    assert index.current().search(request) == ProfileIndex.build(cold, population).search(request)


def test_each_process_gets_its_own_index(monkeypatch, settings):
    first = candidate_index()
    assert candidate_index() is first
    monkeypatch.setattr("matching.candidates.warm_index.os.getpid", lambda: -1)
    assert candidate_index() is not first


def test_rank_candidates_returns_matches_counts_and_nicknames(population):
    ranking = rank_candidates(seeker_id="u000001", preferences={**OPEN_SEARCH, "limit": 5})
    assert len(ranking.matches) == 5 and ranking.candidate_count >= 5
    stored = dict(SkierProfile.objects.filter(user_id__in=ranking.nicknames).values_list("user_id", "nickname"))
    assert ranking.nicknames == stored and set(stored) == {m.user_id for m in ranking.matches}
    assert ranking.indexed_profiles == candidate_index().stats().profiles
