"""Candidates for a search, prefiltered in the database (the cold path).

The database narrows by skill range, `open_to_matching`, location overlap (one bitwise AND
on `region_mask`) and the seeker; the engine then applies the exact rules. Over-inclusion
here is harmless, exclusion is not, so every test here is a necessary condition.

Searches no longer read candidates this way (they rank on the warm index, matching/candidates/warm_index.py).
It still serves `/internal/searches/{id}/candidates` for workflow executions started before the
durable path read rankings, and it is the baseline bench/search_path_bench.py compares against.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import F, QuerySet

from matching.engine import PROFILE_FIELDS, Profile
from matching.models import SkierProfile
from matching.vocabulary.regions import region_mask

# The columns a candidate row is read with: its id (for keyset paging) and the engine's fields.
ROW_FIELDS = ("id", *PROFILE_FIELDS)


def seeker_region_mask(preferences: dict, resort_regions: dict[str, str]) -> int:
    reach = set(preferences.get("regions") or [])
    reach.update(resort_regions[r] for r in preferences.get("resorts") or [] if r in resort_regions)
    return region_mask(reach)


def prefiltered_profiles_queryset(
    *, seeker_id: str, preferences: dict, resort_regions: dict[str, str]
) -> QuerySet[SkierProfile]:
    qs = SkierProfile.objects.filter(
        open_to_matching=True,
        skill_level__gte=preferences["skill_level_min"],
        skill_level__lte=preferences["skill_level_max"],
    ).exclude(user_id=seeker_id)
    if preferences.get("resorts") or preferences.get("regions"):
        mask = seeker_region_mask(preferences, resort_regions)
        qs = qs.annotate(region_overlap=F("region_mask").bitand(mask)).filter(region_overlap__gt=0)
    return qs.order_by("id").values(*ROW_FIELDS)


def to_engine_profile(row: dict) -> Profile:
    return Profile.from_dict(row)


def prefiltered_profiles(
    *, seeker_id: str, preferences: dict, resort_regions: dict[str, str], chunk_size: int = 2000
) -> Iterator[Profile]:
    qs = prefiltered_profiles_queryset(seeker_id=seeker_id, preferences=preferences, resort_regions=resort_regions)
    for row in qs.iterator(chunk_size=chunk_size):
        yield to_engine_profile(row)


def prefiltered_profile_page(
    *, seeker_id: str, preferences: dict, resort_regions: dict[str, str], after_id: int, size: int
) -> tuple[list[Profile], int | None]:
    """One keyset page (by primary key) for the durable workflow's candidates endpoint."""
    qs = prefiltered_profiles_queryset(seeker_id=seeker_id, preferences=preferences, resort_regions=resort_regions)
    rows = list(qs.filter(id__gt=after_id)[: size + 1])
    next_after = rows[size - 1]["id"] if len(rows) > size else None
    return [to_engine_profile(row) for row in rows[:size]], next_after
