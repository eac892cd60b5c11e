"""The matching rules (ARCHITECTURE.md, "Matching rules"), one candidate at a time.

`match_baseline` is the reference oracle that `ProfileIndex.search` must reproduce exactly, and
the baseline of bench/engine_bench.py. Every constant the vectorised path needs lives here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from .types import Breakdown, Match, Profile, SearchRequest

MIN_SCORE = 0.2  # rounded totals must be strictly above this
WEIGHTS_WITH_KNOWLEDGE = (0.3, 0.25, 0.2, 0.15, 0.1)  # skill, location, availability, role, knowledge
# Without knowledge the old service adds the knowledge weight back spread evenly over the four
# other scores, as a second term: (0.3·s + 0.25·l + 0.2·a + 0.15·r) + 0.025·(s + l + a + r).
KNOWLEDGE_SHARE = WEIGHTS_WITH_KNOWLEDGE[4] / 4
KNOWLEDGE_DIGITS = 4  # the breakdown's knowledge value is rounded for display; the total is not

LOCATION_RESORT = 1.0
LOCATION_REGION = 0.5
AVAILABILITY_UNKNOWN = 0.2
AVAILABILITY_COMMON = 1.0
ROLE_SOUGHT = 1.0
ROLE_COACH_FOR_BUDDY = 0.8
ROLE_OTHER = 0.1
KNOWLEDGE_UNKNOWN = 0.5


def expand_regions(resorts: Iterable[str], regions: Iterable[str], resort_regions: Mapping[str, str]) -> frozenset[str]:
    """A side's regions: the ones it names plus the region of each of its resorts."""
    expanded = set(regions)
    for resort in resorts:
        region = resort_regions.get(resort)
        if region is not None:
            expanded.add(region)
    return frozenset(expanded)


def skill_score(skill_level: int, skill_min: int, skill_max: int) -> float:
    return 1.0 if skill_min <= skill_level <= skill_max else 0.0


def location_score(
    candidate_resorts: Collection[str],
    candidate_regions: Collection[str],
    seeker_resorts: Collection[str],
    seeker_regions: Collection[str],
) -> float:
    """Regions on both sides must already be expanded (see `expand_regions`)."""
    if not set(candidate_resorts).isdisjoint(seeker_resorts):
        return LOCATION_RESORT
    if not set(candidate_regions).isdisjoint(seeker_regions):
        return LOCATION_REGION
    return 0.0


def availability_score(candidate_dates: Collection[str], seeker_dates: Collection[str]) -> float:
    if not candidate_dates or not seeker_dates:
        return AVAILABILITY_UNKNOWN
    if not set(candidate_dates).isdisjoint(seeker_dates):
        return AVAILABILITY_COMMON
    return 0.0


def role_score(candidate_role: str, sought_role: str) -> float:
    if candidate_role == sought_role:
        return ROLE_SOUGHT
    if sought_role == "buddy" and candidate_role == "coach":
        return ROLE_COACH_FOR_BUDDY
    return ROLE_OTHER


def knowledge_score(seeker_score: float | None, candidate_score: float | None) -> float:
    """0.5 when either score is missing or 0, else 1 - |a - b| / 100 clamped to [0, 1]."""
    if not seeker_score or not candidate_score:
        return KNOWLEDGE_UNKNOWN
    return min(1.0, max(0.0, 1.0 - abs(seeker_score - candidate_score) / 100))


def weighted_total(skill: float, location: float, availability: float, role: float, knowledge: float | None) -> float:
    """The unrounded total, with the old service's float operations in the old service's order
    (ARCHITECTURE.md): folding the weights into one sum rounds 0.545 to 0.54 where it gave 0.55.
    The vectorised path repeats exactly these operations in this order."""
    w_skill, w_location, w_availability, w_role, w_knowledge = WEIGHTS_WITH_KNOWLEDGE
    base = w_skill * skill + w_location * location + w_availability * availability + w_role * role
    if knowledge is None:
        return base + KNOWLEDGE_SHARE * (skill + location + availability + role)
    return base + w_knowledge * knowledge


def round_score(total: float) -> float:
    return round(total, 2)


def passes_threshold(score: float) -> bool:
    return score > MIN_SCORE


def make_breakdown(
    skill: float, location: float, availability: float, role: float, knowledge: float | None
) -> Breakdown:
    return Breakdown(
        skill=skill,
        location=location,
        availability=availability,
        role=role,
        knowledge=None if knowledge is None else round(knowledge, KNOWLEDGE_DIGITS),
    )


def rank_matches(matches: Iterable[Match], limit: int) -> list[Match]:
    """Best first, ties by user_id (string order), capped at `limit`, ranks from 1."""
    ordered = sorted(matches, key=lambda m: (-m.score, m.user_id))[: max(limit, 0)]
    return [replace(match, rank=position) for position, match in enumerate(ordered, start=1)]


@dataclass(frozen=True, slots=True)
class _Seeker:
    """The request side of the rules, computed once per search."""

    request: SearchRequest
    resorts: frozenset[str]
    regions: frozenset[str]
    dates: frozenset[str]
    certifications: frozenset[str]
    names_location: bool

    @classmethod
    def of(cls, request: SearchRequest, resort_regions: Mapping[str, str]) -> _Seeker:
        return cls(
            request=request,
            resorts=frozenset(request.resorts),
            regions=expand_regions(request.resorts, request.regions, resort_regions),
            dates=frozenset(request.dates),
            certifications=frozenset(request.required_certifications),
            names_location=bool(request.resorts or request.regions),
        )


def _score(seeker: _Seeker, profile: Profile, resort_regions: Mapping[str, str]) -> Match | None:
    request = seeker.request
    if profile.user_id == request.seeker_id or not profile.open_to_matching:
        return None
    skill = skill_score(profile.skill_level, request.skill_level_min, request.skill_level_max)
    if not skill:
        return None
    if seeker.certifications and seeker.certifications.isdisjoint(profile.certifications):
        return None
    location = location_score(
        profile.resorts,
        expand_regions(profile.resorts, profile.regions, resort_regions),
        seeker.resorts,
        seeker.regions,
    )
    if seeker.names_location and not location:
        return None
    availability = availability_score(profile.available_dates, seeker.dates)
    role = role_score(profile.role, request.role)
    knowledge = (
        knowledge_score(request.knowledge_score, profile.knowledge_score) if request.include_knowledge_score else None
    )
    score = round_score(weighted_total(skill, location, availability, role, knowledge))
    if not passes_threshold(score):
        return None
    return Match(
        user_id=profile.user_id,
        score=score,
        breakdown=make_breakdown(skill, location, availability, role, knowledge),
    )


def score_profile(request: SearchRequest, profile: Profile, resort_regions: Mapping[str, str]) -> Match | None:
    """One candidate's match (rank 0), or None when a filter or the threshold drops it."""
    return _score(_Seeker.of(request, resort_regions), profile, resort_regions)


def match_baseline(
    request: SearchRequest, profiles: Iterable[Profile], resort_regions: Mapping[str, str]
) -> list[Match]:
    """The reference ranking: every profile through `score_profile`, then `rank_matches`."""
    seeker = _Seeker.of(request, resort_regions)
    matches = []
    for profile in profiles:
        match = _score(seeker, profile, resort_regions)
        if match is not None:
            matches.append(match)
    return rank_matches(matches, request.limit)
