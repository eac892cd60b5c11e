"""Reads shared by the API, the services and the engines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from matching.engine import PROFILE_FIELDS, Profile, SearchRequest, explain
from matching.engine.explain import check_candidate, engine_match, rank_among
from matching.models import ApiClientKey, Engine, Resort, Search, SearchResult, SearchStatus, SkierProfile
from matching.vocabulary.reasons import dimension_reasons
from matching.vocabulary.regions import REGION_NAMES_ZH_HANT
from matching.vocabulary.resort_names import NameTable, name_table_from

_RESORT_MAP_CACHE_KEY = "matching:resort-regions:v1"


def resort_regions() -> dict[str, str]:
    """Resort id → region, cached briefly: validation and every search need it."""
    mapping = cache.get(_RESORT_MAP_CACHE_KEY)
    if mapping is None:
        mapping = dict(Resort.objects.values_list("id", "region"))
        cache.set(_RESORT_MAP_CACHE_KEY, mapping, timeout=300)
    return mapping


def forget_resort_regions() -> None:
    cache.delete(_RESORT_MAP_CACHE_KEY)
    _name_tables.clear()


_NAME_TABLE_SECONDS = 300
_name_tables: dict[tuple, tuple[float, NameTable]] = {}


def resort_name_table() -> NameTable:
    """Every spelling of the resort list (matching/vocabulary/resort_names.py), built once per process and
    rebuilt when the resort ids or regions change or after five minutes (names alone rarely do)."""
    key = tuple(sorted(resort_regions().items()))
    now = time.monotonic()
    built = _name_tables.get(key)
    if built is None or now - built[0] > _NAME_TABLE_SECONDS:
        rows = Resort.objects.values("id", "name", "name_en", "name_ja", "region")
        _name_tables.clear()
        built = _name_tables[key] = (now, name_table_from(rows))
    return built[1]


def api_key_live_q(now: datetime) -> Q:
    """Keys the API accepts at `now`: not revoked, not expired."""
    return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def api_keys_near_expiry(*, now: datetime, days: int, limit: int = 20) -> list[ApiClientKey]:
    """Unrevoked keys that expire within `days`, or expired less than `days` ago (a client may
    still be sending one), soonest first."""
    window = timedelta(days=days)
    return list(
        ApiClientKey.objects.filter(
            revoked_at__isnull=True, expires_at__gt=now - window, expires_at__lte=now + window
        ).order_by("expires_at")[:limit]
    )


def profile_knowledge_score(user_id: str) -> int | None:
    """The user's own knowledge score, from the console's copy of their profile (None if unknown)."""
    live = SkierProfile.objects.filter(user_id=user_id, deleted_at__isnull=True)  # not a deleted profile's tombstone
    return live.values_list("knowledge_score", flat=True).first()


def result_candidate_facts(user_ids: list[str]) -> dict[str, tuple[int, str]]:
    """user id -> (skill_level, role) of the candidates that still have a profile."""
    live = SkierProfile.objects.filter(user_id__in=user_ids, deleted_at__isnull=True)  # tombstones are gone
    rows = live.values_list("user_id", "skill_level", "role")
    return {user_id: (skill, role) for user_id, skill, role in rows}


@dataclass(frozen=True)
class SnowTraceAnswer:
    results: list[dict]  # the old service's MatchSummary shape
    matches: list[dict]  # SnowTrace's browser page's MatchResult shape


def snowtrace_answer(*, search_id, attempt: int, status: str) -> SnowTraceAnswer:
    """An attempt's results, best first, in the two shapes SnowTrace reads: its backend's (the old
    service's `results`) and its smart-matching page's (`matches`, with the score's parts under the
    page's names). The same candidates in both: a deleted profile is left out of each."""
    if status != SearchStatus.SUCCEEDED:
        return SnowTraceAnswer([], [])
    rows = list(
        SearchResult.objects.filter(search_id=search_id, attempt=attempt)
        .order_by("rank")
        .values_list("user_id", "nickname", "score", "breakdown")
    )
    facts = result_candidate_facts([row[0] for row in rows])
    kept = [row for row in rows if row[0] in facts]
    results = [
        {"user_id": u, "nickname": n, "skill_level": facts[u][0], "self_role": facts[u][1], "match_score": s}
        for u, n, s, _ in kept
    ]
    matches = [{"user_id": u, "score": s, "breakdown": browser_breakdown(b)} for u, _, s, b in kept]
    return SnowTraceAnswer(results, matches)


def browser_breakdown(breakdown: dict) -> dict:
    """The console's breakdown (skill, location, availability, role, knowledge) under the names of
    SnowTrace's MatchScoreCard; a knowledge part the search did not score is 0 (the page draws a bar)."""
    return {
        "skill_score": breakdown.get("skill", 0.0),
        "location_score": breakdown.get("location", 0.0),
        "time_score": breakdown.get("availability", 0.0),
        "role_score": breakdown.get("role", 0.0),
        "knowledge_score": breakdown.get("knowledge") or 0.0,
    }


def snowtrace_results(*, search_id, attempt: int, status: str) -> list[dict]:
    """An attempt's results, best first, in the shape SnowTrace's original client reads (the old
    service's `MatchSummary`). `skill_level` and `self_role` come from the candidate's profile as it
    is now; a candidate whose profile has since been deleted is left out."""
    if status != SearchStatus.SUCCEEDED:
        return []
    rows = list(
        SearchResult.objects.filter(search_id=search_id, attempt=attempt)
        .order_by("rank")
        .values_list("user_id", "nickname", "score")
    )
    facts = result_candidate_facts([user_id for user_id, _, _ in rows])
    return [
        {
            "user_id": user_id,
            "nickname": nickname,
            "skill_level": facts[user_id][0],
            "self_role": facts[user_id][1],
            "match_score": score,
        }
        for user_id, nickname, score in rows
        if user_id in facts
    ]


# --- The staff console ---------------------------------------------------------------------

IDLE_STATUSES = (SearchStatus.PENDING, SearchStatus.DISPATCHED, SearchStatus.RUNNING)


def stuck_after_seconds(engine: str) -> int:
    """How long an unfinished search may go without a transition before staff should look: the drift
    check's own thresholds (a Celery search is re-dispatched after it, a durable one flagged)."""
    if engine == Engine.CELERY:
        return settings.MATCHING_CELERY_STUCK_SECONDS
    return settings.MATCHING_DURABLE_START_GRACE_SECONDS


# "Stuck" is defined here once: unfinished (not waiting on vetting) with no transition past its
# engine's threshold. stuck_q asks the database; search_is_stuck asks one loaded search.


def search_is_stuck(*, status: str, engine: str, updated_at: datetime, now: datetime) -> bool:
    return status in IDLE_STATUSES and now - updated_at > timedelta(seconds=stuck_after_seconds(engine))


def stuck_q(now: datetime) -> Q:
    """The searches search_is_stuck says are stuck, as a filter. Served by the partial index
    `search_idle_active_idx`."""
    return Q(
        status__in=IDLE_STATUSES,
        engine=Engine.CELERY,
        updated_at__lt=now - timedelta(seconds=stuck_after_seconds(Engine.CELERY)),
    ) | Q(
        status__in=IDLE_STATUSES,
        engine=Engine.DURABLE,
        updated_at__lt=now - timedelta(seconds=stuck_after_seconds(Engine.DURABLE)),
    )


def vetting_overdue_q(now: datetime) -> Q:
    """Awaiting vetting for more than half the time it had left when it started waiting:
    now - updated_at > deadline_at - now. Served by `search_status_deadline_idx`."""
    halfway = ExpressionWrapper(Value(now) + (Value(now) - F("updated_at")), output_field=DateTimeField())
    return Q(status=SearchStatus.AWAITING_VETTING, deadline_at__lt=halfway)


def needs_attention_q(now: datetime) -> Q:
    return Q(drift_flagged=True) | Q(callback_dead_lettered=True) | stuck_q(now) | vetting_overdue_q(now)


def attention_reasons(search: Search, now: datetime) -> list[str]:
    """Why a search needs staff attention, from its own columns (no query)."""
    reasons = []
    if search.drift_flagged:
        reasons.append(_("drift flagged"))
    if search.callback_dead_lettered:
        reasons.append(_("callback dead-lettered"))
    if search_is_stuck(status=search.status, engine=search.engine, updated_at=search.updated_at, now=now):
        reasons.append(_("stuck"))
    if search.status == SearchStatus.AWAITING_VETTING and (now - search.updated_at) > (search.deadline_at - now):
        reasons.append(_("vetting past half its deadline"))
    return reasons


def _chinese() -> bool:
    return (translation.get_language() or "").startswith("zh")


def resort_names() -> dict[str, str]:
    """Resort id → its name in the active language: the resort list's own Chinese name (`name`) in
    Traditional Chinese, its English name otherwise."""
    return dict(Resort.objects.values_list("id", "name" if _chinese() else "name_en"))


def region_names() -> dict[str, str]:
    """Region (its stored English name) → its name in the active language."""
    return dict(REGION_NAMES_ZH_HANT) if _chinese() else {}


# The console's words for each explainer code, over the same names as the engine's English sentences.
VERDICT_REASONS = {
    explain.SEEKER: gettext_lazy("this is the seeker: a search never returns its own seeker"),
    explain.NOT_OPEN: gettext_lazy("the profile is not open to matching"),
    explain.SKILL: gettext_lazy("skill level %(level)s is outside the search's range %(low)s to %(high)s"),
    explain.CERTIFICATION: gettext_lazy("holds none of the required certifications %(wanted)s (holds: %(held)s)"),
    explain.LOCATION: gettext_lazy("no resort or region in common with the search"),
    explain.THRESHOLD: gettext_lazy("scored %(score).2f, not above the %(minimum)s threshold"),
    explain.PASSED: gettext_lazy("scored %(score).2f"),
}


def verdict_reason(check) -> str:
    params = dict(check.params)
    if check.code == explain.CERTIFICATION and not params.get("held"):
        params["held"] = _("none")
    return VERDICT_REASONS[check.code] % params


@dataclass(frozen=True)
class CandidateVerdict:
    """ "Why not this person?": the engine's verdict on one profile as it is now, for one search."""

    user_id: str
    nickname: str = ""
    found: bool = True
    excluded_by: str | None = None  # a filter of matching.engine.explain, "cap", or None (a result)
    reason: str = ""
    score: float | None = None
    breakdown: dict | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    rank: int | None = None  # where it would rank among the current results
    limit: int = 0
    stored_rank: int | None = None  # its rank in the stored results of the current attempt, if there
    engine_agrees: bool = True
    notes: list[str] = field(default_factory=list)


def search_candidate_verdict(*, search: Search, user_id: str) -> CandidateVerdict:
    """Run the search's own rules (the matching engine) against one profile as it is now."""
    user_id = user_id.strip()
    row = SkierProfile.objects.filter(user_id=user_id, deleted_at__isnull=True).values(*PROFILE_FIELDS).first()
    if row is None:
        return CandidateVerdict(
            user_id=user_id, found=False, reason=_("no profile with this user id in the console's copy of the profiles")
        )
    profile = Profile.from_dict(row)
    regions = resort_regions()
    request = SearchRequest.from_preferences(search.seeker_id, search.preferences)
    check = check_candidate(request, profile, regions)
    match = engine_match(request, profile, regions)
    agrees = check.passes == (match is not None) and (match is None or match.score == check.score)
    results = list(
        SearchResult.objects.filter(search=search, attempt=search.attempt).values_list("score", "user_id", "rank")
    )
    stored_rank = next((rank for _, uid, rank in results if uid == user_id), None)
    notes = []
    if request.vetting_required:
        notes.append(_("a vetted search keeps only the candidates GlobalCoach (or staff) approved among those vetted"))
    if not search.is_terminal:
        notes.append(
            _("the search is %(status)s: its results are not final") % {"status": search.get_status_display().lower()}
        )
    verdict = dict(
        user_id=user_id,
        nickname=profile.nickname,
        excluded_by=check.excluded_by,
        reason=verdict_reason(check),
        score=check.score,
        breakdown=check.breakdown.to_dict() if check.breakdown else None,
        limit=request.limit,
        stored_rank=stored_rank,
        engine_agrees=agrees,
        notes=notes,
    )
    if check.breakdown is not None:
        verdict["reasons"] = dimension_reasons(
            breakdown=check.breakdown.to_dict(),
            preferences=search.preferences,
            profile=profile.to_dict(),
            resort_names=resort_names(),
            resort_regions=regions,
            region_names=region_names(),
        )
    if check.passes:
        rank = rank_among(check.score, user_id, [(score, uid) for score, uid, _ in results])
        verdict["rank"] = rank
        if rank > request.limit:
            verdict["excluded_by"] = "cap"
            verdict["reason"] = _("scored %(score).2f, which would rank %(rank)s: below the top-%(limit)s cap") % {
                "score": check.score,
                "rank": rank,
                "limit": request.limit,
            }
        else:
            verdict["reason"] = _("scored %(score).2f: would rank %(rank)s of the current results") % {
                "score": check.score,
                "rank": rank,
            }
    return CandidateVerdict(**verdict)
