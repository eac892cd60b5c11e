"""Small formatting filters for the staff console's templates."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def ms(value: dt.datetime | None) -> str:
    """A UTC time to the millisecond: 2026-11-30 09:15:02.123."""
    if not value:
        return "—"
    value = timezone.localtime(value, dt.UTC) if timezone.is_aware(value) else value
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


@register.filter
def ms_time(value: dt.datetime | None) -> str:
    if not value:
        return "—"
    value = timezone.localtime(value, dt.UTC) if timezone.is_aware(value) else value
    return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}"


@register.filter
def duration_ms(value: float | None) -> str:
    """+12 ms, +1.234 s, +3 min 02 s, +2 h 05 min."""
    if value is None:
        return ""
    if value < 1000:
        return f"+{value:.0f} ms"
    seconds = value / 1000
    if seconds < 60:
        return f"+{seconds:.3f} s"
    if seconds < 3600:
        return f"+{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"+{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min"


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def score(value) -> str:
    return "—" if value is None else f"{float(value):.2f}"
