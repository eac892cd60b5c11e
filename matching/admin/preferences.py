"""The staff member's console language and time zone: chosen in the header, kept per user, applied
to every console request. Everything outside the console (the API, webhooks, health) is answered
in English whatever the browser asks, so machine clients see the same `detail` texts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.http import HttpResponseRedirect
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from matching.models import StaffPreference
from matching.services.preferences import staff_preference_set

CONSOLE_PREFIX = "/admin/"
# The staff sign-in pages (second factor, sign in again, not allowed: snowbuddy/staff/) speak the
# console's language too; everything else (the API, webhooks) answers in English.
STAFF_PREFIXES = (CONSOLE_PREFIX, "/staff/")
API_LANGUAGE = "en"
# The zones offered in the header: the staff's own default, UTC, and the resorts' and offices' zones.
TIME_ZONE_CHOICES = ("Asia/Taipei", "UTC", "Asia/Tokyo", "Asia/Hong_Kong", "Asia/Singapore", "Europe/London",
                     "America/Los_Angeles")  # fmt: skip


def time_zone_choices() -> list[tuple[str, str]]:
    names = dict.fromkeys([settings.STAFF_TIME_ZONE, *TIME_ZONE_CHOICES])
    return [(name, name) for name in names]


class PreferenceForm(forms.Form):
    prefix = "sb"  # the header's fields never clash with a page's own form
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices)
    next = forms.CharField(required=False, widget=forms.HiddenInput)


def current_preference(user) -> StaffPreference | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return StaffPreference.objects.filter(user=user).first()


class StaffPreferenceMiddleware:
    """After LocaleMiddleware (which guessed from Accept-Language) and authentication: on console
    and staff sign-in pages the saved choice wins and the staff member's zone is activated; elsewhere
    English and UTC."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(STAFF_PREFIXES):
            preference = current_preference(request.user)
            language = preference.language if preference else translation.get_language()
            zone = preference.time_zone if preference else settings.STAFF_TIME_ZONE
            request.staff_time_zone = zone
            timezone.activate(ZoneInfo(zone))
        else:
            language = API_LANGUAGE
            timezone.deactivate()
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


@require_POST
def preference_view(request):
    """The header's switch (a plain form: no script): save, then back to the page it was sent from."""
    form = PreferenceForm(request.POST)
    target = request.POST.get(form.add_prefix("next")) or CONSOLE_PREFIX
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = CONSOLE_PREFIX
    if form.is_valid():
        staff_preference_set(
            user=request.user, language=form.cleaned_data["language"], time_zone=form.cleaned_data["time_zone"]
        )
    return HttpResponseRedirect(target)


def header_context(request) -> dict:
    """The switch's current values, for templates/admin/base_site.html (a context processor)."""
    if not request.path.startswith(CONSOLE_PREFIX) or not getattr(request.user, "is_authenticated", False):
        return {}
    return {
        "sb_preference_form": PreferenceForm(
            initial={
                "language": translation.get_language(),
                "time_zone": getattr(request, "staff_time_zone", settings.STAFF_TIME_ZONE),
                "next": request.get_full_path(),
            }
        ),
        "sb_time_zone": getattr(request, "staff_time_zone", settings.STAFF_TIME_ZONE),
    }
