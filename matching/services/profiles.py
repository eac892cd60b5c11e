"""Candidate profiles and resorts: upserts, closes, deletes (tombstones) and the derived region masks.

Every profile write stamps `updated_at` with the database clock (Now()): the warm candidate index
(matching/candidates/warm_index.py) follows changes by that stamp. A write that changes nothing stamps
nothing, so a full sync of unchanged users costs the indexes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now

from matching.engine import PROFILE_FIELDS
from matching.models import (
    Resort,
    SkierProfile,
)
from matching.selectors import forget_resort_regions, resort_regions
from matching.vocabulary.profile_input import ProfileWrite, ResortWrite
from matching.vocabulary.regions import region_mask

PROFILE_COLUMNS = tuple(name for name in PROFILE_FIELDS if name != "user_id")  # the columns a write may change


@dataclass(frozen=True)
class ProfileOutcome:
    user_id: str
    status: str  # created | updated | unchanged


def profiles_upsert_many(*, profiles: Sequence[ProfileWrite]) -> list[ProfileOutcome]:
    """Create or update many profiles in one transaction (a savepoint when nested), one outcome each.

    Fields a write does not carry (KEEP) keep their stored values. The region mask is derived
    here. Rows are locked in user id order before they are compared, so concurrent batches
    touching the same users serialise instead of deadlocking; a profile that compares equal is
    not written at all. Writing a deleted profile's user id brings the profile back.
    """
    user_ids = [p.user_id for p in profiles]
    if len(set(user_ids)) != len(user_ids):
        raise ValueError("profiles_upsert_many: each user id at most once per call")
    if not profiles:
        return []
    mapping = resort_regions()
    outcomes: list[ProfileOutcome] = []
    groups: dict[tuple[str, ...], list[SkierProfile]] = {}
    with transaction.atomic():
        existing = {
            row[0]: row
            for row in SkierProfile.objects.select_for_update()
            .filter(user_id__in=user_ids)
            .order_by("user_id")
            .values_list("user_id", *PROFILE_COLUMNS, "region_mask", "deleted_at")
        }
        for profile in profiles:
            columns = profile.carried()
            columns["region_mask"] = _region_mask(columns["resorts"], columns["regions"], mapping)
            old = existing.get(profile.user_id)
            live = old is not None and old[-1] is None
            if live and all(old[_PROFILE_COLUMN_POSITION[name]] == value for name, value in columns.items()):
                outcomes.append(ProfileOutcome(profile.user_id, "unchanged"))
                continue
            outcomes.append(ProfileOutcome(profile.user_id, "updated" if live else "created"))
            row = SkierProfile(user_id=profile.user_id, updated_at=Now(), deleted_at=None, **columns)
            groups.setdefault(tuple(columns), []).append(row)
        for carried, rows in groups.items():
            SkierProfile.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["user_id"],
                update_fields=[*carried, "updated_at", "deleted_at"],
            )
    return outcomes


_PROFILE_COLUMN_POSITION = {name: i for i, name in enumerate(("user_id", *PROFILE_COLUMNS, "region_mask"))}


def profile_upsert(
    *,
    user_id: str,
    nickname: str,
    skill_level: int,
    role: str,
    resorts: Sequence[str] = (),
    regions: Sequence[str] = (),
    available_dates: Sequence[str] = (),
    open_to_matching: bool = True,
    knowledge_score: int | None = None,
    certifications: Sequence[str] = (),
    languages: Sequence[str] = (),
) -> SkierProfile:
    """One profile, every field replaced (see `profiles_upsert_many`). Values are trusted: the
    REST API and the sync validate theirs through matching.vocabulary.profile_input first."""
    profiles_upsert_many(
        profiles=[
            ProfileWrite(
                user_id=user_id,
                nickname=nickname,
                skill_level=skill_level,
                role=role,
                resorts=tuple(resorts),
                regions=tuple(regions),
                available_dates=tuple(available_dates),
                open_to_matching=open_to_matching,
                knowledge_score=knowledge_score,
                certifications=tuple(certifications),
                languages=tuple(languages),
            )
        ]
    )
    return SkierProfile.objects.get(user_id=user_id)


def profile_close(*, user_id: str) -> str | None:
    """Take a profile out of matching (`open_to_matching` false). Returns "closed", "unchanged"
    (already closed), or None for a user id the console does not hold."""
    with transaction.atomic(durable=True):
        live = SkierProfile.objects.filter(user_id=user_id, deleted_at__isnull=True)
        if live.filter(open_to_matching=True).update(open_to_matching=False, updated_at=Now()):
            return "closed"
        return "unchanged" if live.exists() else None


def profile_delete(*, user_id: str) -> str | None:
    """Delete a profile: a tombstone keeps the user id and the time (so every warm index sees
    the delete), everything personal is cleared. Returns "deleted", "unchanged" (already
    deleted) or None for a user id the console never held."""
    with transaction.atomic(durable=True):
        deleted = SkierProfile.objects.filter(user_id=user_id, deleted_at__isnull=True).update(
            deleted_at=Now(),
            updated_at=Now(),
            open_to_matching=False,
            nickname="",
            resorts=[],
            regions=[],
            available_dates=[],
            knowledge_score=None,
            certifications=[],
            languages=[],
            region_mask=0,
        )
        if deleted:
            return "deleted"
        return "unchanged" if SkierProfile.objects.filter(user_id=user_id).exists() else None


def profiles_purge_tombstones(*, older_than: datetime) -> int:
    """Remove tombstones of profiles deleted before `older_than`. Warm indexes reload long
    before that (MATCHING_INDEX_RELOAD_SECONDS), so none of them still needs to see the delete."""
    with transaction.atomic(durable=True):
        count, _ = SkierProfile.objects.filter(deleted_at__lt=older_than).delete()
    return count


def profile_fields(*, resorts: Sequence[str], regions: Sequence[str], **fields) -> dict:
    """Column values for a profile, with the derived region mask the prefilter relies on."""
    mask = _region_mask(resorts, regions, resort_regions())
    return {**fields, "resorts": list(resorts), "regions": list(regions), "region_mask": mask}


def _region_mask(resorts: Sequence[str], regions: Sequence[str], mapping: dict[str, str]) -> int:
    return region_mask(set(regions) | {mapping[r] for r in resorts if r in mapping})


def resorts_upsert_many(*, resorts: Sequence[ResortWrite]) -> dict[str, int]:
    """Create or update resorts; counts by outcome. A resort that moved region re-derives the
    region mask of every profile naming it (the mask is what the database prefilter reads)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    moved: list[str] = []
    with transaction.atomic(durable=True):
        existing = {r.pk: r for r in Resort.objects.select_for_update().filter(pk__in=[r.resort_id for r in resorts])}
        for item in resorts:
            values = {
                "name": item.name,
                "name_en": item.name_en,
                "name_ja": item.name_ja,
                "region": item.region,
                "country": item.country,
            }
            old = existing.get(item.resort_id)
            if old is None:
                Resort.objects.create(pk=item.resort_id, **values)
                counts["created"] += 1
            elif any(getattr(old, k) != v for k, v in values.items()):
                if old.region != item.region:
                    moved.append(item.resort_id)
                Resort.objects.filter(pk=item.resort_id).update(**values)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        transaction.on_commit(forget_resort_regions)
    if moved:
        forget_resort_regions()
        _rederive_region_masks(moved)
    return counts


def _rederive_region_masks(resort_ids: Sequence[str]) -> None:
    mapping = resort_regions()
    naming = Q()
    for resort_id in resort_ids:
        naming |= Q(resorts__icontains=f'"{resort_id}"')  # the JSON list's text, on every database
    with transaction.atomic(durable=True):
        for pk, resorts, regions in SkierProfile.objects.filter(naming).values_list("pk", "resorts", "regions"):
            SkierProfile.objects.filter(pk=pk).update(region_mask=_region_mask(resorts, regions, mapping))
