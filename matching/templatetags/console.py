"""Small formatting filters for the staff console's templates.

Times are shown in the zone activated for the request (the staff member's own, see
matching.admin.preferences) and always say which: "2026-12-06 21:59:21.123 UTC+0800".
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from matching.admin import words as console_words

register = template.Library()


def _local(value: dt.datetime) -> dt.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def zone_label(value: dt.datetime) -> str:
    """UTC and the offset of the time's own zone (+0800), the form the lists' format uses too."""
    return "UTC" + value.strftime("%z") if value.tzinfo else "UTC"


def _to_the_millisecond(value: dt.datetime | None, seconds_format: str) -> str:
    if not value:
        return "—"
    value = _local(value)
    return value.strftime(seconds_format) + f"{value.microsecond // 1000:03d} {zone_label(value)}"


@register.filter
def ms(value: dt.datetime | None) -> str:
    """A time to the millisecond in the staff member's zone: 2026-11-30 17:15:02.123 UTC+0800."""
    return _to_the_millisecond(value, "%Y-%m-%d %H:%M:%S.")


@register.filter
def ms_time(value: dt.datetime | None) -> str:
    """The same without the date: 17:15:02.123 UTC+0800."""
    return _to_the_millisecond(value, "%H:%M:%S.")


@register.simple_tag
def current_zone() -> str:
    """The name of the zone times are shown in (Asia/Taipei, UTC)."""
    return timezone.get_current_timezone_name()


@register.filter
def duration_ms(value: float | None) -> str:
    """+12 ms, +1.234 s, +3 min 02 s, +2 h 05 min."""
    if value is None:
        return ""
    if value < 1000:
        return _("+%(n)s ms") % {"n": f"{value:.0f}"}
    seconds = value / 1000
    if seconds < 60:
        return _("+%(n)s s") % {"n": f"{seconds:.3f}"}
    if seconds < 3600:
        return _("+%(min)s min %(s)s s") % {"min": int(seconds // 60), "s": f"{int(seconds % 60):02d}"}
    return _("+%(h)s h %(min)s min") % {"h": int(seconds // 3600), "min": f"{int(seconds % 3600 // 60):02d}"}


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return _("%(n)s ms") % {"n": f"{value * 1000:.0f}"}
    if value < 120:
        return _("%(n)s s") % {"n": f"{value:.2f}"}
    return _("%(n)s min") % {"n": f"{value / 60:.1f}"}


@register.filter
def lowerfirst(value) -> str:
    """ "Rerun on Durable" → "rerun on Durable" (names keep their capitals; Chinese is unchanged)."""
    text = str(value)
    return text[:1].lower() + text[1:]


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def score(value) -> str:
    return "—" if value is None else f"{float(value):.2f}"


register.filter("status_words", console_words.status_words)
register.filter("engine_words", console_words.engine_words)
register.filter("source_words", console_words.source_words)
register.filter("audit_words", console_words.audit_words)
register.filter("kind_words", console_words.kind_words)
register.filter("event_words", console_words.event_words)
register.filter("actor_words", console_words.actor_words)
register.filter("drift_words", console_words.drift_words)
register.filter("error_words", console_words.error_words)
