from django.contrib import admin

from workflows.models import SearchDispatch, WebhookDelivery, WorkflowExecution


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


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(admin.ModelAdmin):
    list_display = ["search", "attempt", "engine", "status", "version", "started_at", "ended_at", "last_synced_at"]
    list_filter = ["engine", "status"]
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
