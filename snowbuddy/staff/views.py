"""Staff sign-in pages: the sign-in form or button, the not-allowed page, the second factor's
enrolment and check, and the re-authentication prompt before a sensitive action.

No inline style or script on these pages (the console's content security policy): their CSS is
staff/staff.css.
"""

from __future__ import annotations

import time

import django_otp
import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import admin, auth
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp.plugins.otp_totp.models import TOTPDevice

from snowbuddy.staff.middleware import signed_in_with_password
from snowbuddy.staff.services import (
    staff_totp_enrolment_confirm,
    staff_totp_enrolment_start,
)
from snowbuddy.staff.sessions import SIGNED_IN_AT

ENROLLING = "staff_totp_enrolling"  # the unconfirmed device's id, in the session


def _next(request, default: str = "/admin/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, "next": _next(request), **extra}


def provider_name() -> str:
    """The IdP as the sign-in pages name it: OIDC_PROVIDER_NAME as configured, else the company's
    account in the reader's language."""
    return settings.OIDC_PROVIDER_NAME or _("the company account")


def sso_context() -> dict:
    return {
        "oidc_enabled": settings.OIDC_ENABLED,
        "password_login": settings.STAFF_PASSWORD_LOGIN,
        "provider_name": provider_name(),
    }


@sensitive_post_parameters()
@csrf_protect
@never_cache
def login(request):
    """The admin's sign-in: the password form (if STAFF_PASSWORD_LOGIN) and the single sign-on button."""
    if not settings.STAFF_PASSWORD_LOGIN:
        if request.method == "POST":
            raise PermissionDenied("password sign-in is off (STAFF_PASSWORD_LOGIN=false)")
        return TemplateResponse(request, "staff/login.html", _context(request, _("Sign in"), **sso_context()))
    return admin.site.login(request, extra_context=sso_context())


def _code_list(names) -> str:
    """Group names as "<code>a</code>, <code>b</code>" (one placeholder in the translated sentence)."""
    return format_html_join(", ", "<code>{}</code>", ((name,) for name in names))


@never_cache
def not_allowed(request):
    """The IdP signed the user in, but its groups claim gives no console group."""
    context = _context(
        request,
        _("Not allowed"),
        provider_name=provider_name(),
        groups_claim=settings.OIDC_GROUPS_CLAIM,
        operator_groups=_code_list(settings.OIDC_OPERATOR_GROUPS),
        reviewer_groups=_code_list(settings.OIDC_REVIEWER_GROUPS),
    )
    return TemplateResponse(request, "staff/not_allowed.html", context, status=403)


@never_cache
def sign_in_failed(request):
    context = _context(request, _("Sign-in failed"), provider_problem=request.GET.get("reason") == "provider",
                       **sso_context())  # fmt: skip
    return TemplateResponse(request, "staff/sign_in_failed.html", context, status=401)


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )

    def clean_code(self):
        return self.cleaned_data["code"].strip().replace(" ", "").lower()


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as inline SVG markup (no data: image: the content security policy allows none)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


@login_required(login_url="/admin/login/")
@never_cache
def otp(request):
    """Enrol an authenticator app (QR code, then a code from it, then recovery codes), or, once
    enrolled, check a code from it or a recovery code."""
    user = request.user
    target = _next(request)
    if user.is_verified():
        return HttpResponseRedirect(target)
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        form = CodeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            device = django_otp.match_token(user, form.cleaned_data["code"])
            if device is not None:
                django_otp.login(request, device)
                return HttpResponseRedirect(target)
            form.add_error("code", _("That code is not valid (or was used already). Try the next one."))
        return TemplateResponse(request, "staff/otp_verify.html", _context(request, _("Second factor"), form=form))

    device = TOTPDevice.objects.filter(user=user, confirmed=False, pk=request.session.get(ENROLLING)).first()
    if device is None:
        device = staff_totp_enrolment_start(user=user)
        request.session[ENROLLING] = device.pk
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"]):
            codes = staff_totp_enrolment_confirm(user=user, device=device)
            request.session.pop(ENROLLING, None)
            django_otp.login(request, device)
            context = _context(request, _("Recovery codes"), codes=codes, continue_to=target)
            return TemplateResponse(request, "staff/recovery_codes.html", context)
        form.add_error("code", _("That code does not match: check the phone's clock and type the current code."))
    context = _context(request, _("Set up a second factor"), form=form, qr=mark_safe(qr_svg(device.config_url)),  # noqa: S308 (qrcode's own SVG of our URI)
                       secret=device.bin_key.hex(), base32=_base32(device.bin_key))  # fmt: skip
    return TemplateResponse(request, "staff/otp_enrol.html", context)


def _base32(key: bytes) -> str:
    import base64

    return base64.b32encode(key).decode().rstrip("=")


class ReauthForm(forms.Form):
    password = forms.CharField(
        label=gettext_lazy("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    code = forms.CharField(label=gettext_lazy("Code from your authenticator app"), required=False, max_length=16,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}))  # fmt: skip


@sensitive_post_parameters()
@login_required(login_url="/admin/login/")
@never_cache
def reauth(request):
    """Sign in again before a sensitive action: the password (and a code when the user has a second
    factor), or through the IdP with a fresh login there."""
    user = request.user
    target = _next(request)
    if not signed_in_with_password(request):
        sso = reverse("oidc_authentication_init") + "?" + urlencode({"next": target, "reauth": "1"})
        context = _context(request, _("Sign in again"), sso_url=sso, provider_name=provider_name(),
                           reauth_minutes=settings.STAFF_REAUTH_SECONDS // 60)  # fmt: skip
        return TemplateResponse(request, "staff/reauth.html", context)
    has_totp = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    form = ReauthForm(request.POST or None)
    if not has_totp:
        del form.fields["code"]
    if request.method == "POST" and form.is_valid():
        checked = auth.authenticate(request, username=user.get_username(), password=form.cleaned_data["password"])
        if checked is None or checked.pk != user.pk:
            form.add_error("password", _("Wrong password."))
        elif has_totp and django_otp.match_token(user, form.cleaned_data.get("code", "").replace(" ", "")) is None:
            form.add_error("code", _("That code is not valid."))
        else:
            request.session[SIGNED_IN_AT] = time.time()
            return HttpResponseRedirect(target)
    return TemplateResponse(
        request,
        "staff/reauth.html",
        _context(request, _("Sign in again"), form=form, reauth_minutes=settings.STAFF_REAUTH_SECONDS // 60),
    )
