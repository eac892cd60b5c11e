"""The block search (rows by role and skill, parts skipped by their best score) ranks and counts
exactly as scanning every row does."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import numpy as np

from matching.engine import Profile, ProfileIndex, SearchRequest, match_baseline

from .test_index import RESORT_REGIONS, ROLES, random_profile, random_request


def many_profiles(rng: random.Random, n: int) -> list[Profile]:
    """Enough rows per part that the top K fills from the best parts and the rest are skipped."""
    return [random_profile(rng, f"u{i:05d}") for i in range(n)]


def assert_same_as_scan(index: ProfileIndex, request: SearchRequest) -> tuple[int, int]:
    matches, count, scored = index.search_scored(request)
    assert index.in_blocks
    assert (matches, count) == index.search_counted(request, partitioned=False), request
    return count, scored


def test_blocks_rank_and_count_as_the_scan_and_the_baseline_and_skip_parts():
    rng = random.Random(20261206)
    profiles = many_profiles(rng, 3000)
    rng.shuffle(profiles)
    index = ProfileIndex.build(profiles, RESORT_REGIONS)
    user_ids = [p.user_id for p in profiles]
    counted = scored = skipped_some = 0
    for _ in range(200):
        request = random_request(rng, user_ids)
        count, scored_rows = assert_same_as_scan(index, request)
        expected = match_baseline(request, profiles, RESORT_REGIONS)
        assert index.search(request) == expected
        counted += count
        scored += scored_rows
        skipped_some += scored_rows < count
    # Not vacuous: many searches ranked without scoring every match, and overall most were skipped.
    assert skipped_some >= 50
    assert scored < counted / 2


def test_blocks_agree_on_small_random_indexes_with_duplicate_ids_and_few_rows_per_part():
    rng = random.Random(7)
    for case in range(300):
        n = rng.randint(0, 60)
        user_ids = [f"u{rng.randint(0, n)}" if case % 4 == 0 else f"u{i:03d}" for i in range(n)]
        profiles = [random_profile(rng, uid) for uid in user_ids]
        index = ProfileIndex.build(profiles, RESORT_REGIONS)
        for _ in range(3):
            request = random_request(rng, user_ids)
            if n:
                assert_same_as_scan(index, request)
            assert index.search(request) == match_baseline(request, profiles, RESORT_REGIONS)


def test_a_part_whose_worst_score_could_fail_the_threshold_is_scored_not_just_counted(monkeypatch):
    """With a threshold above a skipped part's worst score, the part must be scored to count it."""
    from matching.engine import index as index_module

    rng = random.Random(11)
    profiles = many_profiles(rng, 2000)
    index = ProfileIndex.build(profiles, RESORT_REGIONS)
    monkeypatch.setattr(index_module.rules, "MIN_SCORE", 0.6)
    for _ in range(60):
        request = random_request(rng, [p.user_id for p in profiles])
        count, _ = assert_same_as_scan(index, request)
        assert count == len(match_baseline(replace(request, limit=10**6), profiles, RESORT_REGIONS))


def test_block_order_holds_for_sets_stored_as_csr_rows():
    """More than 256 distinct dates: the dates column is CSR rows, reordered with the rows."""
    rng = random.Random(5)
    season = [(date(2026, 11, 1) + timedelta(days=d)).isoformat() for d in range(400)]
    profiles = [
        replace(random_profile(rng, f"u{i:04d}"), available_dates=tuple(rng.sample(season, rng.randint(0, 30))))
        for i in range(800)
    ]
    index = ProfileIndex.build(profiles, RESORT_REGIONS)
    assert index.dates.words is None
    for i in range(40):
        request = replace(
            random_request(rng, [p.user_id for p in profiles]), dates=tuple(rng.sample(season, 1 + i % 5))
        )
        assert_same_as_scan(index, request)
        assert index.search(request) == match_baseline(request, profiles, RESORT_REGIONS)


def test_rows_are_in_role_then_skill_order_and_positions_follow_them():
    rng = random.Random(3)
    profiles = many_profiles(rng, 500)
    index = ProfileIndex.build(profiles, RESORT_REGIONS)
    keys = list(zip(index.role.tolist(), index.skill.tolist(), strict=True))
    assert keys == sorted(keys)
    assert {index.user_id_at(i) for i in range(len(index))} == {p.user_id for p in profiles}
    for profile in rng.sample(profiles, 50):
        (position,) = index.positions_of([profile.user_id]).tolist()
        assert index.user_id_at(position) == profile.user_id
        assert int(index.skill[position]) == profile.skill_level
        assert list(index.role_vocab)[int(index.role[position])] == profile.role
    assert np.array_equal(index.uid_order[index.uid_rank], np.arange(len(index)))


def test_an_index_not_in_block_order_is_scanned_and_ranks_the_same():
    rng = random.Random(9)
    profiles = many_profiles(rng, 400)
    blocks = ProfileIndex.build(profiles, RESORT_REGIONS)
    unsorted = ProfileIndex.build(profiles, RESORT_REGIONS)
    unsorted.in_blocks = False
    for _ in range(30):
        request = random_request(rng, [p.user_id for p in profiles])
        assert unsorted.search_counted(request) == blocks.search_counted(request)
    assert set(ROLES) == set(blocks.role_vocab)


def test_an_id_longer_than_every_profile_id_is_found_nowhere_and_shorter_ones_still_are():
    """Keys are cut to the column's width before the lookup (a wider key would make numpy copy the
    whole id column on every search); a key wider than the column is held by no row."""
    rng = random.Random(13)
    profiles = many_profiles(rng, 50)
    index = ProfileIndex.build(profiles, RESORT_REGIONS)
    assert index.positions_of(["u00007" + "x" * 40]).tolist() == []
    (position,) = index.positions_of(["u00007"]).tolist()
    assert index.user_id_at(position) == "u00007"
    assert index.positions_of(["u0000"]).tolist() == []  # a prefix is another id
    request = replace(random_request(rng, []), seeker_id="u00007" + "x" * 40, limit=100)
    assert index.search(request) == match_baseline(request, profiles, RESORT_REGIONS)
