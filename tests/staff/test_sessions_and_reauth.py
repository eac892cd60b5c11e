"""Staff sessions end when idle and at an absolute age; a bulk action over STAFF_REAUTH_BULK_OVER
searches, or a routing switch, asks for a recent sign-in first."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from matching.models import Search, SearchStatus
from snowbuddy.staff.sessions import SEEN_AT, SIGNED_IN_AT
from tests.console.conftest import OPERATORS, _staff, make_search
from tests.console.helpers import CHANGELIST, confirm_bulk, texts
from workflows.models import EngineRouting

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]
REAUTH = "/staff/sign-in-again/"


@pytest.fixture
def operator(django_user_model):
    return _staff(django_user_model, "olga-operator", OPERATORS)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


def age_session(client, **seconds_ago: float) -> None:
    session = client.session
    now = time.time()
    for key, ago in seconds_ago.items():
        session[{"signed_in": SIGNED_IN_AT, "seen": SEEN_AT}[key]] = now - ago
    session.save()


def test_an_idle_session_ends(operator_client, settings):
    assert operator_client.get("/admin/").status_code == 200
    age_session(operator_client, seen=settings.STAFF_SESSION_IDLE_SECONDS - 30)
    assert operator_client.get("/admin/").status_code == 200  # active again: the idle clock restarts
    assert time.time() - operator_client.session[SEEN_AT] < 30
    age_session(operator_client, seen=settings.STAFF_SESSION_IDLE_SECONDS + 1)
    response = operator_client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert "without activity" in response.content.decode()
    assert SESSION_KEY not in operator_client.session


def test_a_session_ends_at_its_absolute_age_however_active(operator_client, settings):
    assert settings.SESSION_COOKIE_AGE == settings.STAFF_SESSION_MAX_SECONDS
    age_session(operator_client, signed_in=settings.STAFF_SESSION_MAX_SECONDS + 1, seen=5)
    response = operator_client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert "minutes after sign-in" in response.content.decode()


def test_a_large_bulk_action_asks_for_a_recent_sign_in(operator_client, settings):
    settings.STAFF_REAUTH_BULK_OVER = 3
    searches = [make_search(status=SearchStatus.RUNNING) for _ in range(4)]
    age_session(operator_client, signed_in=settings.STAFF_REAUTH_SECONDS + 60, seen=1)

    # Up to N searches: no question asked.
    small = operator_client.post(reverse(CHANGELIST), {"action": "cancel", "_selected_action": [searches[0].pk]})
    assert small.status_code == 200 and "sb-confirm" in small.content.decode()

    # Over N: the sign-in-again page first, and nothing is cancelled, even with the confirmation posted.
    response = confirm_bulk(operator_client, searches, "cancel", reason="storm")
    assert response.status_code == 302 and response["Location"].startswith(REAUTH)
    assert "needs a sign-in within the last 15 minutes" in texts(response)
    assert not Search.objects.filter(status=SearchStatus.CANCELLED).exists()

    page = operator_client.get(response["Location"])
    assert 'name="password"' in page.content.decode() and "id_code" not in page.content.decode()
    wrong = operator_client.post(response["Location"], {"password": "nope"})
    assert "Wrong password" in wrong.content.decode()
    right = operator_client.post(response["Location"], {"password": "x-olga-operator-pw"})
    assert right.status_code == 302 and right["Location"] == reverse(CHANGELIST)

    done = confirm_bulk(operator_client, searches, "cancel", reason="storm")
    assert "Cancel: 4 done." in texts(done)
    assert Search.objects.filter(status=SearchStatus.CANCELLED).count() == 4


def test_a_routing_switch_asks_for_a_recent_sign_in(operator_client, settings):
    url = reverse("admin:matching_search_routing")
    age_session(operator_client, signed_in=settings.STAFF_REAUTH_SECONDS + 60, seen=1)
    response = operator_client.post(url, {"mode": "celery", "reason": "drill"})
    assert response.status_code == 302 and response["Location"] == f"{REAUTH}?next={url.replace('/', '%2F')}"
    assert not EngineRouting.objects.exclude(mode="environment").exists()
    operator_client.post(REAUTH, {"password": "x-olga-operator-pw", "next": url})
    response = operator_client.post(url, {"mode": "celery", "reason": "drill"})
    assert response.status_code == 302 and response["Location"] == reverse("admin:matching_search_dashboard")
    assert EngineRouting.objects.get().mode == "celery"


def test_single_sign_on_users_sign_in_again_at_the_idp(client, operator, settings):
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "snowbuddy.staff.oidc.StaffOIDCBackend"]
    client.force_login(operator, backend="snowbuddy.staff.oidc.StaffOIDCBackend")
    page = client.get(REAUTH + "?next=/admin/matching/search/").content.decode()
    assert 'href="/oidc/authenticate/?next=%2Fadmin%2Fmatching%2Fsearch%2F&amp;reauth=1"' in page
    assert 'name="password"' not in page
