"""The displayed score equals the old service's on every input (issue 8, item 7).

`old_total` is a literal transcription of the old service's `calculate_total_match_score`
(weights as module constants, each score times its weight, the knowledge weight spread over the
four other scores as a second term, then Python's round to 2 places). Both of the console's paths,
the per-candidate rules and the vectorised index, must produce the same floats on every
combination of the four scores, with and without knowledge.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from matching.engine import Profile, ProfileIndex, SearchRequest, match_baseline, rules
from matching.engine import index as index_module

WEIGHT_SKILL = 0.3
WEIGHT_LOCATION = 0.25
WEIGHT_AVAILABILITY = 0.2
WEIGHT_ROLE = 0.15
WEIGHT_KNOWLEDGE = 0.1


def old_total(s_skill, s_location, s_availability, s_role, s_knowledge=None):
    total = (
        s_skill * WEIGHT_SKILL
        + s_location * WEIGHT_LOCATION
        + s_availability * WEIGHT_AVAILABILITY
        + s_role * WEIGHT_ROLE
    )
    if s_knowledge is not None:
        total += s_knowledge * WEIGHT_KNOWLEDGE
    else:
        redistribution = WEIGHT_KNOWLEDGE / 4
        total += redistribution * (s_skill + s_location + s_availability + s_role)
    return round(total, 2)


SKILL = (0.0, 1.0)
LOCATION = (0.0, 0.5, 1.0)
AVAILABILITY = (0.0, 0.2, 1.0)
ROLE = (0.1, 0.8, 1.0)
EVERY_COMBINATION = list(itertools.product(SKILL, LOCATION, AVAILABILITY, ROLE))
KNOWLEDGE = (0.5, *[k / 100 for k in range(0, 101)])


def test_every_combination_is_enumerated():
    assert len(EVERY_COMBINATION) == 54  # the 27 in-range combinations, and the 27 out of range
    assert len([c for c in EVERY_COMBINATION if c[0] == 1.0]) == 27


@pytest.mark.parametrize(("skill", "location", "availability", "role"), EVERY_COMBINATION)
def test_the_rules_score_equals_the_old_services_without_knowledge(skill, location, availability, role):
    ours = rules.round_score(rules.weighted_total(skill, location, availability, role, None))
    assert ours == old_total(skill, location, availability, role)


def test_the_rules_score_equals_the_old_services_with_every_knowledge_value():
    for (skill, location, availability, role), knowledge in itertools.product(EVERY_COMBINATION, KNOWLEDGE):
        ours = rules.round_score(rules.weighted_total(skill, location, availability, role, knowledge))
        assert ours == old_total(skill, location, availability, role, knowledge), (skill, location, availability, role)


def test_the_vectorised_totals_equal_the_old_services_on_every_in_range_combination():
    combos = [c for c in EVERY_COMBINATION if c[0] == 1.0]
    location, availability, role = (np.array([c[i] for c in combos]) for i in (1, 2, 3))
    without = index_module._round_scores(index_module._weighted_total(location, availability, role, None))
    assert without.tolist() == [old_total(*c) for c in combos]
    for knowledge in KNOWLEDGE:
        column = np.full(len(combos), knowledge)
        scored = index_module._round_scores(index_module._weighted_total(location, availability, role, column))
        assert scored.tolist() == [old_total(*c, knowledge) for c in combos]


def test_the_three_combinations_the_folded_weights_rounded_differently_now_agree():
    # The console used to fold the knowledge weight into four weights (0.325, 0.275, 0.225, 0.175):
    # the same on paper, another float on 3 of the 27 in-range combinations (0.545 -> 0.54).
    def folded(s, loc, a, r):
        return round(0.325 * s + 0.275 * loc + 0.225 * a + 0.175 * r, 2)

    in_range = [c for c in EVERY_COMBINATION if c[0] == 1.0]
    differing = [c for c in in_range if folded(*c) != old_total(*c)]
    assert len(differing) == 3
    for combo in differing:
        assert rules.round_score(rules.weighted_total(*combo, None)) == old_total(*combo)


def _profiles_for_every_combination() -> tuple[list[Profile], dict[tuple, str]]:
    """One candidate per (location, availability, role) combination against one fixed seeker."""
    profiles, by_combo = [], {}
    where = {1.0: (("naeba",), ()), 0.5: (("kagura",), ()), 0.0: ((), ("Hokkaido",))}
    when = {1.0: ("2027-01-05",), 0.2: (), 0.0: ("2027-02-01",)}
    for location, availability, role in itertools.product(LOCATION, AVAILABILITY, ("coach", "student")):
        user_id = f"u-{location}-{availability}-{role}"
        resorts, regions = where[location]
        profiles.append(
            Profile(
                user_id=user_id,
                nickname=user_id,
                skill_level=5,
                role=role,
                resorts=resorts,
                regions=regions,
                available_dates=when[availability],
            )
        )
        by_combo[(location, availability, role)] = user_id
    return profiles, by_combo


@pytest.mark.parametrize("sought", ["coach", "buddy", "student"])
@pytest.mark.parametrize("seeker_resorts", [["naeba"], []])
def test_both_engine_paths_give_every_candidate_the_old_services_score(sought, seeker_resorts):
    profiles, by_combo = _profiles_for_every_combination()
    regions = {"naeba": "Niigata", "kagura": "Niigata"}
    request = SearchRequest.from_preferences(
        "seeker",
        {
            "role": sought,
            "skill_level_min": 1,
            "skill_level_max": 10,
            "resorts": seeker_resorts,
            "dates": ["2027-01-05"],
            "limit": 100,
        },
    )
    vectorised = {m.user_id: m.score for m in ProfileIndex.build(profiles, regions).search(request)}
    baseline = {m.user_id: m.score for m in match_baseline(request, profiles, regions)}
    assert vectorised == baseline
    for (location, availability, candidate_role), user_id in by_combo.items():
        role = 1.0 if candidate_role == sought else 0.8 if (sought, candidate_role) == ("buddy", "coach") else 0.1
        if not seeker_resorts:
            location = 0.0  # a seeker who names no place scores every location 0
        elif location == 0.0:
            assert user_id not in vectorised  # the location filter drops it, as the old one did
            continue
        expected = old_total(1.0, location, availability, role)
        assert vectorised.get(user_id) == (expected if expected > 0.2 else None), user_id
