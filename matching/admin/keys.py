"""The console's API key pages: create, import and revoke keys."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from matching.models import (
    ApiClientKey,
)
from matching.selectors import (
    api_key_live_q,
)
from matching.services.keys import MAX_ACTIVE_KEYS_PER_CLIENT, api_key_create, api_key_revoke


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", _("In use")), ("expired", _("Expired")), ("revoked", _("Revoked"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(api_key_live_q(now))
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ApiClientKeyForm(forms.ModelForm):
    """Says before saving what api_key_create would refuse: an expiry in the past, or a third live
    key for one client (the service checks again, under a lock)."""

    class Meta:
        model = ApiClientKey
        fields = ["name", "is_trusted_service", "expires_at", "note"]

    def clean(self):
        data = super().clean()
        now = timezone.now()
        expires_at = data.get("expires_at")
        if expires_at is not None and expires_at <= now and self.instance.pk is None:
            self.add_error("expires_at", _("A new key's expiry must be in the future."))
        # A new key, or a key moved to another client by renaming it, joins that client's live keys.
        if data.get("name") and (self.instance.pk is None or "name" in self.changed_data):
            others = ApiClientKey.objects.filter(api_key_live_q(now), name=data["name"]).exclude(pk=self.instance.pk)
            live = others.count()
            if live >= MAX_ACTIVE_KEYS_PER_CLIENT:
                self.add_error(
                    "name",
                    ngettext(
                        "%(name)s already has %(count)d key in use: revoke the old one once the client "
                        "has moved to the new one.",
                        "%(name)s already has %(count)d keys in use: revoke the old one once the client "
                        "has moved to the new one.",
                        live,
                    )
                    % {"name": data["name"], "count": live},
                )
        return data


@admin.register(ApiClientKey)
class ApiClientKeyAdmin(admin.ModelAdmin):
    form = ApiClientKeyForm
    list_display = [
        "name", "prefix", "state", "is_trusted_service", "imported", "created_at", "expires_at", "last_used_at"
    ]  # fmt: skip
    list_filter = [ApiKeyStateFilter, "is_trusted_service", "imported"]
    search_fields = ["name", "=prefix"]
    # `imported`: carried over from SnowTrace with `create_api_key --from-env` (its prefix is a label).
    fields = ["name", "is_trusted_service", "expires_at", "note", "imported", "prefix", "created_at", "last_used_at",
              "revoked_at"]  # fmt: skip
    readonly_fields = ["imported", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    @admin.display(description=gettext_lazy("state"))
    def state(self, obj):
        if obj.revoked_at is not None:
            colour, label = "grey", _("revoked")
        elif obj.is_expired:
            colour, label = "red", _("expired")
        else:
            colour, label = "green", _("in use")
        return format_html('<span class="sb-badge sb-{}">{}</span>', colour, label)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw_key = api_key_create(
            name=obj.name, is_trusted_service=obj.is_trusted_service, expires_at=obj.expires_at, note=obj.note
        )
        obj.pk = key.pk
        self.message_user(
            request,
            _("New key for %(name)s: %(key)s — copy it now, it is not stored and will not be shown again.")
            % {"name": key.name, "key": raw_key},
            messages.WARNING,
        )

    @admin.action(description=gettext_lazy("Revoke selected keys"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        count = sum(api_key_revoke(key=key) for key in queryset)
        self.message_user(
            request, ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", count) % {"count": count}
        )
