"""A profile as written to the console, and the checks every incoming profile passes.

Two wire shapes reach `profiles_upsert_many`: the console's own (docs/contracts.md, this
module's `profile_from_console_shape`) and the SnowTrace user service's (parsed in
matching/snowtrace/users.py, which owns that format). Both end up as a `ProfileWrite` and are
checked by the same field rules, so a push and a pull of the same user store the same row.
Errors are collected per field (`ProfileInvalid.errors`, the REST API's 400 body).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from matching.engine import PROFILE_FIELDS
from matching.models import Role

USER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_NICKNAME = 64
MAX_DATES = 366
MAX_REGIONS = 20
MAX_CODES = 20  # certifications, languages
MAX_CERTIFICATION_LENGTH = 32
MAX_LANGUAGE_LENGTH = 16
ROLES = tuple(Role.values)


class _Keep:
    """Marks a field the incoming shape does not carry: an update leaves the stored value."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass(frozen=True)
class ProfileWrite:
    user_id: str
    nickname: str
    skill_level: int
    role: str
    resorts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    available_dates: tuple[str, ...] = ()
    open_to_matching: bool = True
    knowledge_score: Any = KEEP  # int 0..100 | None | KEEP
    certifications: Any = KEEP  # tuple[str, ...] | KEEP
    languages: Any = KEEP  # tuple[str, ...] | KEEP

    def carried(self) -> dict[str, Any]:
        """The columns this write sets (lists for the JSON columns); KEEP fields are left out."""
        columns: dict[str, Any] = {}
        for field in fields(self):
            if field.name == "user_id":
                continue
            value = getattr(self, field.name)
            if value is KEEP:
                continue
            columns[field.name] = list(value) if isinstance(value, tuple) else value
        return columns


class ProfileInvalid(ValueError):
    """The incoming profile breaks field rules; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, Any]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class FieldChecker:
    """Reads typed fields out of one JSON object, collecting an error list per bad field."""

    def __init__(self, data: Any, *, what: str = "profile"):
        self.errors: dict[str, Any] = {}
        if not isinstance(data, Mapping):
            self.errors["non_field_errors"] = [f"Expected a JSON object ({what})."]
            data = {}
        self.data: Mapping[str, Any] = data

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def present(self, name: str) -> bool:
        return name in self.data

    def user_id(self, name: str = "user_id", *, required: bool = True) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, "This field is required.")
            return None
        if not isinstance(value, str) or not USER_ID_RE.match(value):
            self.fail(name, "Must be 1-64 characters of A-Z a-z 0-9 _ . : @ -.")
            return None
        return value

    def text(self, name: str, *, max_length: int, null_as: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            return null_as
        if not isinstance(value, str):
            self.fail(name, "Must be a string.")
            return null_as
        if len(value) > max_length:
            self.fail(name, f"At most {max_length} characters.")
            return null_as
        return value

    def integer(self, name: str, *, low: int, high: int, default: Any, required: bool = False) -> Any:
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, "This field is required.")
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's integer: 5.0 is 5 (JSON cannot tell them apart)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, "Must be an integer.")
            return default
        if not low <= value <= high:
            self.fail(name, f"Must be between {low} and {high}.")
            return default
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(name, "Must be true or false.")
            return default
        return value

    def choice(self, name: str, choices: Iterable[str], *, required: bool = True) -> str | None:
        value = self.data.get(name)
        choices = tuple(choices)
        if value is None:
            if required:
                self.fail(name, "This field is required.")
            return None
        if value not in choices:
            self.fail(name, f"Must be one of {', '.join(choices)}.")
            return None
        return value

    def strings(self, name: str, *, max_items: int, max_length: int) -> tuple[str, ...] | None:
        """A list of strings, de-duplicated in order; None (with an error) when malformed."""
        value = self.data.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(name, "Must be a list.")
            return None
        if len(value) > max_items:
            self.fail(name, f"At most {max_items} items.")
            return None
        if not all(isinstance(v, str) and 0 < len(v) <= max_length for v in value):
            self.fail(name, f"Items must be non-empty strings of at most {max_length} characters.")
            return None
        return tuple(dict.fromkeys(value))

    def resorts(self, name: str, resort_regions: Mapping[str, str]) -> tuple[str, ...]:
        value = self.strings(name, max_items=max(len(resort_regions), 1), max_length=64)
        if value is None:
            return ()
        unknown = sorted(set(value) - set(resort_regions))
        if unknown:
            self.fail(name, f"Unknown resort(s): {', '.join(unknown)}.")
            return ()
        return value

    def regions(self, name: str, resort_regions: Mapping[str, str]) -> tuple[str, ...]:
        value = self.strings(name, max_items=MAX_REGIONS, max_length=100)
        if value is None:
            return ()
        unknown = sorted(set(value) - set(resort_regions.values()))
        if unknown:
            self.fail(name, f"Unknown region(s): {', '.join(unknown)}.")
            return ()
        return value

    def dates(self, name: str) -> tuple[str, ...]:
        value = self.strings(name, max_items=MAX_DATES, max_length=10)
        if value is None:
            return ()
        bad = []
        for item in value:
            try:
                if not _ISO_DATE_RE.match(item):
                    raise ValueError
                date.fromisoformat(item)
            except ValueError:
                bad.append(item)
        if bad:
            self.fail(name, f"Not ISO dates (YYYY-MM-DD): {', '.join(bad[:5])}.")
            return ()
        return tuple(sorted(value))

    def unknown_keys(self, allowed: Iterable[str]) -> None:
        for name in sorted(set(self.data) - set(allowed)):
            self.fail(name, "Unknown field.")

    def raise_if_invalid(self) -> None:
        if self.errors:
            raise ProfileInvalid(self.errors)


CONSOLE_FIELDS = PROFILE_FIELDS  # the console's own shape is the engine's wire form


def profile_from_console_shape(
    data: Any, *, resort_regions: Mapping[str, str], user_id: str | None = None
) -> ProfileWrite:
    """The console's own profile JSON (the engine's `Profile` form). Every field is replaced:
    an absent optional field takes its default. Unknown fields are rejected."""
    check = FieldChecker(data)
    check.unknown_keys(CONSOLE_FIELDS)
    body_user_id = check.user_id(required=user_id is None)
    if user_id is not None and body_user_id is not None and body_user_id != user_id:
        check.fail("user_id", "Does not match the user id in the URL.")
    profile = ProfileWrite(
        user_id=user_id or body_user_id or "",
        nickname=check.text("nickname", max_length=MAX_NICKNAME),
        skill_level=check.integer("skill_level", low=1, high=10, default=0, required=True),
        role=check.choice("role", ROLES) or "",
        resorts=check.resorts("resorts", resort_regions),
        regions=check.regions("regions", resort_regions),
        available_dates=check.dates("available_dates"),
        open_to_matching=check.boolean("open_to_matching", default=True),
        knowledge_score=check.integer("knowledge_score", low=0, high=100, default=None),
        certifications=check.strings("certifications", max_items=MAX_CODES, max_length=MAX_CERTIFICATION_LENGTH) or (),
        languages=check.strings("languages", max_items=MAX_CODES, max_length=MAX_LANGUAGE_LENGTH) or (),
    )
    check.raise_if_invalid()
    return profile


RESORT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ResortWrite:
    resort_id: str
    region: str
    name: str
    name_en: str
    name_ja: str = ""
    country: str = "JP"
