"""The mirror's admin pages: read-only for everyone (the engines, the sync and the services write them)."""

import re
import uuid

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from matching.admin.base import ReadOnlyAdmin, machine_data, stored_english
from matching.admin.filters import STATUS_CHOICES, ExactSearchMixin, fixed_filter
from matching.admin.words import KIND_WORDS, drift_words, error_words, kind_words, status_words
from matching.models import SearchVetting
from workflows.models import (
    EngineRouting,
    ExecutionTimelineEntry,
    SearchDispatch,
    SyncWatermark,
    TimelineKind,
    WebhookDelivery,
    WebhookOutcome,
    WorkflowExecution,
)

EXECUTION_NAME = re.compile(r"(?P<search_id>[0-9a-fA-F-]{36})-a(?P<attempt>[0-9]{1,9})")


@admin.register(SearchDispatch)
class SearchDispatchAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["search", "attempt", "engine", "created_at", "sent_at", "send_count", "last_error_shown"]
    list_filter = ["engine", ("sent_at", admin.EmptyFieldListFilter)]
    list_select_related = ["search"]
    search_fields = ["search__seeker_id"]
    search_help_text = _("Search id (or its first characters).")
    uuid_search = ("search_id",)
    show_full_result_count = False
    # Newest first by the primary key: the model's `-created_at` has no index on a million rows (a
    # full sort per page), and no column is sortable for the same reason.
    ordering = ["-id"]
    sortable_by = ()

    @admin.display(description=_("last error"))
    def last_error_shown(self, obj: SearchDispatch) -> str:
        """A Durable API transport failure in the staff member's words; any other error as stored."""
        return error_words(obj.last_error_code) or stored_english(obj.last_error)


class ExecutionTimelineInline(admin.TabularInline):
    model = ExecutionTimelineEntry
    fields = ["at", "source", "kind_shown", "name", "event_shown", "detail_shown"]
    readonly_fields = fields
    ordering = ["at", "id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("kind"))
    def kind_shown(self, obj: ExecutionTimelineEntry) -> str:
        return kind_words(obj.kind)

    @admin.display(description=_("event"))
    def event_shown(self, obj: ExecutionTimelineEntry) -> str:
        return stored_english(obj.event)  # the engine's own event name

    @admin.display(description=_("detail"))
    def detail_shown(self, obj: ExecutionTimelineEntry) -> str:
        return machine_data(obj.detail)


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = [
        "search", "attempt", "engine", "status_shown", "version", "drift_state", "drift_checked_at", "last_synced_at",
    ]  # fmt: skip
    # The change page: the status and a coded drift reason in the staff member's words, the engine's error as stored.
    fields = ["search", "attempt", "engine", "execution_name", "execution_arn", "status_shown", "version",
              "error_shown", "started_at", "ended_at", "last_synced_at", "celery_task_id", "item_updated_at",
              "history_synced_at", "history_complete", "drift_state", "drift_reason_shown",
              "drift_checked_at"]  # fmt: skip
    readonly_fields = fields
    list_filter = ["engine", fixed_filter("status", _("status"), STATUS_CHOICES), "drift_state"]
    inlines = [ExecutionTimelineInline]
    list_select_related = ["search"]
    search_fields = ["search__search_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    # An execution name is `<search id>-a<attempt>`: its search id finds it through the index.
    search_help_text = _("Search id (or its first characters), or an execution name.")
    uuid_search = ("search_id",)

    def get_search_results(self, request, queryset, search_term):
        name = EXECUTION_NAME.fullmatch(search_term.strip())
        try:
            search_id = uuid.UUID(name["search_id"]) if name else None
        except ValueError:
            search_id = None
        if search_id is not None:
            return queryset.filter(search_id=search_id, attempt=int(name["attempt"])), False
        return super().get_search_results(request, queryset, search_term)

    show_full_result_count = False
    ordering = ["-id"]  # newest first; with a status, through `execution_status_id_idx`
    sortable_by = ()

    @admin.display(description=_("status"))
    def status_shown(self, obj: WorkflowExecution) -> str:
        return status_words(obj.status)

    @admin.display(description=_("error"))
    def error_shown(self, obj: WorkflowExecution) -> str:
        return stored_english(obj.error)

    @admin.display(description=_("drift reason"))
    def drift_reason_shown(self, obj: WorkflowExecution) -> str:
        return drift_words(obj.drift_reason_code) or stored_english(obj.drift_reason)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["webhook_id", "search", "status_shown", "version", "outcome", "received_at"]
    fields = ["webhook_id", "search", "received_at", "status_shown", "version", "outcome"]
    readonly_fields = fields
    list_filter = [
        fixed_filter("outcome", _("outcome"), [(o.value, o.value) for o in WebhookOutcome]),
        fixed_filter("status", _("status"), STATUS_CHOICES),
    ]
    list_select_related = ["search"]
    search_fields = ["webhook_id"]
    search_help_text = _("Search id (or its first characters), or an exact webhook id.")
    exact_search = ("webhook_id",)
    uuid_search = ("search_id",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first; `-received_at` has no index of its own; filters: `webhook_*_id_idx`
    sortable_by = ()

    @admin.display(description=_("status"))
    def status_shown(self, obj: WebhookDelivery) -> str:
        return status_words(obj.status)


@admin.register(ExecutionTimelineEntry)
class ExecutionTimelineEntryAdmin(ExactSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "execution", "source", "kind_shown", "name", "event_shown"]
    list_filter = ["source", fixed_filter("kind", _("kind"), [(k.value, KIND_WORDS[k.value]) for k in TimelineKind])]
    list_select_related = ["execution"]
    search_fields = ["name"]
    search_help_text = _("Search id (or its first characters).")
    uuid_search = ("execution__search_id",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first; with a source or kind, through `timeline_source_id_idx` / `…kind_id_idx`
    sortable_by = ()
    readonly_fields = ["execution", "key", "at", "source", "kind_shown", "name", "event_shown", "detail_shown"]
    fields = readonly_fields
    kind_shown = ExecutionTimelineInline.kind_shown
    event_shown = ExecutionTimelineInline.event_shown
    detail_shown = ExecutionTimelineInline.detail_shown


@admin.register(SyncWatermark)
class SyncWatermarkAdmin(ReadOnlyAdmin):
    list_display = ["name", "position", "updated_at", "last_full_sync_at"]


@admin.register(EngineRouting)
class EngineRoutingAdmin(ReadOnlyAdmin):
    """Shown for the record; staff switch it from the dashboard's routing page (audited)."""

    list_display = ["mode", "changed_at", "changed_by", "reason"]


@admin.register(SearchVetting)
class SearchVettingAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """GlobalCoach requests of Celery-engine searches: what was sent, when, and the answer."""

    list_display = ["search", "attempt", "created_at", "requested_at", "request_tries", "answered_at", "answered_by"]
    list_select_related = ["search"]
    search_fields = ["search__search_id"]  # shows the box; the lookup is a uuid prefix (get_search_results)
    search_help_text = _("Search id (or its first characters).")
    uuid_search = ("search_id",)
    show_full_result_count = False
    ordering = ["-id"]  # newest first through the primary key (no index on created_at)
    sortable_by = ()
    exclude = ["token_nonce", "token_sha256"]  # the callback credential's ingredients stay out of view
