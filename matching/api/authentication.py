"""SnowTrace's backend authenticates with an API key and names the acting user."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from matching.models import ApiClientKey
from matching.services import hash_api_key

API_KEY_HEADER = "X-API-Key"
USER_HEADER = "X-User-Id"
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
KEY_RE = re.compile(r"^sbk_([0-9a-f]{8})_[A-Za-z0-9_-]{20,64}$")


@dataclass(frozen=True)
class SnowTraceUser:
    """The end user SnowTrace acts for. Not a Django user: the console never stores them."""

    user_id: str
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.user_id


class SnowTraceApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw_key = request.headers.get(API_KEY_HEADER, "")
        if not raw_key:
            return None
        key = self._check_key(raw_key)
        user_id = request.headers.get(USER_HEADER, "")
        if not USER_ID_RE.match(user_id):
            raise exceptions.AuthenticationFailed(
                f"{USER_HEADER} must name the acting user (1-64 of A-Z a-z 0-9 _ . : @ -)."
            )
        return SnowTraceUser(user_id=user_id), key

    def authenticate_header(self, request) -> str:
        return f'ApiKey header="{API_KEY_HEADER}"'

    @staticmethod
    def _check_key(raw_key: str) -> ApiClientKey:
        match = KEY_RE.match(raw_key)
        key = ApiClientKey.objects.filter(prefix=match.group(1), revoked_at__isnull=True).first() if match else None
        # Compare in constant time, and do the same work when no key was found.
        expected = key.key_hash if key else "0" * 64
        if not hmac.compare_digest(hash_api_key(raw_key), expected) or key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiClientKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return key


class SnowTraceApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = SnowTraceApiKeyAuthentication
    name = "SnowTraceApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
