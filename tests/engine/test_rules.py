"""The matching rules of ARCHITECTURE.md, checked on both the baseline loop and the index."""

from __future__ import annotations

import pytest

from matching.engine import (
    Breakdown,
    Match,
    Profile,
    ProfileIndex,
    SearchRequest,
    match_baseline,
    rules,
    score_profile,
)
from tests.helpers.bodies import CONTRACT_DEFAULTS

RESORT_REGIONS = {
    "happo": "Nagano",
    "goryu": "Nagano",
    "naeba": "Niigata",
    "kagura": "Niigata",
    "niseko": "Hokkaido",
}


def make_profile(user_id: str = "cand", **fields) -> Profile:
    values = {
        "nickname": user_id,
        "skill_level": 6,
        "role": "buddy",
        "open_to_matching": True,
    }
    values.update(fields)
    return Profile(user_id=user_id, **values)


def make_request(**prefs) -> SearchRequest:
    values = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10}
    values.update(prefs)
    return SearchRequest.from_preferences("seeker", values)


def run_baseline(request, profiles, resort_regions=RESORT_REGIONS):
    return match_baseline(request, profiles, resort_regions)


def run_index(request, profiles, resort_regions=RESORT_REGIONS):
    return ProfileIndex.build(profiles, resort_regions).search(request)


both_paths = pytest.mark.parametrize("run", [run_baseline, run_index], ids=["baseline", "index"])


def only_match(run, request, profile) -> Match | None:
    results = run(request, [profile])
    assert len(results) <= 1
    return results[0] if results else None


# Knowledge


@pytest.mark.parametrize(
    ("seeker_score", "candidate_score", "expected"),
    [(80, 85, 0.95), (80, 50, 0.70), (80, 20, 0.40), (85, 80, 0.95), (100, 100, 1.0)],
)
def test_knowledge_closeness_is_one_minus_the_gap_over_a_hundred(seeker_score, candidate_score, expected):
    assert rules.knowledge_score(seeker_score, candidate_score) == pytest.approx(expected)


@pytest.mark.parametrize(("seeker_score", "candidate_score"), [(80, None), (None, 80), (80, 0), (0, 80)])
def test_knowledge_is_a_neutral_half_when_either_score_is_missing_or_zero(seeker_score, candidate_score):
    assert rules.knowledge_score(seeker_score, candidate_score) == 0.5


def test_knowledge_closeness_is_clamped_to_zero():
    assert rules.knowledge_score(10, 130) == 0.0


@both_paths
@pytest.mark.parametrize(
    ("candidate_score", "expected"), [(85, 0.95), (50, 0.7), (20, 0.4), (10, 0.3), (None, 0.5), (0, 0.5)]
)
def test_breakdown_reports_the_knowledge_score_when_requested(run, candidate_score, expected):
    request = make_request(include_knowledge_score=True, knowledge_score=80)
    match = only_match(run, request, make_profile(knowledge_score=candidate_score))
    assert match.breakdown.knowledge == expected


@both_paths
def test_knowledge_is_absent_from_the_breakdown_when_not_requested(run):
    request = make_request(knowledge_score=80)
    match = only_match(run, request, make_profile(knowledge_score=80))
    assert match.breakdown.knowledge is None


# Location


@both_paths
def test_a_common_resort_scores_location_one(run):
    request = make_request(resorts=["happo"])
    match = only_match(run, request, make_profile(resorts=("naeba", "happo")))
    assert match.breakdown.location == 1.0


@both_paths
def test_a_common_named_region_scores_location_half(run):
    request = make_request(regions=["Niigata"])
    match = only_match(run, request, make_profile(regions=("Niigata",)))
    assert match.breakdown.location == 0.5


@both_paths
def test_two_resorts_in_the_same_region_score_location_half(run):
    request = make_request(resorts=["happo"])
    match = only_match(run, request, make_profile(resorts=("goryu",)))
    assert match.breakdown.location == 0.5


@both_paths
def test_a_seekers_named_region_meets_a_candidates_resort_in_it(run):
    request = make_request(regions=["Nagano"])
    match = only_match(run, request, make_profile(resorts=("goryu",)))
    assert match.breakdown.location == 0.5


@both_paths
def test_a_seekers_resort_meets_a_candidates_named_region(run):
    request = make_request(resorts=["kagura"])
    match = only_match(run, request, make_profile(regions=("Niigata",)))
    assert match.breakdown.location == 0.5


@both_paths
def test_candidates_without_a_common_resort_or_region_are_dropped_when_the_seeker_names_places(run):
    request = make_request(resorts=["happo"], regions=["Hokkaido"])
    assert run(request, [make_profile(resorts=("naeba",), regions=("Niigata",))]) == []


@both_paths
def test_without_places_in_the_search_location_is_zero_and_nobody_is_dropped_for_it(run):
    request = make_request()
    match = only_match(run, request, make_profile(resorts=("happo",), regions=("Nagano",)))
    assert match.breakdown.location == 0.0


def test_location_score_without_overlap_is_zero():
    assert rules.location_score({"happo"}, {"Nagano"}, {"naeba"}, {"Niigata"}) == 0.0


# Role


@both_paths
@pytest.mark.parametrize(
    ("sought", "candidate_role", "expected"),
    [
        ("buddy", "coach", 0.8),
        ("buddy", "buddy", 1.0),
        ("coach", "coach", 1.0),
        ("student", "student", 1.0),
        ("coach", "buddy", 0.1),
        ("student", "coach", 0.1),
        ("buddy", "student", 0.1),
    ],
)
def test_role_score_follows_the_sought_role(run, sought, candidate_role, expected):
    match = only_match(run, make_request(role=sought), make_profile(role=candidate_role))
    assert match.breakdown.role == expected


# Skill


@both_paths
def test_a_skill_inside_the_range_scores_one(run):
    request = make_request(skill_level_min=5, skill_level_max=7)
    match = only_match(run, request, make_profile(skill_level=6))
    assert match.breakdown.skill == 1.0


def test_a_skill_outside_the_range_scores_zero():
    assert rules.skill_score(3, 8, 10) == 0.0


@both_paths
def test_candidates_outside_the_skill_range_are_dropped(run):
    request = make_request(skill_level_min=8, skill_level_max=10)
    assert run(request, [make_profile(skill_level=3)]) == []


@both_paths
def test_the_skill_range_includes_both_ends(run):
    request = make_request(skill_level_min=5, skill_level_max=7)
    profiles = [make_profile(f"s{level}", skill_level=level) for level in (4, 5, 6, 7, 8)]
    assert sorted(m.user_id for m in run(request, profiles)) == ["s5", "s6", "s7"]


# Availability


@both_paths
@pytest.mark.parametrize(
    ("seeker_dates", "candidate_dates", "expected"),
    [
        ([], ("2026-12-01",), 0.2),
        (["2026-12-01"], (), 0.2),
        ([], (), 0.2),
        (["2026-12-01", "2026-12-02"], ("2026-12-02",), 1.0),
        (["2026-12-01"], ("2026-12-03",), 0.0),
    ],
)
def test_availability_scores_common_dates(run, seeker_dates, candidate_dates, expected):
    request = make_request(dates=seeker_dates)
    match = only_match(run, request, make_profile(available_dates=candidate_dates))
    assert match.breakdown.availability == expected


# Weights, rounding, threshold


def test_weights_with_knowledge_sum_the_five_dimensions():
    # 0.3*1 + 0.25*1 + 0.2*0.2 + 0.15*0.8 + 0.1*0.4 = 0.75
    assert rules.weighted_total(1.0, 1.0, 0.2, 0.8, 0.4) == pytest.approx(0.75)


def test_weights_without_knowledge_spread_its_tenth_over_the_others():
    # 0.325*1 + 0.275*0.5 + 0.225*1 + 0.175*0.8 = 0.8275
    assert rules.weighted_total(1.0, 0.5, 1.0, 0.8, None) == pytest.approx(0.8275)


@both_paths
def test_total_with_knowledge_matches_a_hand_computed_score(run):
    request = make_request(
        resorts=["happo"],
        dates=["2026-12-01"],
        include_knowledge_score=True,
        knowledge_score=80,
    )
    candidate = make_profile(role="coach", resorts=("happo",), knowledge_score=20)
    match = only_match(run, request, candidate)
    assert match.breakdown == Breakdown(1.0, 1.0, 0.2, 0.8, 0.4)
    assert match.score == 0.75


@both_paths
def test_total_without_knowledge_matches_a_hand_computed_score(run):
    request = make_request(resorts=["happo"], dates=["2026-12-01"])
    candidate = make_profile(role="coach", resorts=("goryu",), available_dates=("2026-12-01",), knowledge_score=20)
    match = only_match(run, request, candidate)
    assert match.breakdown == Breakdown(1.0, 0.5, 1.0, 0.8, None)
    assert match.score == 0.83  # 0.8275 rounded


def test_scores_round_to_two_decimals_like_python():
    assert rules.round_score(0.8275) == round(0.8275, 2) == 0.83
    assert rules.round_score(0.2049) == 0.2


def test_a_total_of_exactly_the_threshold_is_dropped_and_one_cent_more_is_kept():
    assert not rules.passes_threshold(0.2)
    assert not rules.passes_threshold(rules.round_score(0.2049))
    assert rules.passes_threshold(0.21)


@both_paths
def test_both_paths_drop_a_match_whose_score_equals_the_threshold(run, monkeypatch):
    # Real totals cannot fall to 0.2 (skill alone gives 0.3), so move the threshold onto one.
    request = make_request(resorts=["happo"])
    candidate = make_profile(resorts=("goryu",))  # 0.325 + 0.1375 + 0.045 + 0.175 = 0.6825
    monkeypatch.setattr(rules, "MIN_SCORE", 0.68)
    assert run(request, [candidate]) == []
    monkeypatch.setattr(rules, "MIN_SCORE", 0.67)
    assert [m.score for m in run(request, [candidate])] == [0.68]


# Filters


@both_paths
def test_the_seeker_never_matches_themself(run):
    profiles = [make_profile("seeker"), make_profile("other")]
    assert [m.user_id for m in run(make_request(), profiles)] == ["other"]


@both_paths
def test_profiles_closed_to_matching_are_left_out(run):
    profiles = [make_profile("closed", open_to_matching=False), make_profile("open")]
    assert [m.user_id for m in run(make_request(), profiles)] == ["open"]


@both_paths
def test_required_certifications_keep_only_coaches_holding_one_of_them(run):
    request = make_request(role="coach", required_certifications=["CASI-3", "CSIA-2"])
    profiles = [
        make_profile("casi3", role="coach", certifications=("CASI-1", "CASI-3")),
        make_profile("csia2", role="coach", certifications=("CSIA-2",)),
        make_profile("casi1", role="coach", certifications=("CASI-1",)),
        make_profile("none", role="coach"),
    ]
    assert sorted(m.user_id for m in run(request, profiles)) == ["casi3", "csia2"]


@both_paths
def test_no_required_certifications_filters_nobody(run):
    profiles = [make_profile("a", role="coach", certifications=("CASI-1",)), make_profile("b", role="coach")]
    assert len(run(make_request(role="coach"), profiles)) == 2


# Ranking


@both_paths
def test_results_come_best_first(run):
    request = make_request(resorts=["happo"])
    profiles = [
        make_profile("a-region", resorts=("goryu",)),
        make_profile("b-resort", resorts=("happo",)),
    ]
    assert [m.user_id for m in run(request, profiles)] == ["b-resort", "a-region"]


@both_paths
def test_equal_scores_are_ordered_by_user_id(run):
    profiles = [make_profile(uid) for uid in ("b", "aa", "c", "a", "B")]
    results = run(make_request(), profiles)
    assert [m.user_id for m in results] == ["B", "a", "aa", "b", "c"]
    assert [m.rank for m in results] == [1, 2, 3, 4, 5]


@both_paths
def test_results_are_capped_at_the_limit(run):
    request = make_request(resorts=["happo"], limit=2)
    profiles = [make_profile(f"r{i}", resorts=("goryu",)) for i in range(5)]
    profiles.append(make_profile("z-best", resorts=("happo",)))
    results = run(request, profiles)
    assert [(m.user_id, m.rank) for m in results] == [("z-best", 1), ("r0", 2)]


@both_paths
def test_every_result_carries_its_breakdown(run):
    request = make_request(include_knowledge_score=True, knowledge_score=50)
    results = run(request, [make_profile("a", knowledge_score=60), make_profile("b")])
    assert [m.breakdown.to_dict() for m in results] == [
        {"skill": 1.0, "location": 0.0, "availability": 0.2, "role": 1.0, "knowledge": 0.9},
        {"skill": 1.0, "location": 0.0, "availability": 0.2, "role": 1.0, "knowledge": 0.5},
    ]


def test_score_profile_scores_one_candidate_without_a_rank():
    match = score_profile(make_request(), make_profile("a", role="student"), RESORT_REGIONS)
    # 0.325 + 0 + 0.225 * 0.2 + 0.175 * 0.1 = 0.3875
    assert match == Match("a", 0.39, Breakdown(1.0, 0.0, 0.2, 0.1, None), rank=0)


def test_score_profile_returns_none_for_a_filtered_candidate():
    assert score_profile(make_request(), make_profile("seeker"), RESORT_REGIONS) is None


# Types


def test_preferences_fill_the_contract_defaults():
    request = SearchRequest.from_preferences("u1", {"role": "coach", "skill_level_min": 3, "skill_level_max": 6})
    assert request.to_preferences() == {
        "role": "coach",
        "skill_level_min": 3,
        "skill_level_max": 6,
        **CONTRACT_DEFAULTS,
    }


def test_unknown_preference_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown preference keys: colour"):
        make_request(colour="red")


def test_a_missing_required_preference_is_rejected():
    with pytest.raises(ValueError, match="'skill_level_max' is required"):
        SearchRequest.from_preferences("u1", {"role": "coach", "skill_level_min": 3})


def test_a_request_survives_its_dict_form():
    request = make_request(resorts=["happo"], dates=["2026-12-01"], required_certifications=["SAJ-1"])
    assert SearchRequest.from_dict(request.to_dict()) == request


def test_a_profile_survives_its_json_form():
    profile = make_profile(
        resorts=("happo",),
        regions=("Nagano",),
        available_dates=("2026-12-01",),
        knowledge_score=70,
        certifications=("CASI-2",),
        languages=("ja", "en"),
    )
    assert Profile.from_dict(profile.to_dict()) == profile


def test_a_match_survives_its_json_form():
    match = Match("a", 0.75, Breakdown(1.0, 1.0, 0.2, 0.8, 0.4), rank=3)
    assert Match.from_dict(match.to_dict()) == match
    assert match.to_dict()["breakdown"]["knowledge"] == 0.4
