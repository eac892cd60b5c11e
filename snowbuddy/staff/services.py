"""Writes of staff sign-in: the console groups from the IdP's claims, and the second factor's devices."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

OPERATORS, REVIEWERS = "Match operators", "Match reviewers"
CONSOLE_GROUPS = (OPERATORS, REVIEWERS)


def console_groups_from_claims(claims: dict) -> tuple[set[str], bool]:
    """(console group names, superuser?) that the IdP's groups claim gives."""
    raw = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    idp_groups = {raw} if isinstance(raw, str) else {str(g) for g in raw if isinstance(g, str | int)}
    superuser = bool(idp_groups & set(settings.OIDC_SUPERUSER_GROUPS))
    groups = set()
    if idp_groups & set(settings.OIDC_OPERATOR_GROUPS):
        groups.add(OPERATORS)
    if idp_groups & set(settings.OIDC_REVIEWER_GROUPS):
        groups.add(REVIEWERS)
    return groups, superuser


@transaction.atomic
def staff_sync_from_claims(*, user, claims: dict):
    """Set the user's console groups, superuser and staff flags from the claims (every sign-in)."""
    groups, superuser = console_groups_from_claims(claims)
    user.email = str(claims.get("email") or "")[:254]
    user.first_name = str(claims.get("given_name") or claims.get("name") or "")[:150]
    user.last_name = str(claims.get("family_name") or "")[:150]
    user.is_superuser = superuser
    user.is_staff = superuser or bool(groups)
    user.save()
    kept = user.groups.exclude(name__in=CONSOLE_GROUPS)  # groups the console does not map stay
    user.groups.set([*kept, *Group.objects.filter(name__in=groups)])
    return user


def needs_second_factor(user) -> bool:
    """Operators and superusers (who can act) need one; reviewers only read."""
    return user.is_superuser or user.groups.filter(name=OPERATORS).exists()


@transaction.atomic
def staff_totp_enrolment_start(*, user) -> TOTPDevice:
    """An unconfirmed TOTP device (a new secret each time enrolment starts over)."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def staff_totp_enrolment_confirm(*, user, device: TOTPDevice) -> list[str]:
    """Confirm the device the user proved with a code; new recovery codes (shown once), older
    devices of the user removed."""
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return staff_recovery_codes_renew(user=user)


@transaction.atomic
def staff_recovery_codes_renew(*, user) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    static = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [secrets.token_hex(5) for _ in range(settings.STAFF_RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=code) for code in codes)
    return codes
