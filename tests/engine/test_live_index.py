"""LiveProfileIndex follows updates, closes and deletes and still ranks exactly like the baseline."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np

from matching.engine import LiveProfileIndex, Profile, ProfileIndex, ProfileIndexBuilder, SearchRequest, match_baseline

from .test_index import RESORT_REGIONS, random_profile, random_request


def test_a_live_index_ranks_like_the_baseline_through_random_updates_closes_and_deletes():
    rng = random.Random(99)
    current = {f"u{i:03d}": random_profile(rng, f"u{i:03d}") for i in range(150)}
    live = LiveProfileIndex(ProfileIndex.build(current.values(), RESORT_REGIONS))
    compared = 0
    for _ in range(60):
        upserts, removals = [], []
        for user_id in rng.sample(sorted({*current, *(f"u{i:03d}" for i in range(150, 170))}), rng.randint(1, 12)):
            if rng.random() < 0.25 and user_id in current:
                removals.append(user_id)
                del current[user_id]
            else:
                profile = random_profile(rng, user_id)
                if rng.random() < 0.2:
                    profile = replace(profile, open_to_matching=False)
                upserts.append(profile)
                current[user_id] = profile
        before = live
        live = live.apply(upserts=upserts, removals=removals)
        assert before is not live
        for _ in range(4):
            request = random_request(rng, sorted(current))
            expected = match_baseline(request, current.values(), RESORT_REGIONS)
            matches, count = live.search_counted(request)
            assert matches == expected
            assert count >= len(expected)
            compared += len(expected)
    assert compared > 500
    assert live.delta_size > 0 and live.hidden_count > 0


def test_applying_changes_leaves_the_index_a_search_already_holds_untouched():
    rng = random.Random(4)
    profiles = [random_profile(rng, f"u{i}") for i in range(40)]
    old = LiveProfileIndex(ProfileIndex.build(profiles, RESORT_REGIONS))
    request = SearchRequest.from_preferences("nobody", {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10})
    before = old.search(request)
    new = old.apply(removals=[m.user_id for m in before])
    assert old.search(request) == before
    assert not {m.user_id for m in new.search(request)} & {m.user_id for m in before}


def test_a_closed_or_deleted_profile_never_comes_back_from_the_base():
    open_profile = Profile(user_id="a", nickname="", skill_level=5, role="buddy")
    other = Profile(user_id="b", nickname="", skill_level=5, role="buddy")
    live = LiveProfileIndex(ProfileIndex.build([open_profile, other], RESORT_REGIONS))
    request = SearchRequest.from_preferences("s", {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10})
    assert [m.user_id for m in live.search(request)] == ["a", "b"]
    closed = live.apply(upserts=[replace(open_profile, open_to_matching=False)])
    assert [m.user_id for m in closed.search(request)] == ["b"]
    deleted = closed.apply(removals=["b"])
    assert deleted.search(request) == [] and len(deleted) == 0
    reopened = deleted.apply(upserts=[replace(open_profile, skill_level=7)])
    assert [m.user_id for m in reopened.search(request)] == ["a"]


def test_the_builder_fed_in_chunks_builds_the_same_index_as_one_build():
    rng = random.Random(12)
    profiles = [random_profile(rng, f"u{rng.randint(0, 500):04d}") for _ in range(300)]
    builder = ProfileIndexBuilder(RESORT_REGIONS)
    for start in range(0, len(profiles), 37):
        builder.add_profiles(profiles[start : start + 37])
    chunked = builder.build()
    whole = ProfileIndex.build(profiles, RESORT_REGIONS)
    assert np.array_equal(chunked.uid_rank, whole.uid_rank)
    for _ in range(50):
        request = random_request(rng, [p.user_id for p in profiles])
        assert chunked.search(request) == whole.search(request) == match_baseline(request, profiles, RESORT_REGIONS)


def test_positions_of_finds_every_copy_of_a_user_id_and_skips_unknown_ones():
    profiles = [Profile(user_id=uid, nickname="", skill_level=5, role="buddy") for uid in ["b", "a", "b", "c"]]
    index = ProfileIndex.build(profiles, RESORT_REGIONS)
    assert sorted(index.positions_of(["b", "zz"]).tolist()) == [0, 2]
    assert index.positions_of(["a", "c"]).tolist() == [1, 3]
    assert index.positions_of([]).tolist() == []


def test_non_ascii_user_ids_tie_break_in_python_string_order():
    ids = ["zeta", "Émile", "émile", "eve", "日本", "a"]
    profiles = [Profile(user_id=uid, nickname="", skill_level=5, role="buddy") for uid in ids]
    request = SearchRequest.from_preferences("s", {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10})
    assert [m.user_id for m in ProfileIndex.build(profiles, RESORT_REGIONS).search(request)] == sorted(ids)
