"""The console's pages of what users asked: match requests and submit idempotency keys."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy, ngettext

from matching.admin.base import ReadOnlyAdmin
from matching.admin.filters import (
    ExactSearchMixin,
)
from matching.models import (
    MatchRequest,
    SubmitIdempotencyKey,
)


@admin.register(SubmitIdempotencyKey)
class SubmitIdempotencyKeyAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Which Idempotency-Key bound which search (kept 24 h, then purged by beat)."""

    list_display = ["key", "seeker_id", "search", "created_at"]
    list_select_related = ["search"]
    search_fields = ["key"]  # shows the box; the lookups are exact or a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("An exact key, or a search id (or its first characters).")
    exact_search = ("key",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    fields = ["key", "seeker_id", "search", "fingerprint", "created_at"]
    readonly_fields = fields


@admin.register(MatchRequest)
class MatchRequestAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Who asked whom to ski together, and the answer (`/requests`): the users' records, read-only."""

    list_display = ["request_id", "requester_id", "target_user_id", "status", "created_at", "answered_at"]
    list_filter = ["status"]  # `matchrequest_status_idx` serves each choice, newest first
    search_fields = ["requester_id"]  # shows the box; the lookups are exact or a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("A request id (or its first characters), or an exact user id (either party).")
    exact_search = ("requester_id", "target_user_id")  # each behind its own index
    uuid_search = ("request_id",)
    show_full_result_count = False
    ordering = ["-created_at"]
    sortable_by = ["created_at"]
    fields = ["request_id", "requester_id", "target_user_id", "status", "created_at", "answered_at", "events"]
    readonly_fields = fields

    @admin.display(description=gettext_lazy("events to the user service"))
    def events(self, obj: MatchRequest) -> str:
        rows = obj.events.order_by("pk").only("event_type", "state", "tries")
        # The event type stays the user service's own name (a machine identifier, as it is sent).
        return (
            ", ".join(
                ngettext("%(type)s (%(state)s, %(tries)d try)", "%(type)s (%(state)s, %(tries)d tries)", e.tries)
                % {"type": e.event_type, "state": e.get_state_display(), "tries": e.tries}
                for e in rows
            )
            or "—"
        )
