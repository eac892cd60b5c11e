"""A staff member's console language and time zone."""

from __future__ import annotations

from matching.models import (
    StaffPreference,
)


def staff_preference_set(*, user, language: str, time_zone: str) -> StaffPreference:
    """A staff member's console language and time zone (one row per user)."""
    preference, _ = StaffPreference.objects.update_or_create(
        user=user, defaults={"language": language, "time_zone": time_zone}
    )
    return preference
