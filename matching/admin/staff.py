"""The console's staff pages: the audit of staff actions and staff preferences."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy

from matching.admin.base import ReadOnlyAdmin
from matching.admin.filters import (
    ExactSearchMixin,
)
from matching.models import (
    StaffAction,
    StaffPreference,
)


@admin.register(StaffAction)
class StaffActionAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "username", "action", "search", "attempt", "status_before", "status_after", "outcome",
                    "reason"]  # fmt: skip
    list_filter = ["action", "outcome"]
    list_select_related = ["search"]
    search_fields = ["username"]
    search_help_text = gettext_lazy("Search id (or its first characters), or an exact username.")
    exact_search = ("username",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    sortable_by = ["at"]  # `staffaction_at_idx`; the trail only grows: other sorts would sort all of it


@admin.register(StaffPreference)
class StaffPreferenceAdmin(admin.ModelAdmin):
    """Each staff member sets their own from the console's header; shown here for the record."""

    list_display = ["user", "language", "time_zone", "updated_at"]
    readonly_fields = ["user", "language", "time_zone", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False
