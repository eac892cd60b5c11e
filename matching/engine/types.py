"""Value types of the matching engine and their JSON (wire) form.

Plain dataclasses only: the Lambda workflow imports this package, so no Django here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

ROLES = ("buddy", "student", "coach")

_REQUIRED = object()
# The preference keys of docs/contracts.md with their defaults; `_REQUIRED` marks required keys.
PREFERENCE_DEFAULTS: dict[str, Any] = {
    "role": _REQUIRED,
    "skill_level_min": _REQUIRED,
    "skill_level_max": _REQUIRED,
    "resorts": (),
    "regions": (),
    "dates": (),
    "include_knowledge_score": False,
    "knowledge_score": None,
    "required_certifications": (),
    "vetting_required": False,
    "limit": 20,
}
_LIST_PREFERENCES = frozenset({"resorts", "regions", "dates", "required_certifications"})


def _strings(values: Iterable[Any] | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        raise ValueError(f"expected a list of strings, got the string {values!r}")
    return tuple(str(v) for v in values)


@dataclass(frozen=True, slots=True)
class Profile:
    user_id: str
    nickname: str
    skill_level: int
    role: str
    resorts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    available_dates: tuple[str, ...] = ()
    open_to_matching: bool = True
    knowledge_score: int | None = None
    certifications: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Build a profile from its JSON form; unknown keys are ignored (forward compatible)."""
        missing = [k for k in ("user_id", "skill_level", "role", "open_to_matching") if k not in data]
        if missing:
            raise ValueError(f"profile is missing {', '.join(missing)}")
        return cls(
            user_id=str(data["user_id"]),
            nickname=str(data.get("nickname") or ""),
            skill_level=int(data["skill_level"]),
            role=str(data["role"]),
            resorts=_strings(data.get("resorts")),
            regions=_strings(data.get("regions")),
            available_dates=_strings(data.get("available_dates")),
            open_to_matching=bool(data["open_to_matching"]),
            knowledge_score=data.get("knowledge_score"),
            certifications=_strings(data.get("certifications")),
            languages=_strings(data.get("languages")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "nickname": self.nickname,
            "skill_level": self.skill_level,
            "role": self.role,
            "resorts": list(self.resorts),
            "regions": list(self.regions),
            "available_dates": list(self.available_dates),
            "open_to_matching": self.open_to_matching,
            "knowledge_score": self.knowledge_score,
            "certifications": list(self.certifications),
            "languages": list(self.languages),
        }


# The profile's JSON (wire) fields, in declaration order: what the console sends the workflow.
PROFILE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Profile))


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A seeker's search. Values are validated by the REST layer; the engine trusts them."""

    seeker_id: str
    role: str
    skill_level_min: int
    skill_level_max: int
    resorts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    include_knowledge_score: bool = False
    knowledge_score: int | None = None
    required_certifications: tuple[str, ...] = ()
    vetting_required: bool = False
    limit: int = 20

    @classmethod
    def from_preferences(cls, seeker_id: str, prefs: Mapping[str, Any]) -> SearchRequest:
        """Build a request from the contract's preferences dict (unknown keys are rejected)."""
        unknown = sorted(set(prefs) - set(PREFERENCE_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown preference keys: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, default in PREFERENCE_DEFAULTS.items():
            if key not in prefs:
                if default is _REQUIRED:
                    raise ValueError(f"preference {key!r} is required")
                values[key] = default
            elif key in _LIST_PREFERENCES:
                values[key] = _strings(prefs[key])
            else:
                values[key] = prefs[key]
        return cls(seeker_id=str(seeker_id), **values)

    def to_preferences(self) -> dict[str, Any]:
        """The preferences dict this request was built from (lists, not tuples)."""
        prefs: dict[str, Any] = {}
        for key in PREFERENCE_DEFAULTS:
            value = getattr(self, key)
            prefs[key] = list(value) if key in _LIST_PREFERENCES else value
        return prefs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchRequest:
        prefs = dict(data)
        seeker_id = prefs.pop("seeker_id")
        return cls.from_preferences(seeker_id, prefs)

    def to_dict(self) -> dict[str, Any]:
        return {"seeker_id": self.seeker_id, **self.to_preferences()}


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Raw per-dimension scores (0..1) behind a match; `knowledge` is None when not requested."""

    skill: float
    location: float
    availability: float
    role: float
    knowledge: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Breakdown:
        knowledge = data.get("knowledge")
        return cls(
            skill=float(data["skill"]),
            location=float(data["location"]),
            availability=float(data["availability"]),
            role=float(data["role"]),
            knowledge=None if knowledge is None else float(knowledge),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "skill": self.skill,
            "location": self.location,
            "availability": self.availability,
            "role": self.role,
            "knowledge": self.knowledge,
        }


@dataclass(frozen=True, slots=True)
class Match:
    user_id: str
    score: float
    breakdown: Breakdown
    rank: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Match:
        return cls(
            user_id=str(data["user_id"]),
            score=float(data["score"]),
            breakdown=Breakdown.from_dict(data["breakdown"]),
            rank=int(data.get("rank", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "score": self.score,
            "breakdown": self.breakdown.to_dict(),
            "rank": self.rank,
        }
