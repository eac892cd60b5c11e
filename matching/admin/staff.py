"""The console's staff pages: the audit of staff actions and staff preferences."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy

from matching.admin.base import ReadOnlyAdmin, stored_english
from matching.admin.filters import (
    ExactSearchMixin,
)
from matching.admin.words import MODE_WORDS, audit_words, status_words
from matching.models import (
    StaffAction,
    StaffActionKind,
    StaffPreference,
)


@admin.register(StaffAction)
class StaffActionAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "username", "action", "search", "attempt", "before_shown", "after_shown", "outcome",
                    "reason"]  # fmt: skip
    # The change page: statuses and the result in the staff member's words (`detail` keeps the English).
    fields = ["at", "user", "username", "action", "search", "attempt", "reason", "parameters", "before_shown",
              "after_shown", "outcome", "detail_shown", "detail_code"]  # fmt: skip
    readonly_fields = fields
    list_filter = ["action", "outcome"]
    list_select_related = ["search"]
    search_fields = ["username"]
    search_help_text = gettext_lazy("Search id (or its first characters), or an exact username.")
    exact_search = ("username",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    sortable_by = ["at"]  # `staffaction_at_idx`; the trail only grows: other sorts would sort all of it

    def _state_words(self, obj: StaffAction, value: str) -> str:
        # A routing switch records the routing modes; every other action the search's statuses.
        return str(MODE_WORDS.get(value, value)) if obj.action == StaffActionKind.ROUTING else status_words(value)

    @admin.display(description=gettext_lazy("status before"))
    def before_shown(self, obj: StaffAction) -> str:
        return self._state_words(obj, obj.status_before)

    @admin.display(description=gettext_lazy("status after"))
    def after_shown(self, obj: StaffAction) -> str:
        return self._state_words(obj, obj.status_after)

    @admin.display(description=gettext_lazy("detail"))
    def detail_shown(self, obj: StaffAction) -> str:
        worded = audit_words(obj)
        return stored_english(worded) if worded == obj.detail and not obj.detail_code else worded


@admin.register(StaffPreference)
class StaffPreferenceAdmin(admin.ModelAdmin):
    """Each staff member sets their own from the console's header; shown here for the record."""

    list_display = ["user", "language", "time_zone", "updated_at"]
    readonly_fields = ["user", "language", "time_zone", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False
