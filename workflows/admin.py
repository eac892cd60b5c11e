from django.contrib import admin

from matching.models import SearchVetting
from workflows.models import (
    ExecutionTimelineEntry,
    SearchDispatch,
    SyncWatermark,
    WebhookDelivery,
    WorkflowExecution,
)


@admin.register(SearchDispatch)
class SearchDispatchAdmin(admin.ModelAdmin):
    list_display = ["search", "attempt", "engine", "created_at", "sent_at", "send_count", "last_error"]
    list_filter = ["engine", ("sent_at", admin.EmptyFieldListFilter)]
    list_select_related = ["search"]
    search_fields = ["=search__search_id"]
    show_full_result_count = False
    readonly_fields = ["search", "attempt", "engine", "created_at", "sent_at", "send_count", "last_error"]

    def has_add_permission(self, request):
        return False


class ExecutionTimelineInline(admin.TabularInline):
    model = ExecutionTimelineEntry
    fields = ["at", "source", "kind", "name", "event", "detail"]
    readonly_fields = fields
    ordering = ["at", "id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "search", "attempt", "engine", "status", "version", "drift_state", "drift_checked_at", "last_synced_at",
    ]  # fmt: skip
    list_filter = ["engine", "status", "drift_state"]
    inlines = [ExecutionTimelineInline]
    list_select_related = ["search"]
    search_fields = ["=search__search_id", "execution_name"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["webhook_id", "search", "status", "version", "outcome", "received_at"]
    list_filter = ["outcome", "status"]
    list_select_related = ["search"]
    search_fields = ["=webhook_id", "=search__search_id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ExecutionTimelineEntry)
class ExecutionTimelineEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "execution", "source", "kind", "name", "event"]
    list_filter = ["source", "kind"]
    list_select_related = ["execution"]
    search_fields = ["=execution__search__search_id"]
    show_full_result_count = False
    readonly_fields = ["execution", "key", "at", "source", "kind", "name", "event", "detail"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncWatermark)
class SyncWatermarkAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "updated_at", "last_full_sync_at"]
    readonly_fields = ["name", "position", "updated_at", "last_full_sync_at"]

    def has_add_permission(self, request):
        return False


@admin.register(SearchVetting)
class SearchVettingAdmin(admin.ModelAdmin):
    """GlobalCoach requests of Celery-engine searches: what was sent, when, and the answer."""

    list_display = ["search", "attempt", "created_at", "requested_at", "request_tries", "answered_at", "answered_by"]
    list_select_related = ["search"]
    search_fields = ["=search__search_id"]
    show_full_result_count = False
    exclude = ["token_nonce", "token_sha256"]  # the callback credential's ingredients stay out of view

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
