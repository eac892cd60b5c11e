from django.contrib import admin, messages

from matching.models import (
    ApiClientKey,
    Resort,
    Search,
    SearchEvent,
    SearchNotification,
    SearchResult,
    SkierProfile,
)
from matching.services import api_key_create, api_key_revoke, profile_fields
from workflows.notifications import notification_redeliver


@admin.register(Resort)
class ResortAdmin(admin.ModelAdmin):
    list_display = ["id", "name_en", "name_ja", "region", "country"]
    list_filter = ["region"]
    search_fields = ["id", "name", "name_en", "name_ja"]


@admin.register(SkierProfile)
class SkierProfileAdmin(admin.ModelAdmin):
    list_display = ["user_id", "nickname", "role", "skill_level", "open_to_matching", "knowledge_score", "updated_at"]
    list_filter = ["role", "open_to_matching", "skill_level"]
    search_fields = ["user_id", "nickname"]
    readonly_fields = ["region_mask", "updated_at"]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        # The derived region mask is computed by the same service every other writer uses.
        for field, value in profile_fields(resorts=obj.resorts, regions=obj.regions).items():
            setattr(obj, field, value)
        super().save_model(request, obj, form, change)


class SearchResultInline(admin.TabularInline):
    model = SearchResult
    extra = 0
    can_delete = False
    fields = ["attempt", "rank", "user_id", "nickname", "score", "breakdown"]
    readonly_fields = fields
    ordering = ["-attempt", "rank"]

    def has_add_permission(self, request, obj=None):
        return False


class SearchEventInline(admin.TabularInline):
    model = SearchEvent
    extra = 0
    can_delete = False
    fields = ["at", "attempt", "kind", "from_status", "to_status", "actor", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Search)
class SearchAdmin(admin.ModelAdmin):
    list_display = [
        "search_id",
        "seeker_id",
        "status",
        "engine",
        "attempt",
        "result_count",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "engine"]
    search_fields = ["=search_id", "=seeker_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [
        "search_id",
        "seeker_id",
        "preferences",
        "status",
        "engine",
        "attempt",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "deadline_at",
        "error",
        "result_count",
        "api_key",
    ]
    inlines = [SearchEventInline, SearchResultInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs.defer("preferences") if request.resolver_match.url_name.endswith("changelist") else qs

    def has_add_permission(self, request):
        return False


@admin.register(SearchEvent)
class SearchEventAdmin(admin.ModelAdmin):
    list_display = ["at", "search", "attempt", "kind", "from_status", "to_status", "actor"]
    list_filter = ["kind"]
    list_select_related = ["search"]
    search_fields = ["=search__search_id", "actor"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiClientKey)
class ApiClientKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "is_trusted_service", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["is_trusted_service", ("revoked_at", admin.EmptyFieldListFilter)]
    fields = ["name", "is_trusted_service", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw_key = api_key_create(name=obj.name, is_trusted_service=obj.is_trusted_service)
        obj.pk = key.pk
        self.message_user(
            request,
            f"New key for {key.name}: {raw_key} — copy it now, it is not stored and will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = sum(api_key_revoke(key=key) for key in queryset)
        self.message_user(request, f"Revoked {count} key(s).")


@admin.register(SearchResult)
class SearchResultAdmin(admin.ModelAdmin):
    list_display = ["search", "attempt", "rank", "user_id", "nickname", "score"]
    list_select_related = ["search"]
    search_fields = ["=search__search_id", "=user_id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SearchNotification)
class SearchNotificationAdmin(admin.ModelAdmin):
    """Completion notifications to SnowTrace: what was delivered, what is retrying, what is dead."""

    list_display = [
        "search",
        "attempt",
        "status",
        "state",
        "tries",
        "last_status_code",
        "last_attempt_at",
        "next_attempt_at",
        "sent_at",
        "last_error",
    ]
    list_filter = ["state", "status"]
    list_select_related = ["search"]
    search_fields = ["=search__search_id"]
    show_full_result_count = False
    fields = [
        "search",
        "attempt",
        "status",
        "state",
        "webhook_id",
        "created_at",
        "tries",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "retry_until",
        "sent_at",
    ]
    readonly_fields = fields
    actions = ["redeliver"]

    @admin.display(description="webhook-id")
    def webhook_id(self, obj: SearchNotification) -> str:
        return obj.webhook_id

    @admin.action(description="Redeliver selected notifications (same webhook-id)", permissions=["view"])
    def redeliver(self, request, queryset):
        count = sum(notification_redeliver(notification=n, acting_user=f"staff:{request.user.get_username()}")
                    for n in queryset)  # fmt: skip
        skipped = queryset.count() - count
        self.message_user(request, f"Queued {count} notification(s) for redelivery.")
        if skipped:
            self.message_user(request, f"{skipped} already pending: left to their next try.", messages.WARNING)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
