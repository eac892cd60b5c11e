"""The client's address for lockout and the sign-in records."""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str:
    """REMOTE_ADDR, or with STAFF_CLIENT_IP_HEADER set, the entry the trusted proxies wrote in that
    header: each proxy appends the address it saw, so the N-th from the right (N trusted proxies) is
    the one no client can forge; anything a client wrote further left is ignored."""
    header = settings.STAFF_CLIENT_IP_HEADER
    if not header:
        return request.META.get("REMOTE_ADDR", "") or ""
    raw = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    if len(entries) < settings.STAFF_TRUSTED_PROXY_COUNT:
        # Not through the configured proxies: no address we could trust, so one shared bucket.
        return "unknown"
    return entries[-settings.STAFF_TRUSTED_PROXY_COUNT]
