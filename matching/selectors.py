"""Reads shared by the API, the services and the engines."""

from __future__ import annotations

from django.core.cache import cache

from matching.models import Resort, SearchResult, SearchStatus, SkierProfile

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


def profile_knowledge_score(user_id: str) -> int | None:
    """The user's own knowledge score, from the console's copy of their profile (None if unknown)."""
    return SkierProfile.objects.filter(user_id=user_id).values_list("knowledge_score", flat=True).first()


def result_candidate_facts(user_ids: list[str]) -> dict[str, tuple[int, str]]:
    """user id -> (skill_level, role) of the candidates that still have a profile."""
    rows = SkierProfile.objects.filter(user_id__in=user_ids).values_list("user_id", "skill_level", "role")
    return {user_id: (skill, role) for user_id, skill, role in rows}


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
