from django.contrib import admin

from workflows.models import SearchDispatch


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
