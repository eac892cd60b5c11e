"""What every console page shares: the read-only base, status badges and durations."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db import models
from django.utils.html import format_html
from django.utils.translation import gettext as _

from matching.admin.filters import (
    CappedCountPaginator,
)
from matching.models import (
    Role,
)


def chosen_action_name(request, default: str) -> str:
    """The admin action picked in the list: the list has an action form at the top and the bottom,
    and `index` says which one was submitted."""
    names = request.POST.getlist("action")
    try:
        index = int(request.POST.get("index") or 0)
    except ValueError:
        index = 0
    return (names[index] if index < len(names) else "") or next(filter(None, names), default)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits from the console: the engines and services write them."""

    show_facets = admin.ShowFacets.NEVER  # these tables grow large: no per-choice COUNT(*)
    paginator = CappedCountPaginator

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        # The change page shows a JSON column as code (ids, codes and counts: machine data, never
        # translated), through a display named after it: `<field>_shown`.
        self.json_shown = {}
        for field in model._meta.fields:
            if isinstance(field, models.JSONField):
                shown = f"{field.name}_shown"
                if not hasattr(self, shown):
                    setattr(self, shown, _json_display(field))
                self.json_shown[field.name] = shown

    def get_readonly_fields(self, request, obj=None):
        return [self.json_shown.get(name, name) for name in super().get_readonly_fields(request, obj)]

    def get_fields(self, request, obj=None):
        return list(dict.fromkeys(self.json_shown.get(name, name) for name in super().get_fields(request, obj)))

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


ROLE_LABELS = dict(Role.choices)


STATUS_COLOURS = {
    "pending": "grey",
    "dispatched": "blue",
    "running": "blue",
    "awaiting_vetting": "amber",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "grey",
    "timed_out": "red",
}


def status_badge(status: str, label: str) -> str:
    return format_html('<span class="sb-badge sb-{}">{}</span>', STATUS_COLOURS.get(status, "grey"), label)


def stored_english(text: str) -> str:
    """A record stored as another system or a service wrote it (in English): shown as it is, marked
    lang="en" for the reader's browser (and for the no-English checks)."""
    return format_html('<span lang="en">{}</span>', text) if text else ""


def machine_data(value) -> str:
    """A JSON record of ids, codes and counts (parameters, counters, bodies), shown as code: never translated."""
    if value is None:
        return ""
    return format_html("<code>{}</code>", json.dumps(value, ensure_ascii=False))


def _json_display(field):
    def shown(obj):
        return machine_data(getattr(obj, field.name))

    return admin.display(description=field.verbose_name)(shown)


def short_duration(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 1:
        return _("%(n)s ms") % {"n": f"{seconds * 1000:.0f}"}
    if seconds < 60:
        return _("%(n)s s") % {"n": f"{seconds:.1f}"}
    if seconds < 3600:
        return _("%(n)s min") % {"n": f"{seconds // 60:.0f}"}
    if seconds < 86400:
        return _("%(n)s h") % {"n": f"{seconds / 3600:.1f}"}
    return _("%(n)s d") % {"n": f"{seconds / 86400:.0f}"}
