"""Single sign-on through the company's OpenID Provider, on mozilla-django-oidc (docs/decisions.md).

The provider's endpoints come from its discovery document (OIDC_DISCOVERY_URL), fetched when first
needed and cached, so a password sign-in never waits on the IdP. The IdP's groups claim decides the
console groups at every sign-in (snowbuddy/staff/services.py); a user it gives none is refused.
"""

from __future__ import annotations

import hashlib
import logging
import time

import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from snowbuddy.staff.services import staff_sync_from_claims
from snowbuddy.staff.sessions import SIGNED_IN_AT

log = logging.getLogger(__name__)

DISCOVERY_CACHE_SECONDS = 3600
# mozilla-django-oidc's setting names → the discovery document's keys.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
OIDC_BACKEND = "snowbuddy.staff.oidc.StaffOIDCBackend"
REAUTH_PARAM = "reauth"


def discovery() -> dict:
    """The provider's discovery document (cached an hour)."""
    url = settings.OIDC_DISCOVERY_URL
    key = "staff:oidc-discovery:" + hashlib.sha256(url.encode()).hexdigest()[:16]
    document = cache.get(key)
    if document is None:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
        missing = [name for name in ENDPOINTS.values() if not document.get(name)]
        if missing:
            raise ImproperlyConfigured(f"OIDC_DISCOVERY_URL: the document names no {', '.join(missing)}")
        cache.set(key, document, DISCOVERY_CACHE_SECONDS)
    return document


def oidc_setting(attr: str, *args):
    if attr in ENDPOINTS:
        return discovery()[ENDPOINTS[attr]]
    return import_from_settings(attr, *args)


def staff_username(sub: str) -> str:
    """One local user per IdP subject (never matched by e-mail: a local account sharing an address
    must not be taken over)."""
    return ("oidc-" + sub)[:150]


class StaffOIDCBackend(OIDCAuthenticationBackend):
    """Endpoints resolved lazily: Django builds every backend for each password sign-in too."""

    def __init__(self, *args, **kwargs):
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    get_settings = staticmethod(oidc_setting)

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self):
        return oidc_setting("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self):
        return oidc_setting("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self):
        return oidc_setting("OIDC_OP_JWKS_ENDPOINT")

    def verify_claims(self, claims):
        return bool(claims.get("sub"))

    def describe_user_by_claims(self, claims):
        return f"subject {claims.get('sub')}"

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=staff_username(claims["sub"]))

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(staff_username(claims["sub"]))  # no usable password
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        # Applied at every sign-in, whatever the groups: removing someone in the IdP removes them here.
        return staff_sync_from_claims(user=user, claims=claims)


class StaffAuthenticationRequestView(OIDCAuthenticationRequestView):
    """The redirect to the provider; `?reauth=1` asks it for a fresh sign-in (prompt=login, max_age=0)."""

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    get_settings = staticmethod(oidc_setting)

    @property
    def OIDC_OP_AUTH_ENDPOINT(self):
        return oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")

    def get_extra_params(self, request):
        if request.GET.get(REAUTH_PARAM):
            return {"prompt": "login", "max_age": "0"}
        return {}

    def get(self, request):
        if not settings.OIDC_ENABLED:
            return HttpResponseRedirect(reverse("admin:login"))
        try:
            return super().get(request)
        except (requests.RequestException, ValueError, ImproperlyConfigured) as exc:
            log.warning("OIDC discovery failed: %s", exc)
            return HttpResponseRedirect(reverse("staff:sign-in-failed") + "?reason=provider")


class StaffAuthenticationCallbackView(OIDCAuthenticationCallbackView):
    """A user the groups claim gives no console group is not signed in: the not-allowed page."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request):
        try:
            return super().get(request)
        except requests.RequestException as exc:
            log.warning("OIDC token or userinfo request failed: %s", exc)
            return HttpResponseRedirect(reverse("staff:sign-in-failed") + "?reason=provider")

    def login_success(self):
        if not self.user.is_staff:
            log.warning("single sign-on refused: %s has no console group", self.user.get_username())
            if self.request.user.is_authenticated:
                auth.logout(self.request)
            return HttpResponseRedirect(reverse("staff:not-allowed"))
        response = super().login_success()
        # The library skips auth.login() when the same user signs in again (a re-authentication), so
        # user_logged_in does not fire: the sign-in time is renewed here.
        self.request.session[SIGNED_IN_AT] = time.time()
        return response
