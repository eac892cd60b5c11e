"""The step-by-step verdict on one candidate agrees with the engine and names the filter that dropped it."""

from __future__ import annotations

import pytest

from matching.engine import Profile, SearchRequest
from matching.engine.explain import (
    CERTIFICATION,
    LOCATION,
    NOT_OPEN,
    SEEKER,
    SKILL,
    THRESHOLD,
    check_candidate,
    engine_match,
    rank_among,
)

REGIONS = {"yuzawa_naeba": "Niigata Prefecture", "hakuba_happo": "Nagano Prefecture", "niseko": "Hokkaido"}


def request(**prefs) -> SearchRequest:
    return SearchRequest.from_preferences(
        "seeker", {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, **prefs}
    )


def profile(**fields) -> Profile:
    base = {"user_id": "u1", "nickname": "Ann", "skill_level": 5, "role": "buddy", "open_to_matching": True}
    return Profile.from_dict({**base, **fields})


@pytest.mark.parametrize(
    ("req", "prof", "excluded_by", "words"),
    [
        (request(), profile(user_id="seeker"), SEEKER, "this is the seeker"),
        (request(), profile(open_to_matching=False), NOT_OPEN, "not open to matching"),
        (request(), profile(skill_level=9), SKILL, "skill level 9 is outside the search's range 3 to 7"),
        (request(role="coach", required_certifications=["ISIA"]), profile(role="coach", certifications=["CASI-1"]),
         CERTIFICATION, "holds none of the required certifications ISIA (holds: CASI-1)"),
        (request(resorts=["yuzawa_naeba"]), profile(resorts=["niseko"]), LOCATION, "no resort or region in common"),
    ],
)  # fmt: skip
def test_each_filter_is_named_and_the_engine_agrees(req, prof, excluded_by, words):
    check = check_candidate(req, prof, REGIONS)
    assert check.excluded_by == excluded_by and words in check.reason
    assert engine_match(req, prof, REGIONS) is None


def test_a_passing_candidate_gets_the_engines_own_score_and_breakdown():
    req = request(resorts=["yuzawa_naeba"], dates=["2027-01-15"])
    prof = profile(resorts=["hakuba_happo"], regions=["Niigata Prefecture"], available_dates=["2027-01-15"])
    check = check_candidate(req, prof, REGIONS)
    match = engine_match(req, prof, REGIONS)
    assert check.passes and match is not None
    assert check.score == match.score and check.breakdown == match.breakdown
    assert check.breakdown.location == 0.5 and check.breakdown.availability == 1.0


def test_the_threshold_never_drops_a_candidate_who_passed_the_filters():
    # Skill is 1 for everyone left, so the lowest total is 0.3 + 0.15 * 0.1 (+ 0.1 * 0) = 0.315 > 0.2.
    worst = request(role="coach", dates=["2027-01-15"], include_knowledge_score=True, knowledge_score=100)
    check = check_candidate(worst, profile(role="student", available_dates=["x"], knowledge_score=1), REGIONS)
    assert check.excluded_by != THRESHOLD and check.score == pytest.approx(0.32)


def test_rank_among_uses_the_engines_tie_break():
    others = [(0.9, "a"), (0.8, "b"), (0.8, "d"), (0.5, "e")]
    assert rank_among(0.8, "c", others) == 3
    assert rank_among(0.95, "z", others) == 1
    assert rank_among(0.1, "z", others) == 5
    assert rank_among(0.8, "b", others) == 2  # its own stored row does not count against it
