"""Why a profile is, or is not, a result of a search: the rules of `rules.py` applied one step at a time.

Support staff answer "why didn't my friend show up?" with this. The verdict is checked against the
engine itself (`ProfileIndex` on that one profile), so the explanation cannot drift from the ranking.

The engine ships without Django, so it translates nothing: each check carries its code (`excluded_by`,
or PASSED) and the values its sentence names (`params`); `reason` is the English sentence, and the
console words the same code and values in the staff member's language (matching.selectors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from . import rules
from .index import ProfileIndex
from .types import Breakdown, Match, Profile, SearchRequest

# Filters in the order the engine applies them.
SEEKER = "seeker"
NOT_OPEN = "not_open"
SKILL = "skill"
CERTIFICATION = "certification"
LOCATION = "location"
THRESHOLD = "threshold"
PASSED = "passed"  # the code of a check that passes: `excluded_by` stays None

# The English sentence of each code, over the names in `params`.
REASONS = {
    SEEKER: "this is the seeker: a search never returns its own seeker",
    NOT_OPEN: "the profile is not open to matching",
    SKILL: "skill level {level} is outside the search's range {low} to {high}",
    CERTIFICATION: "holds none of the required certifications {wanted} (holds: {held})",
    LOCATION: "no resort or region in common with the search",
    THRESHOLD: "scored {score:.2f}, not above the {minimum} threshold",
    PASSED: "scored {score:.2f}",
}


@dataclass(frozen=True)
class CandidateCheck:
    """`excluded_by` is None when the profile passes every filter and the threshold."""

    excluded_by: str | None
    score: float | None = None  # the rounded total, when the filters let the profile be scored
    breakdown: Breakdown | None = None
    params: Mapping[str, object] = field(default_factory=dict)  # the values the reason names

    @property
    def code(self) -> str:
        return self.excluded_by or PASSED

    @property
    def reason(self) -> str:
        params = dict(self.params)
        if self.code == CERTIFICATION:
            params["held"] = params.get("held") or "none"
        return REASONS[self.code].format(**params)

    @property
    def passes(self) -> bool:
        return self.excluded_by is None


def check_candidate(request: SearchRequest, profile: Profile, resort_regions: Mapping[str, str]) -> CandidateCheck:
    lo, hi = request.skill_level_min, request.skill_level_max
    if profile.user_id == request.seeker_id:
        return CandidateCheck(SEEKER)
    if not profile.open_to_matching:
        return CandidateCheck(NOT_OPEN)
    if not rules.skill_score(profile.skill_level, lo, hi):
        return CandidateCheck(SKILL, params={"level": profile.skill_level, "low": lo, "high": hi})
    wanted = set(request.required_certifications)
    if wanted and wanted.isdisjoint(profile.certifications):
        held = ", ".join(profile.certifications)  # "" when none: each language says "none" its own way
        return CandidateCheck(CERTIFICATION, params={"wanted": ", ".join(sorted(wanted)), "held": held})
    seeker_regions = rules.expand_regions(request.resorts, request.regions, resort_regions)
    location = rules.location_score(
        profile.resorts,
        rules.expand_regions(profile.resorts, profile.regions, resort_regions),
        request.resorts,
        seeker_regions,
    )
    if (request.resorts or request.regions) and not location:
        return CandidateCheck(LOCATION)
    availability = rules.availability_score(profile.available_dates, request.dates)
    role = rules.role_score(profile.role, request.role)
    knowledge = (
        rules.knowledge_score(request.knowledge_score, profile.knowledge_score)
        if request.include_knowledge_score
        else None
    )
    score = rules.round_score(rules.weighted_total(1.0, location, availability, role, knowledge))
    breakdown = rules.make_breakdown(1.0, location, availability, role, knowledge)
    if not rules.passes_threshold(score):
        return CandidateCheck(THRESHOLD, score, breakdown, {"score": score, "minimum": rules.MIN_SCORE})
    return CandidateCheck(None, score, breakdown, {"score": score})


def engine_match(request: SearchRequest, profile: Profile, resort_regions: Mapping[str, str]) -> Match | None:
    """What the engine itself makes of this one profile (None: filtered out or under the threshold)."""
    found = ProfileIndex.build([profile], resort_regions).search(replace(request, limit=1))
    return found[0] if found else None


def rank_among(score: float, user_id: str, others: list[tuple[float, str]]) -> int:
    """The rank a (score, user_id) would take among other results, by the engine's tie-break."""
    return 1 + sum(1 for s, uid in others if uid != user_id and (s > score or (s == score and uid < user_id)))
