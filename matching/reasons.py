"""Results and preferences in words, for staff (pure functions: no Django, no database).

Reasons are derived from what was stored with each result (its per-dimension breakdown), the
search's preferences, and the candidate's profile and resort names as they are now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ROLE_WORDS = {"buddy": "a buddy", "student": "a student", "coach": "a coach"}


def _names(ids: Sequence[str], names: Mapping[str, str]) -> str:
    return ", ".join(names.get(i, i) for i in ids)


def _dates(dates: Sequence[str], shown: int = 3) -> str:
    ordered = sorted(dates)
    more = len(ordered) - shown
    return ", ".join(ordered[:shown]) + (f" (+{more} more)" if more > 0 else "")


def dimension_reasons(
    *,
    breakdown: Mapping[str, Any],
    preferences: Mapping[str, Any],
    profile: Mapping[str, Any] | None,
    resort_names: Mapping[str, str],
    resort_regions: Mapping[str, str],
) -> dict[str, str]:
    """One sentence per dimension of a stored result: why it scored what it scored."""
    profile = profile or {}
    reasons: dict[str, str] = {}
    lo, hi = preferences.get("skill_level_min"), preferences.get("skill_level_max")
    level = profile.get("skill_level")
    if breakdown.get("skill"):
        reasons["skill"] = f"skill {level} within {lo} to {hi}" if level is not None else f"skill within {lo} to {hi}"
    else:
        reasons["skill"] = f"skill {level if level is not None else '?'} outside {lo} to {hi}"

    seeker_resorts = list(preferences.get("resorts") or [])
    seeker_regions = set(preferences.get("regions") or []) | {
        resort_regions[r] for r in seeker_resorts if r in resort_regions
    }
    their_resorts = list(profile.get("resorts") or [])
    their_regions = set(profile.get("regions") or []) | {
        resort_regions[r] for r in their_resorts if r in resort_regions
    }
    location = breakdown.get("location") or 0
    if location >= 1:
        common = [r for r in seeker_resorts if r in their_resorts]
        reasons["location"] = f"same resort: {_names(common, resort_names)}" if common else "same resort"
    elif location > 0:
        common_regions = sorted(seeker_regions & their_regions)
        reasons["location"] = f"same region: {', '.join(common_regions)}" if common_regions else "same region"
    elif seeker_resorts or seeker_regions:
        reasons["location"] = "no resort or region in common"
    else:
        reasons["location"] = "the search names no resort or region"

    seeker_dates = list(preferences.get("dates") or [])
    their_dates = list(profile.get("available_dates") or [])
    availability = breakdown.get("availability") or 0
    if availability >= 1:
        shared = sorted(set(seeker_dates) & set(their_dates))
        reasons["availability"] = f"shared date {_dates(shared)}" if shared else "a shared date"
    elif availability > 0:
        reasons["availability"] = "the search gives no dates" if not seeker_dates else "the candidate lists no dates"
    else:
        reasons["availability"] = "no shared date"

    sought = preferences.get("role") or "buddy"
    their_role = profile.get("role") or profile.get("self_role")
    role = breakdown.get("role") or 0
    if role >= 1:
        reasons["role"] = f"{sought}, as sought"
    elif role >= 0.8:
        reasons["role"] = "coach for a buddy search"
    else:
        reasons["role"] = f"{their_role or 'another role'} for a {sought} search"

    knowledge = breakdown.get("knowledge")
    if knowledge is None:
        reasons["knowledge"] = "not scored (the search did not ask)"
    elif knowledge == 0.5 and (not preferences.get("knowledge_score") or not profile.get("knowledge_score")):
        reasons["knowledge"] = "a knowledge score is missing on one side"
    else:
        reasons["knowledge"] = (
            f"knowledge {profile.get('knowledge_score', '?')} vs the seeker's {preferences.get('knowledge_score')}"
        )
    return reasons


def preferences_in_words(preferences: Mapping[str, Any], *, resort_names: Mapping[str, str]) -> list[tuple[str, str]]:
    """The search's preferences as (label, sentence) pairs."""
    p = preferences
    words = [
        ("Looking for", ROLE_WORDS.get(p.get("role"), str(p.get("role")))),
        ("Skill", f"levels {p.get('skill_level_min')} to {p.get('skill_level_max')}"),
        ("Resorts", _names(p.get("resorts") or [], resort_names) or "any"),
        ("Regions", ", ".join(p.get("regions") or []) or "any"),
        ("Dates", _dates(p.get("dates") or [], shown=6) or "any date"),
    ]
    if p.get("include_knowledge_score"):
        seeker = p.get("knowledge_score")
        words.append(("Knowledge", f"scored (seeker's score {seeker})" if seeker else "scored (seeker has no score)"))
    else:
        words.append(("Knowledge", "not scored"))
    certs = p.get("required_certifications") or []
    words.append(("Certifications", f"one of {', '.join(certs)}" if certs else "none required"))
    words.append(("Vetting", "GlobalCoach vetting required" if p.get("vetting_required") else "none"))
    words.append(("Results", f"top {p.get('limit', 20)}"))
    return words
