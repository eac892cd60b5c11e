"""A recent sign-in before a sensitive action: a bulk action over STAFF_REAUTH_BULK_OVER searches, or
a routing switch, asks for one within STAFF_REAUTH_SECONDS (the staff sign-in pages, snowbuddy/staff/)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import ngettext

from snowbuddy.staff.sessions import signed_in_recently


def recent_sign_in_required(request, what: str, *, next_url: str) -> HttpResponseRedirect | None:
    """None when the sign-in is recent enough; else the redirect to the sign-in-again page. `what`
    (the action, in the staff member's language) starts the message."""
    if signed_in_recently(request, settings.STAFF_REAUTH_SECONDS):
        return None
    minutes = settings.STAFF_REAUTH_SECONDS // 60
    messages.warning(
        request,
        ngettext(
            "%(what)s needs a sign-in within the last minute: sign in again, then repeat it.",
            "%(what)s needs a sign-in within the last %(minutes)d minutes: sign in again, then repeat it.",
            minutes,
        )
        % {"what": what, "minutes": minutes},
    )
    return HttpResponseRedirect(reverse("staff:reauth") + "?" + urlencode({"next": next_url}))
