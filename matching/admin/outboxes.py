"""The console's outbox pages: completion notifications and user events, with redelivery."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy, ngettext

from matching.admin.base import ReadOnlyAdmin
from matching.admin.filters import (
    ExactSearchMixin,
    fixed_filter,
)
from matching.models import (
    TERMINAL_STATUSES,
    SearchNotification,
    SearchStatus,
    UserEvent,
    staff_actor,
)
from workflows.outbound.notifications import notification_redeliver
from workflows.outbound.user_events import user_event_redeliver

FINISHED_CHOICES = [(value, label) for value, label in SearchStatus.choices if value in TERMINAL_STATUSES]


@admin.register(SearchNotification)
class SearchNotificationAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Completion notifications to SnowTrace: what was delivered, what is retrying, what is dead."""

    list_display = ["search", "attempt", "status", "state", "tries", "last_status_code", "last_attempt_at",
                    "next_attempt_at", "sent_at", "last_error"]  # fmt: skip
    # A notification is written only for a finished attempt: the filter offers only those statuses.
    list_filter = ["state", fixed_filter("status", gettext_lazy("status"), FINISHED_CHOICES)]
    list_select_related = ["search"]
    search_fields = ["search__search_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("Search id (or its first characters).")
    uuid_search = ("search_id",)
    show_full_result_count = False
    # Newest first through the primary key: the model's `-created_at` is indexed only behind the
    # state (a full sort of a million rows per page otherwise), and no column is sortable for that reason.
    ordering = ["-id"]
    sortable_by = ()
    fields = ["search", "attempt", "status", "state", "webhook_id", "created_at", "tries", "last_attempt_at",
              "last_status_code", "last_error", "next_attempt_at", "retry_until", "sent_at"]  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver"]

    @admin.display(description=gettext_lazy("webhook-id"))
    def webhook_id(self, obj: SearchNotification) -> str:
        return obj.webhook_id

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("matching.redeliver_searchnotification")

    @admin.action(description=gettext_lazy("Redeliver selected notifications (same webhook-id)"),
                  permissions=["redeliver"])  # fmt: skip
    def redeliver(self, request, queryset):
        acting_user = staff_actor(request.user.get_username())
        count = sum(notification_redeliver(notification=n, acting_user=acting_user) for n in queryset)
        skipped = queryset.count() - count
        self.message_user(
            request,
            ngettext("Queued %(count)d notification for redelivery.", "Queued %(count)d notifications for redelivery.",
                     count) % {"count": count},
        )  # fmt: skip
        _report_already_pending(self, request, skipped)


def _report_already_pending(model_admin, request, skipped: int) -> None:
    """After a redelivery: the rows left alone because they were pending already."""
    if skipped:
        model_admin.message_user(
            request,
            ngettext("%(count)d already pending: left to its next try.",
                     "%(count)d already pending: left to their next try.", skipped) % {"count": skipped},
            messages.WARNING,
        )  # fmt: skip


@admin.register(UserEvent)
class UserEventAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Match-request events to SnowTrace's user service: what was delivered, what is retrying, what is dead."""

    list_display = ["event_type", "match_request", "state", "tries", "last_status_code", "last_attempt_at",
                    "next_attempt_at", "sent_at", "last_error"]  # fmt: skip
    list_filter = ["state", "event_type"]
    list_select_related = ["match_request"]
    search_fields = ["match_request__request_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    search_help_text = gettext_lazy("A match request id (or its first characters).")
    uuid_search = ("match_request",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first; with a state or a type, through its index
    sortable_by = ()
    fields = ["event_id", "match_request", "event_type", "state", "created_at", "tries", "last_attempt_at",
              "last_status_code", "last_error", "next_attempt_at", "retry_until", "sent_at", "body"]  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver"]

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("matching.redeliver_userevent")

    @admin.action(description=gettext_lazy("Redeliver selected events (same Idempotency-Key)"),
                  permissions=["redeliver"])  # fmt: skip
    def redeliver(self, request, queryset):
        count = sum(user_event_redeliver(event=event) for event in queryset)
        skipped = queryset.count() - count
        self.message_user(
            request,
            ngettext("Queued %(count)d event for redelivery.", "Queued %(count)d events for redelivery.", count)
            % {"count": count},
        )
        _report_already_pending(self, request, skipped)
