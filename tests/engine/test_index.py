"""ProfileIndex.search must give exactly what match_baseline gives, for any input."""

from __future__ import annotations

import random
from datetime import date, timedelta

import numpy as np
import pytest

from matching.engine import Profile, ProfileIndex, SearchRequest, match_baseline, rules
from matching.engine import index as index_module

RESORT_REGIONS = {
    "happo": "Nagano",
    "goryu": "Nagano",
    "nozawa": "Nagano",
    "naeba": "Niigata",
    "kagura": "Niigata",
    "niseko": "Hokkaido",
    "furano": "Hokkaido",
    "zao": "Yamagata",
}
RESORTS = [*RESORT_REGIONS, "unmapped-resort"]  # a resort missing from the map has no region
REGIONS = ["Nagano", "Niigata", "Hokkaido", "Yamagata", "Gunma"]
DATES = [(date(2026, 12, 1) + timedelta(days=d)).isoformat() for d in range(12)]
CERTIFICATIONS = ["CASI-1", "CASI-2", "CASI-3", "CSIA-2", "SAJ-1"]
ROLES = ["buddy", "student", "coach"]


def random_profile(rng: random.Random, user_id: str) -> Profile:
    return Profile(
        user_id=user_id,
        nickname=user_id,
        skill_level=rng.randint(1, 10),
        role=rng.choice(ROLES),
        resorts=tuple(rng.sample(RESORTS, rng.randint(0, 3))),
        regions=tuple(rng.sample(REGIONS, rng.choice([0, 0, 1, 2]))),
        available_dates=tuple(rng.sample(DATES, rng.randint(0, 4))),
        open_to_matching=rng.random() > 0.1,
        knowledge_score=rng.choice([None, 0, *range(0, 101, 5), rng.randint(1, 100)]),
        certifications=tuple(rng.sample(CERTIFICATIONS, rng.randint(0, 2))),
        languages=(),
    )


def random_request(rng: random.Random, user_ids: list[str]) -> SearchRequest:
    low = rng.randint(1, 10)
    return SearchRequest.from_preferences(
        rng.choice([*user_ids[:3], "nobody"]),
        {
            "role": rng.choice(ROLES),
            "skill_level_min": low,
            "skill_level_max": rng.randint(low, 10),
            "resorts": rng.sample([*RESORTS, "not-in-any-profile"], rng.choice([0, 0, 1, 2])),
            "regions": rng.sample(REGIONS, rng.choice([0, 0, 1])),
            "dates": rng.sample(DATES, rng.choice([0, 1, 3])),
            "include_knowledge_score": rng.random() < 0.6,
            "knowledge_score": rng.choice([None, 0, *range(0, 101, 5), rng.randint(1, 100)]),
            "required_certifications": rng.sample(CERTIFICATIONS, rng.choice([0, 0, 0, 1, 2])),
            "limit": rng.choice([1, 3, 10, 20, 100]),
        },
    )


def test_index_and_baseline_agree_on_random_profiles_and_searches():
    rng = random.Random(20261128)
    compared = 0
    for case in range(300):
        n = rng.randint(0, 80)
        # Short ids collide sometimes: duplicates must tie-break the same way in both paths.
        user_ids = [f"u{rng.randint(0, n * 2)}" if case % 5 == 0 else f"u{i:03d}" for i in range(n)]
        rng.shuffle(user_ids)
        profiles = [random_profile(rng, uid) for uid in user_ids]
        index = ProfileIndex.build(profiles, RESORT_REGIONS)
        for _ in range(3):
            request = random_request(rng, user_ids)
            expected = match_baseline(request, profiles, RESORT_REGIONS)
            assert index.search(request) == expected, (case, request)
            compared += len(expected)
    assert compared > 3000  # the cases are not all empty


def test_index_and_baseline_agree_when_date_and_resort_sets_exceed_the_bitmasks():
    rng = random.Random(7)
    many_dates = [(date(2026, 1, 1) + timedelta(days=d)).isoformat() for d in range(400)]
    many_resorts = [f"resort{i}" for i in range(300)]
    resort_regions = {r: f"region{i % 70}" for i, r in enumerate(many_resorts)}
    profiles = [
        Profile(
            user_id=f"u{i}",
            nickname="",
            skill_level=rng.randint(1, 10),
            role=rng.choice(ROLES),
            resorts=tuple(rng.sample(many_resorts, rng.randint(0, 3))),
            regions=tuple(rng.sample(sorted(set(resort_regions.values())), rng.randint(0, 1))),
            available_dates=tuple(rng.sample(many_dates, rng.randint(0, 30))),
            knowledge_score=rng.randint(0, 100),
        )
        for i in range(500)
    ]
    index = ProfileIndex.build(profiles, resort_regions)
    assert index.dates.words is None and index.resorts.words is None  # the CSR form is in use
    for _ in range(40):
        request = SearchRequest.from_preferences(
            "u1",
            {
                "role": rng.choice(ROLES),
                "skill_level_min": 1,
                "skill_level_max": rng.randint(3, 10),
                "resorts": rng.sample(many_resorts, rng.randint(0, 5)),
                "regions": [f"region{rng.randint(0, 69)}"] if rng.random() < 0.5 else [],
                "dates": rng.sample(many_dates, rng.randint(0, 20)),
                "include_knowledge_score": rng.random() < 0.5,
                "knowledge_score": rng.randint(0, 100),
                "limit": 100,
            },
        )
        assert index.search(request) == match_baseline(request, profiles, resort_regions)


def test_vectorised_rounding_equals_python_round_even_next_to_half_cents():
    totals = np.array(
        [k / 1000 for k in range(1001)]
        + [np.nextafter(k / 1000, 2.0) for k in range(1001)]
        + [np.nextafter(k / 1000, -1.0) for k in range(1, 1001)]
        + [rules.weighted_total(1.0, 1.0, 1.0, 1.0, 0.95), 0.815, 0.545, 0.6825]
    )
    rounded = index_module._round_scores(totals)
    assert rounded.tolist() == [round(t, 2) for t in totals.tolist()]


def test_a_total_on_a_half_cent_rounds_as_python_rounds_it():
    # 0.3 + 0.25 + 0.2 + 0.15 + 0.1 * 0.95 is 0.995 on paper; the float decides the cent.
    profile = Profile(
        user_id="a",
        nickname="",
        skill_level=5,
        role="buddy",
        resorts=("happo",),
        available_dates=(DATES[0],),
        knowledge_score=85,
    )
    request = SearchRequest.from_preferences(
        "seeker",
        {
            "role": "buddy",
            "skill_level_min": 1,
            "skill_level_max": 10,
            "resorts": ["happo"],
            "dates": [DATES[0]],
            "include_knowledge_score": True,
            "knowledge_score": 80,
        },
    )
    expected = round(rules.weighted_total(1.0, 1.0, 1.0, 1.0, rules.knowledge_score(80, 85)), 2)
    [match] = ProfileIndex.build([profile], RESORT_REGIONS).search(request)
    assert match.score == expected
    assert match_baseline(request, [profile], RESORT_REGIONS)[0].score == expected


def test_an_empty_index_finds_nobody():
    request = SearchRequest.from_preferences("s", {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10})
    index = ProfileIndex.build([], RESORT_REGIONS)
    assert len(index) == 0
    assert index.search(request) == []


def test_an_index_can_be_built_from_a_generator_and_searched_repeatedly():
    rng = random.Random(3)
    profiles = [random_profile(rng, f"u{i}") for i in range(50)]
    index = ProfileIndex.build((p for p in profiles), RESORT_REGIONS)
    request = SearchRequest.from_preferences(
        "u0", {"role": "coach", "skill_level_min": 2, "skill_level_max": 9, "regions": ["Nagano"]}
    )
    first = index.search(request)
    assert first and index.search(request) == first == match_baseline(request, profiles, RESORT_REGIONS)


@pytest.mark.parametrize(("size", "limit"), [(200, 1), (200, 5), (200, 49), (50, 50), (200, 100), (5000, 100)])
def test_top_k_keeps_the_best_in_order_whatever_the_limit(size, limit):
    rng = random.Random(limit)
    profiles = [random_profile(rng, f"u{rng.randint(0, 10**6):07d}") for _ in range(size)]
    request = SearchRequest.from_preferences(
        "s",
        {
            "role": "buddy",
            "skill_level_min": 1,
            "skill_level_max": 10,
            "dates": DATES[:2],
            "include_knowledge_score": True,
            "knowledge_score": 60,
            "limit": limit,
        },
    )
    results = ProfileIndex.build(profiles, RESORT_REGIONS).search(request)
    assert len(results) == min(limit, len(match_baseline(request, profiles, RESORT_REGIONS)))
    assert results == match_baseline(request, profiles, RESORT_REGIONS)
    assert [(-m.score, m.user_id) for m in results] == sorted((-m.score, m.user_id) for m in results)
