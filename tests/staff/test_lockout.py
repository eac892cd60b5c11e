"""Lockout after repeated failed sign-ins (django-axes), its release, the sign-in records in the admin,
and the client address taken from the configured proxy header only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.test import Client, RequestFactory
from django.utils import timezone

from snowbuddy.staff.client_ip import client_ip
from tests.console.conftest import OPERATORS, _staff

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str, **headers):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"}, **headers)


def test_the_username_is_locked_after_the_configured_failures_then_released(django_user_model, settings):
    limit = settings.STAFF_LOCKOUT_FAILURES
    assert settings.AXES_FAILURE_LIMIT == limit == 5
    _staff(django_user_model, "olga", OPERATORS)
    for n in range(1, limit):
        response = sign_in(Client(REMOTE_ADDR=f"192.0.2.{n}"), "olga", "guess")
        assert response.status_code == 200 and "errornote" in response.content.decode()  # the form again
    locked = sign_in(Client(REMOTE_ADDR="192.0.2.99"), "olga", "guess")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    # The right password from yet another address is refused too: the username itself is locked.
    right = sign_in(Client(REMOTE_ADDR="198.51.100.7"), "olga", "x-olga-pw")
    assert right.status_code == 429
    assert AccessFailureLog.objects.filter(username="olga").count() >= limit

    # The cool-off (STAFF_LOCKOUT_MINUTES) passes: the attempts are dated back beyond it.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=settings.STAFF_LOCKOUT_MINUTES + 1))
    released = sign_in(Client(REMOTE_ADDR="198.51.100.7"), "olga", "x-olga-pw")
    assert released.status_code == 302 and released["Location"] == "/admin/"
    assert AccessLog.objects.filter(username="olga", ip_address="198.51.100.7").exists()


def test_the_source_address_is_locked_whatever_the_usernames(django_user_model, settings):
    _staff(django_user_model, "olga", OPERATORS)
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(settings.STAFF_LOCKOUT_FAILURES):
        sign_in(attacker, f"guess-{n}", "guess")
    assert sign_in(attacker, "olga", "x-olga-pw").status_code == 429
    assert sign_in(Client(REMOTE_ADDR="198.51.100.8"), "olga", "x-olga-pw").status_code == 302


def test_behind_a_proxy_only_its_header_entry_counts(django_user_model, settings):
    settings.STAFF_CLIENT_IP_HEADER = "X-Forwarded-For"
    settings.STAFF_TRUSTED_PROXY_COUNT = 1
    _staff(django_user_model, "olga", OPERATORS)
    proxy = Client(REMOTE_ADDR="10.0.0.2")  # every request arrives from the proxy
    for n in range(settings.STAFF_LOCKOUT_FAILURES):
        # The client forges a new address each time in front of the one the proxy appends.
        sign_in(proxy, f"guess-{n}", "guess", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.9")
    assert sign_in(proxy, "olga", "x-olga-pw", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.9").status_code == 429
    assert sign_in(proxy, "olga", "x-olga-pw", HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}


def test_client_address_rules(settings):
    factory = RequestFactory()
    settings.STAFF_CLIENT_IP_HEADER = ""
    assert client_ip(factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1")) == "10.0.0.2"
    settings.STAFF_CLIENT_IP_HEADER = "X-Forwarded-For"
    settings.STAFF_TRUSTED_PROXY_COUNT = 2
    request = factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.0.0.1")
    assert client_ip(request) == "203.0.113.9"
    assert client_ip(factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")) == "unknown"


def test_the_sign_in_records_are_in_the_admin_for_permitted_staff_only(django_user_model, client):
    operator = _staff(django_user_model, "olga", OPERATORS)
    sign_in(Client(REMOTE_ADDR="192.0.2.1"), "olga", "wrong")
    sign_in(Client(REMOTE_ADDR="192.0.2.2"), "olga", "x-olga-pw")
    client.force_login(operator)
    assert client.get("/admin/axes/accesslog/").status_code == 403
    assert client.get("/admin/axes/accessfailurelog/").status_code == 403
    root = django_user_model.objects.create_superuser("root", password="x-root-pw")
    client.force_login(root)
    successes = client.get("/admin/axes/accesslog/").content.decode()
    failures = client.get("/admin/axes/accessfailurelog/").content.decode()
    assert "olga" in successes and "192.0.2.2" in successes
    assert "olga" in failures and "192.0.2.1" in failures
