"""SnowTrace's user service: the users (and their matching preferences) the console matches.

Wire format (the old matching service's): `GET {USER_CORE_API_URL}/users` →
`{"items": [{"user_id", "nickname", "skill_level", "self_role", "preferences":
{"preferred_resorts", "preferred_regions", "availability", "open_to_matching", ...}}]}`, with
`open_to_matching` defaulting to true and `skill_level` to 5.

Paging and increments are assumptions, documented in docs/profiles.md: the client asks for
`limit=<page size>` and, from the second page on, `cursor=<next_cursor of the previous page>`;
a page without `next_cursor` is the last. With USER_CORE_SUPPORTS_UPDATED_SINCE it also sends
`updated_since=<ISO 8601 UTC>` and expects only the users changed since then. A service that
ignores these parameters and returns everyone on one page works too (a full sync).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from matching.vocabulary.profile_input import KEEP, MAX_CODES, MAX_NICKNAME, ROLES, FieldChecker, ProfileWrite

from .http import MalformedResponse, ServiceClient, ServiceConfig

DEFAULT_SKILL_LEVEL = 5
PREFERENCES = "preferences"
MAX_CERTIFICATION_LENGTH = 32
MAX_LANGUAGE_LENGTH = 16


@dataclass(frozen=True)
class UserPage:
    items: list[Any]  # raw records: each is checked on its own, a bad one never fails the page
    next_cursor: str | None


class UserServiceClient:
    def __init__(self, http: ServiceClient):
        self.http = http

    @classmethod
    def from_settings(cls) -> UserServiceClient:
        config = ServiceConfig.from_settings(
            "user service", url_setting="USER_CORE_API_URL", auth_setting="USER_CORE_API_TOKEN"
        )
        return cls(ServiceClient(config))

    def post_event(self, event: dict, *, event_id: str) -> int:
        """`POST /events`: one behaviour event, as the old service posted it. `Idempotency-Key`
        carries the outbox row's id, the same on every try, for a receiver that dedupes."""
        return self.http.post_json("/events", event, headers={"Idempotency-Key": event_id})

    def page(self, *, cursor: str = "", limit: int, updated_since: datetime | None = None) -> UserPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if updated_since is not None:
            params["updated_since"] = updated_since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        body = self.http.get_json("/users", params=params)
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise MalformedResponse('user service: /users did not answer {"items": [...]}')
        next_cursor = body.get("next_cursor")
        if next_cursor is not None and (not isinstance(next_cursor, str | int) or isinstance(next_cursor, bool)):
            raise MalformedResponse("user service: next_cursor must be a string")
        return UserPage(items=body["items"], next_cursor=str(next_cursor) if next_cursor not in (None, "") else None)

    def close(self) -> None:
        self.http.close()


def supports_updated_since() -> bool:
    return settings.USER_CORE_SUPPORTS_UPDATED_SINCE


def record_user_id(record: Any) -> str | None:
    """The user id of a raw record, if it has a readable one (to name it in a rejection)."""
    if isinstance(record, Mapping) and isinstance(record.get("user_id"), str | int):
        return str(record["user_id"])[:64]
    return None


def profile_from_user_record(
    record: Any,
    *,
    resort_regions: Mapping[str, str],
    user_id: str | None = None,
    knowledge_score: Any = KEEP,
) -> ProfileWrite:
    """One user-service record as a profile write; raises ProfileInvalid with per-field errors.

    Unknown keys are ignored at both levels (the service's records carry more than matching
    needs). `certifications` and `languages` inside `preferences` are taken when present and
    otherwise left as stored; the knowledge score comes from the knowledge service.
    """
    check = FieldChecker(record, what="user record")
    body_user_id = check.user_id(required=user_id is None)
    if user_id is not None and body_user_id is not None and body_user_id != user_id:
        check.fail("user_id", "Does not match the user id in the URL.")
    raw_preferences = check.data.get(PREFERENCES)
    prefs = FieldChecker({} if raw_preferences is None else raw_preferences, what="preferences")
    profile = ProfileWrite(
        user_id=user_id or body_user_id or "",
        nickname=check.text("nickname", max_length=MAX_NICKNAME),
        skill_level=check.integer("skill_level", low=1, high=10, default=DEFAULT_SKILL_LEVEL),
        role=check.choice("self_role", ROLES) or "",
        resorts=prefs.resorts("preferred_resorts", resort_regions),
        regions=prefs.regions("preferred_regions", resort_regions),
        available_dates=prefs.dates("availability"),
        open_to_matching=prefs.boolean("open_to_matching", default=True),
        knowledge_score=knowledge_score,
        certifications=(
            prefs.strings("certifications", max_items=MAX_CODES, max_length=MAX_CERTIFICATION_LENGTH) or ()
            if prefs.present("certifications")
            else KEEP
        ),
        languages=(
            prefs.strings("languages", max_items=MAX_CODES, max_length=MAX_LANGUAGE_LENGTH) or ()
            if prefs.present("languages")
            else KEEP
        ),
    )
    if prefs.errors:
        check.errors[PREFERENCES] = prefs.errors
    check.raise_if_invalid()
    return profile
