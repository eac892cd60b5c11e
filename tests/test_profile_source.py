"""The database prefilter may over-include but must never drop a candidate the engine keeps."""

import random

import pytest

from matching.candidates.cold_path import ROW_FIELDS, prefiltered_profiles, to_engine_profile
from matching.engine import ProfileIndex, SearchRequest
from matching.management.demo_profiles import demo_profiles
from matching.models import SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields

pytestmark = pytest.mark.django_db


def _random_preferences(rng: random.Random, regions: dict[str, str]) -> dict:
    lo = rng.randint(1, 10)
    return {
        "role": rng.choice(["buddy", "student", "coach"]),
        "skill_level_min": lo,
        "skill_level_max": rng.randint(lo, 10),
        "resorts": rng.sample(sorted(regions), rng.randint(0, 3)),
        "regions": rng.sample(sorted(set(regions.values())), rng.randint(0, 1)),
        "dates": [],
        "include_knowledge_score": rng.random() < 0.5,
        "knowledge_score": rng.choice([None, 40, 80]),
        "limit": 100,
    }


def test_prefiltering_in_the_database_gives_the_same_ranking_as_scoring_everyone(resorts):
    regions = resort_regions()
    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**p)) for p in demo_profiles(600, regions, seed=11))
    everyone = [to_engine_profile(row) for row in SkierProfile.objects.values(*ROW_FIELDS)]
    full_index = ProfileIndex.build(everyone, regions)
    rng = random.Random(5)
    narrowed_something = False
    for _ in range(30):
        prefs = _random_preferences(rng, regions)
        candidates = list(prefiltered_profiles(seeker_id="u000001", preferences=prefs, resort_regions=regions))
        narrowed_something |= len(candidates) < len(everyone) // 2
        request = SearchRequest.from_preferences("u000001", prefs)
        assert ProfileIndex.build(candidates, regions).search(request) == full_index.search(request)
    assert narrowed_something


def test_a_profile_reaching_a_region_only_through_a_resort_is_not_prefiltered_out(resorts):
    from tests.helpers.factories import SkierProfileFactory

    via_resort = SkierProfileFactory(resorts=["yuzawa_naeba"])  # Niigata, by its resort only
    elsewhere = SkierProfileFactory(regions=["Hokkaido"])
    prefs = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "regions": ["Niigata Prefecture"]}
    found = {p.user_id for p in prefiltered_profiles(seeker_id="x", preferences=prefs, resort_regions=resort_regions())}
    assert via_resort.user_id in found and elsewhere.user_id not in found
