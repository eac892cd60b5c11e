"""The TOTP second factor for password sign-in: enrolment through a QR code page, sign-in with a code
computed by pyotp from the enrolled secret, recovery codes, and who is asked for it."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pyotp
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.console.conftest import OPERATORS, REVIEWERS, _staff

pytestmark = [pytest.mark.django_db, pytest.mark.mfa]
OTP = "/staff/second-factor/"


def password_sign_in(username: str, password: str) -> Client:
    client = Client()
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def test_an_operator_enrols_with_the_qr_page_then_signs_in_with_a_code(django_user_model, settings):
    assert settings.STAFF_REQUIRE_MFA  # the default, kept on for this test
    _staff(django_user_model, "olga", OPERATORS)
    client = password_sign_in("olga", "x-olga-pw")

    # Signed in with a password only: every console page sends to the second factor first.
    response = client.get("/admin/matching/search/")
    assert response.status_code == 302 and response["Location"].startswith(OTP)
    page = client.get(response["Location"]).content.decode()
    qr = re.search(r'<div class="staff-qr">(<svg.*?</svg>)</div>', page, re.S).group(1)
    assert "<path" in qr and "style=" not in qr  # the QR code, inline SVG (no data: image for the CSP)
    secret = re.search(r'<code id="staff-otp-secret">([A-Z2-7]+)</code>', page).group(1)
    assert client.get("/admin/").status_code == 302  # still not through

    wrong = client.post(OTP, {"code": "000000", "next": "/admin/"})
    assert "does not match" in wrong.content.decode()
    throttle_passed("olga")
    done = client.post(OTP, {"code": pyotp.TOTP(secret).now(), "next": "/admin/"})
    codes = re.findall(r"<li><code>([0-9a-f]{10})</code></li>", done.content.decode())
    assert len(codes) == settings.STAFF_RECOVERY_CODES
    assert client.get("/admin/matching/search/").status_code == 200
    assert TOTPDevice.objects.get(user__username="olga").confirmed

    # The next sign-in asks for a code (the next time step's: the device refuses a code used once).
    client = password_sign_in("olga", "x-olga-pw")
    assert client.get("/admin/")["Location"].startswith(OTP)
    verify = client.get(OTP).content.decode()
    assert "staff-otp-verify" in verify and "staff-qr" not in verify  # no new enrolment
    assert "not valid" in client.post(OTP, {"code": "123456"}).content.decode()
    throttle_passed("olga")
    response = client.post(OTP, {"code": pyotp.TOTP(secret).at(time.time() + 30), "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200

    # A recovery code signs in once.
    client = password_sign_in("olga", "x-olga-pw")
    assert client.post(OTP, {"code": codes[0]}).status_code == 302
    assert client.get("/admin/").status_code == 200
    client = password_sign_in("olga", "x-olga-pw")
    assert "not valid" in client.post(OTP, {"code": codes[0]}).content.decode()
    assert client.get("/admin/").status_code == 302


def throttle_passed(username: str) -> None:
    """django-otp makes each failure's next try wait (1 s, 2 s, 4 s…): date the failures back as if it passed."""
    for model in (TOTPDevice, StaticDevice):  # a wrong code counts against every device it was tried on
        model.objects.filter(user__username=username).update(
            throttling_failure_timestamp=timezone.now() - timedelta(minutes=5)
        )


def test_a_reviewer_and_a_single_sign_on_user_are_not_asked(django_user_model, client, settings):
    _staff(django_user_model, "rita", REVIEWERS)
    assert password_sign_in("rita", "x-rita-pw").get("/admin/").status_code == 200

    # Signed in through the IdP (which runs its own MFA): straight in, even as an operator.
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "snowbuddy.staff.oidc.StaffOIDCBackend"]
    sso_operator = _staff(django_user_model, "oidc-ann", OPERATORS)
    client.force_login(sso_operator, backend="snowbuddy.staff.oidc.StaffOIDCBackend")
    assert client.get("/admin/").status_code == 200


def test_superusers_are_asked_too_and_the_switch_turns_it_off(django_user_model, settings):
    django_user_model.objects.create_superuser("root", password="x-root-pw")
    assert password_sign_in("root", "x-root-pw").get("/admin/")["Location"].startswith(OTP)
    settings.STAFF_REQUIRE_MFA = False
    assert password_sign_in("root", "x-root-pw").get("/admin/").status_code == 200
    assert get_user_model().objects.get(username="root").totpdevice_set.count() == 0
