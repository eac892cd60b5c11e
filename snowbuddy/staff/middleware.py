"""Staff sessions: idle and absolute expiry, and the second factor before any console page."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import ngettext

from snowbuddy.staff.services import needs_second_factor
from snowbuddy.staff.sessions import SEEN_AT, SIGNED_IN_AT

SEEN_WRITE_EVERY = 60  # seconds: the last-request time is not a session write per request


class StaffSessionMiddleware:
    """Signs out a session idle for STAFF_SESSION_IDLE_SECONDS or older than STAFF_SESSION_MAX_SECONDS
    since its sign-in (the cookie's own age is the second one too)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            signed_in_at = request.session.get(SIGNED_IN_AT)
            seen_at = request.session.get(SEEN_AT, signed_in_at)
            why = ""
            if not isinstance(signed_in_at, int | float) or now - signed_in_at > settings.STAFF_SESSION_MAX_SECONDS:
                minutes = settings.STAFF_SESSION_MAX_SECONDS // 60
                why = ngettext(
                    "Signed out: sessions end a minute after sign-in.",
                    "Signed out: sessions end %(minutes)d minutes after sign-in.",
                    minutes,
                ) % {"minutes": minutes}
            elif not isinstance(seen_at, int | float) or now - seen_at > settings.STAFF_SESSION_IDLE_SECONDS:
                minutes = settings.STAFF_SESSION_IDLE_SECONDS // 60
                why = ngettext(
                    "Signed out after a minute without activity.",
                    "Signed out after %(minutes)d minutes without activity.",
                    minutes,
                ) % {"minutes": minutes}
            if why:
                auth.logout(request)
                messages.warning(request, why)
            elif now - seen_at >= SEEN_WRITE_EVERY:
                request.session[SEEN_AT] = now
        return self.get_response(request)


def signed_in_with_password(request) -> bool:
    return request.session.get(BACKEND_SESSION_KEY) != "snowbuddy.staff.oidc.StaffOIDCBackend"


class StaffSecondFactorMiddleware:
    """With STAFF_REQUIRE_MFA, an operator or superuser signed in with a password reaches the console
    only once verified with a TOTP code or a recovery code (enrolling first if they have none)."""

    EXEMPT = ("/admin/logout/", "/admin/login/", "/admin/jsi18n/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            settings.STAFF_REQUIRE_MFA
            and request.path.startswith("/admin/")
            and not request.path.startswith(self.EXEMPT)
            and request.user.is_authenticated
            and not request.user.is_verified()
            and signed_in_with_password(request)
            and needs_second_factor(request.user)
        ):
            return HttpResponseRedirect(reverse("staff:otp") + "?" + urlencode({"next": request.get_full_path()}))
        return self.get_response(request)
