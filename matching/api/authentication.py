"""Who is calling, and for which user (docs/contracts.md, "Authentication").

SnowTrace's backend calls with its API key (`X-API-Key`) and names the end user in one of two ways:

* `Authorization: Bearer <JWT>`, the user's token from SnowTrace's user service: HS256 only, the
  secret `JWT_SECRET_KEY` (or `JWT_FALLBACK_SECRET` during a rotation), audience `JWT_AUDIENCE`,
  issuer `JWT_ISSUER` when set, an expiry, and the user id in `sub` (a UUID). A bearer token alone
  is enough to *read* (the old service's GET never asked for the API key); writes need the key too,
  unless MATCHING_REQUIRE_API_KEY is false (browsers, which cannot keep a key): then the token alone
  may write too. The rule is here, in authentication, so every view (searches, match requests)
  gets it; each view still scopes its work to the acting user and its per-user limit.
* `X-User-Id`, accepted only from API keys flagged as trusted services (`is_trusted_service`).

A bad key or token is a 401 whose `detail` says what is wrong, never anything about the secret.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from dataclasses import dataclass

import jwt
from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from matching.models import ApiClientKey
from matching.services.keys import hash_api_key

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
USER_HEADER = "X-User-Id"
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
KEY_RE = re.compile(r"^sbk_([0-9a-f]{8})_[A-Za-z0-9_-]{20,64}$")
JWT_ALGORITHM = "HS256"  # pinned: the header's "alg" is never trusted
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class SnowTraceUser:
    """The end user SnowTrace acts for. Not a Django user: the console never stores them."""

    user_id: str
    is_authenticated: bool = True
    is_anonymous: bool = False
    via: str = "x-user-id"  # or "bearer"

    @property
    def pk(self) -> str:
        return self.user_id


class TokenRejected(exceptions.AuthenticationFailed):
    """A bearer token that does not verify; `detail` is safe to show the caller."""


def verify_user_token(token: str) -> str:
    """The user id (canonical UUID) of a SnowTrace user token, or TokenRejected saying why."""
    secrets = [s for s in (settings.JWT_SECRET_KEY, settings.JWT_FALLBACK_SECRET) if s]
    if not secrets:
        logger.error("a bearer token arrived but JWT_SECRET_KEY is not set")
        raise TokenRejected("Bearer tokens are not accepted here: no token secret is configured.")
    options = {"require": ["exp", "sub"], "verify_aud": True, "verify_iss": bool(settings.JWT_ISSUER)}
    claims = None
    for secret in secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[JWT_ALGORITHM],
                audience=settings.JWT_AUDIENCE,
                issuer=settings.JWT_ISSUER or None,
                options=options,
            )
            break
        except jwt.InvalidSignatureError:
            continue  # perhaps signed with the other secret (a rotation)
        except jwt.ExpiredSignatureError:
            raise TokenRejected("The bearer token has expired.") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("The bearer token is not meant for this service (wrong audience).") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("The bearer token comes from the wrong issuer.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"The bearer token has no '{exc.claim}' claim.") from None
        except jwt.InvalidAlgorithmError:
            raise TokenRejected(f"The bearer token must be signed with {JWT_ALGORITHM}.") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("The bearer token is not valid yet.") from None
        except jwt.InvalidTokenError:
            raise TokenRejected("The bearer token is malformed.") from None
    if claims is None:
        raise TokenRejected("The bearer token's signature does not verify.")
    try:
        return str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise TokenRejected("The bearer token's 'sub' is not a user id (a UUID).") from None


class SnowTraceAuthentication(authentication.BaseAuthentication):
    """API key, plus the acting user from a bearer token or (trusted keys only) X-User-Id."""

    def authenticate(self, request):
        raw_key = request.headers.get(API_KEY_HEADER, "")
        token = _bearer_token(request)
        named_user = request.headers.get(USER_HEADER, "")
        if not raw_key and token is None:
            return None  # unauthenticated: DRF answers 401 with WWW-Authenticate
        key = self._check_key(raw_key) if raw_key else None
        if token is not None:
            user_id = verify_user_token(token)
            if named_user and named_user.lower() != user_id:
                raise exceptions.AuthenticationFailed(f"{USER_HEADER} names another user than the bearer token.")
            if key is None and request.method not in READ_METHODS and settings.MATCHING_REQUIRE_API_KEY:
                raise exceptions.AuthenticationFailed(f"Changes need the service's API key in {API_KEY_HEADER}.")
            return SnowTraceUser(user_id=user_id, via="bearer"), key
        assert key is not None
        if not key.is_trusted_service:
            raise exceptions.AuthenticationFailed(
                f"This API key may not name the user in {USER_HEADER}: send the user's token as "
                "'Authorization: Bearer <token>', or ask staff to mark the key as a trusted service."
            )
        if not USER_ID_RE.match(named_user):
            raise exceptions.AuthenticationFailed(
                f"{USER_HEADER} must name the acting user (1-64 of A-Z a-z 0-9 _ . : @ -)."
            )
        return SnowTraceUser(user_id=named_user), key

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="snowbuddy", ApiKey header="{API_KEY_HEADER}"'

    @staticmethod
    def _check_key(raw_key: str) -> ApiClientKey:
        """Find the key by the SHA-256 of what was sent (a unique, indexed column), whatever its
        format: the console's own `sbk_<prefix>_<secret>` keys and keys imported from SnowTrace
        (`create_api_key --from-env`), which have SnowTrace's format and no prefix to look up. The
        index is searched for a digest, so its timing says nothing about the key; the stored digest
        is then compared in constant time, and the same work is done when nothing was found."""
        digest = hash_api_key(raw_key)
        key = ApiClientKey.objects.filter(key_hash=digest).first()
        expected = key.key_hash if key else "0" * 64
        if not hmac.compare_digest(digest, expected) or key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        match = KEY_RE.match(raw_key)
        if match and not key.imported and match.group(1) != key.prefix:
            raise exceptions.AuthenticationFailed("Invalid API key.")  # a console key names its own prefix
        # Only a caller who holds the whole secret learns that the key is revoked or expired.
        now = timezone.now()
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise exceptions.AuthenticationFailed(f"This API key expired on {key.expires_at:%Y-%m-%d %H:%M} UTC.")
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiClientKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return key


def _bearer_token(request) -> str | None:
    """The token of an `Authorization: Bearer` header; None when there is no such header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token:
        raise exceptions.AuthenticationFailed("The Authorization header has no bearer token.")
    return token


class SnowTraceApiKeyScheme(OpenApiAuthenticationExtension):
    """Three schemes, in two (writes) or three (reads) alternatives: the API key with the user's
    token, a trusted key with X-User-Id, or (reads only) the user's token alone."""

    target_class = SnowTraceAuthentication
    name = ["SnowTraceApiKey", "SnowTraceUserToken", "SnowTraceUserId"]

    def get_security_requirement(self, auto_schema):
        key, token, user_id = self.name
        alternatives = [{key: [], token: []}, {key: [], user_id: []}]
        if auto_schema.method in READ_METHODS or not settings.MATCHING_REQUIRE_API_KEY:
            alternatives.append({token: []})
        return alternatives

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": "The calling service's API key (`sbk_<8 hex>_<secret>`, or a key imported "
                "from SnowTrace with `create_api_key --from-env`).",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "The end user's token from SnowTrace's user service: HS256, audience "
                "`JWT_AUDIENCE`, `exp` required, the user id (a UUID) in `sub`.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": USER_HEADER,
                "description": "The acting user (1-64 of `A-Z a-z 0-9 _ . : @ -`), named by an API key that "
                "staff marked as a trusted service; with the user's token too, both must name the same user.",
            },
        ]
