"""What every console page shares: the read-only base, status badges and durations."""

from __future__ import annotations

from django.contrib import admin
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
