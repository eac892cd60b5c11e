"""The console's profile and resort pages."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from matching.admin.base import ReadOnlyAdmin
from matching.admin.filters import (
    ExactSearchMixin,
    fixed_filter,
)
from matching.models import (
    ProfileSyncState,
    Resort,
    SkierProfile,
)
from matching.selectors import region_names
from matching.services.profiles import profile_delete, profile_upsert
from matching.vocabulary.regions import KNOWN_REGIONS


@admin.register(Resort)
class ResortAdmin(admin.ModelAdmin):
    list_display = ["id", "english_name", "name_ja", "region_name", "country"]
    # The regions in the reader's language (the resort list's own Chinese names), as the column shows them.
    list_filter = [
        fixed_filter("region", gettext_lazy("region"), lambda: [(r, region_names().get(r, r)) for r in KNOWN_REGIONS])
    ]
    search_fields = ["id", "name", "name_en", "name_ja"]

    @admin.display(description=gettext_lazy("name en"), ordering="name_en")
    def english_name(self, obj: Resort) -> str:
        return format_html('<span lang="en">{}</span>', obj.name_en)  # the resort's English name, as it is

    @admin.display(description=gettext_lazy("region"), ordering="region")
    def region_name(self, obj: Resort) -> str:
        return region_names().get(obj.region, obj.region)


@admin.register(SkierProfile)
class SkierProfileAdmin(ExactSearchMixin, admin.ModelAdmin):
    list_display = ["user_id", "nickname", "role", "skill_level", "open_to_matching", "knowledge_score", "updated_at"]
    list_filter = ["role", "open_to_matching",
                   fixed_filter("skill_level", gettext_lazy("skill level"), [(str(n), str(n)) for n in range(1, 11)]),
                   ("deleted_at", admin.EmptyFieldListFilter)]  # fmt: skip
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["user_id"]
    search_help_text = gettext_lazy("Exact user id or nickname.")
    exact_search = ("user_id", "nickname")
    readonly_fields = ["region_mask", "updated_at", "deleted_at"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        # The user id names the profile; changing it would be another profile.
        return [*self.readonly_fields, "user_id"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the one profile service: it derives the region mask and stamps updated_at,
        # which the warm candidate indexes follow.
        saved = profile_upsert(
            user_id=obj.user_id,
            nickname=obj.nickname,
            skill_level=obj.skill_level,
            role=obj.role,
            resorts=obj.resorts,
            regions=obj.regions,
            available_dates=obj.available_dates,
            open_to_matching=obj.open_to_matching,
            knowledge_score=obj.knowledge_score,
            certifications=obj.certifications,
            languages=obj.languages,
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        # A tombstone, so every warm index sees the delete (docs/profiles.md).
        profile_delete(user_id=obj.user_id)

    def delete_queryset(self, request, queryset):
        for user_id in queryset.values_list("user_id", flat=True):
            profile_delete(user_id=user_id)


@admin.register(ProfileSyncState)
class ProfileSyncStateAdmin(ReadOnlyAdmin):
    list_display = ["source", "run_mode", "run_started_at", "pages_done", "last_completed_at", "lease_until"]
