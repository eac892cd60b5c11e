"""When a staff member signed in, kept in the session: session expiry and re-authentication read it."""

from __future__ import annotations

import time

SIGNED_IN_AT = "staff_signed_in_at"  # refreshed by every sign-in, re-authentication included
SEEN_AT = "staff_seen_at"  # the last request (written at most once a minute)


def remember_sign_in(sender, request, user, **kwargs) -> None:
    """user_logged_in: password, single sign-on and the test client's force_login alike."""
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[SIGNED_IN_AT] = now
        request.session[SEEN_AT] = now


def signed_in_recently(request, seconds: int) -> bool:
    signed_in_at = request.session.get(SIGNED_IN_AT)
    return isinstance(signed_in_at, int | float) and time.time() - signed_in_at <= seconds
