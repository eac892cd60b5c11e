"""Results and preferences in words, for staff (no database: the caller passes the names it shows).

Reasons are derived from what was stored with each result (its per-dimension breakdown), the
search's preferences, and the candidate's profile and resort names as they are now. They are
worded in the active language (the staff member's, see matching.admin.preferences).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

ROLE_WORDS = {"buddy": gettext_lazy("a buddy"), "student": gettext_lazy("a student"), "coach": gettext_lazy("a coach")}
ROLE_NAMES = {"buddy": gettext_lazy("buddy"), "student": gettext_lazy("student"), "coach": gettext_lazy("coach")}


def _list(items: Sequence[str]) -> str:
    return _(", ").join(items)


def _names(ids: Sequence[str], names: Mapping[str, str]) -> str:
    return _list([names.get(i, i) for i in ids])


def _role(role: str | None) -> str:
    return str(ROLE_NAMES.get(role or "", role or ""))


def _dates(dates: Sequence[str], shown: int = 3) -> str:
    ordered = sorted(dates)
    more = len(ordered) - shown
    text = _list(ordered[:shown])
    if more > 0:
        text += ngettext(" (+%(count)d more)", " (+%(count)d more)", more) % {"count": more}
    return text


def dimension_reasons(
    *,
    breakdown: Mapping[str, Any],
    preferences: Mapping[str, Any],
    profile: Mapping[str, Any] | None,
    resort_names: Mapping[str, str],
    resort_regions: Mapping[str, str],
    region_names: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """One sentence per dimension of a stored result: why it scored what it scored."""
    profile = profile or {}
    region_names = region_names or {}
    reasons: dict[str, str] = {}
    lo, hi = preferences.get("skill_level_min"), preferences.get("skill_level_max")
    level = profile.get("skill_level")
    if breakdown.get("skill"):
        if level is not None:
            reasons["skill"] = _("skill %(level)s within %(low)s to %(high)s") % {"level": level, "low": lo, "high": hi}
        else:
            reasons["skill"] = _("skill within %(low)s to %(high)s") % {"low": lo, "high": hi}
    else:
        reasons["skill"] = _("skill %(level)s outside %(low)s to %(high)s") % {
            "level": level if level is not None else "?",
            "low": lo,
            "high": hi,
        }

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
        reasons["location"] = (
            _("same resort: %(resorts)s") % {"resorts": _names(common, resort_names)} if common else _("same resort")
        )
    elif location > 0:
        common_regions = sorted(seeker_regions & their_regions)
        reasons["location"] = (
            _("same region: %(regions)s") % {"regions": _names(common_regions, region_names)}
            if common_regions
            else _("same region")
        )
    elif seeker_resorts or seeker_regions:
        reasons["location"] = _("no resort or region in common")
    else:
        reasons["location"] = _("the search names no resort or region")

    seeker_dates = list(preferences.get("dates") or [])
    their_dates = list(profile.get("available_dates") or [])
    availability = breakdown.get("availability") or 0
    if availability >= 1:
        shared = sorted(set(seeker_dates) & set(their_dates))
        reasons["availability"] = (
            _("shared date %(dates)s") % {"dates": _dates(shared)} if shared else _("a shared date")
        )
    elif availability > 0:
        reasons["availability"] = (
            _("the search gives no dates") if not seeker_dates else _("the candidate lists no dates")
        )
    else:
        reasons["availability"] = _("no shared date")

    sought = preferences.get("role") or "buddy"
    their_role = profile.get("role") or profile.get("self_role")
    role = breakdown.get("role") or 0
    if role >= 1:
        reasons["role"] = _("%(role)s, as sought") % {"role": _role(sought)}
    elif role >= 0.8:
        reasons["role"] = _("coach for a buddy search")
    else:
        reasons["role"] = _("%(their_role)s for a %(sought)s search") % {
            "their_role": _role(their_role) if their_role else _("another role"),
            "sought": _role(sought),
        }

    knowledge = breakdown.get("knowledge")
    if knowledge is None:
        reasons["knowledge"] = _("not scored (the search did not ask)")
    elif knowledge == 0.5 and (not preferences.get("knowledge_score") or not profile.get("knowledge_score")):
        reasons["knowledge"] = _("a knowledge score is missing on one side")
    else:
        reasons["knowledge"] = _("knowledge %(theirs)s vs the seeker's %(seekers)s") % {
            "theirs": profile.get("knowledge_score", "?"),
            "seekers": preferences.get("knowledge_score"),
        }
    return reasons


def preferences_in_words(
    preferences: Mapping[str, Any], *, resort_names: Mapping[str, str], region_names: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The search's preferences as (label, sentence) pairs."""
    p = preferences
    words = [
        (_("Looking for"), str(ROLE_WORDS.get(p.get("role"), str(p.get("role"))))),
        (
            _("Skill"),
            _("levels %(low)s to %(high)s") % {"low": p.get("skill_level_min"), "high": p.get("skill_level_max")},
        ),
        (_("Resorts"), _names(p.get("resorts") or [], resort_names) or _("any")),
        (_("Regions"), _names(p.get("regions") or [], region_names or {}) or _("any")),
        (_("Dates"), _dates(p.get("dates") or [], shown=6) or _("any date")),
    ]
    if p.get("include_knowledge_score"):
        seeker = p.get("knowledge_score")
        words.append(
            (
                _("Knowledge"),
                _("scored (seeker's score %(score)s)") % {"score": seeker}
                if seeker
                else _("scored (seeker has no score)"),
            )
        )
    else:
        words.append((_("Knowledge"), _("not scored")))
    certs = p.get("required_certifications") or []
    words.append(
        (
            _("Certifications"),
            _("one of %(certifications)s") % {"certifications": _list(certs)} if certs else _("none required"),
        )
    )
    words.append((_("Vetting"), _("GlobalCoach vetting required") if p.get("vetting_required") else _("none")))
    words.append((_("Results"), _("top %(limit)s") % {"limit": p.get("limit", 20)}))
    return words
