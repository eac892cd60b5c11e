"""API keys in the console: the dashboard warns of keys about to expire, and the admin creates keys
with an expiry and a note, two at most in use for one client."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from matching.models import ApiClientKey
from matching.services.keys import api_key_create, api_key_revoke
from tests.console.helpers import messages_of

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:matching_search_dashboard"


def _key(name: str, *, days: float, note: str = "") -> ApiClientKey:
    key, _ = api_key_create(name=name, note=note)
    ApiClientKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=days))
    return key


def _expiring_card(client) -> str:
    page = client.get(reverse(DASHBOARD)).content.decode()
    start = page.index('id="sb-expiring-keys"')
    return page[start : page.index("</div>", start)]


def test_the_dashboard_lists_keys_near_expiry_soonest_first(reviewer_client, settings):
    settings.API_KEY_EXPIRY_WARNING_DAYS = 14
    soon = _key("partner-a", days=3, note="held by partner A's ops team")
    lapsed = _key("partner-b", days=-2)
    later = _key("partner-c", days=30)
    long_lapsed = _key("partner-d", days=-20)
    revoked = _key("partner-e", days=1)
    api_key_revoke(key=revoked)
    api_key_create(name="never-expires")
    card = _expiring_card(reviewer_client)
    assert "API keys expiring within 14 days (2)" in card
    assert card.index(lapsed.prefix) < card.index(soon.prefix)  # soonest (here: already) first
    assert "held by partner A&#x27;s ops team" in card
    assert "expired" in card.split(lapsed.prefix)[1].split("</tr>")[0]
    for hidden in (later, long_lapsed, revoked):
        assert hidden.prefix not in card
    settings.API_KEY_EXPIRY_WARNING_DAYS = 60
    assert later.prefix in _expiring_card(reviewer_client)


def test_the_dashboard_says_when_no_key_is_near_expiry(reviewer_client):
    _key("partner-c", days=300)
    assert "No API key expires within 14 days." in _expiring_card(reviewer_client)


def test_staff_who_may_not_see_keys_get_no_key_card(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x-viewer-pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_search"))
    client.force_login(user)
    _key("partner-a", days=3)
    page = client.get(reverse(DASHBOARD))
    assert page.status_code == 200
    assert b"sb-expiring-keys" not in page.content


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x-root-pw"))
    return client


def test_the_admin_creates_a_key_with_an_expiry_and_a_note(superuser_client, settings):
    add = reverse("admin:matching_apiclientkey_add")
    # The form reads times in the staff member's zone (STAFF_TIME_ZONE when they chose none).
    expiry = timezone.localtime(timezone.now() + timedelta(days=90), ZoneInfo(settings.STAFF_TIME_ZONE))
    response = superuser_client.post(
        add,
        {"name": "snowtrace", "expires_at_0": f"{expiry:%Y-%m-%d}", "expires_at_1": f"{expiry:%H:%M:%S}",
         "note": "in the SnowTrace vault"},
    )  # fmt: skip
    assert response.status_code == 302
    key = ApiClientKey.objects.get()
    assert (key.name, key.note) == ("snowtrace", "in the SnowTrace vault")
    assert abs(key.expires_at - expiry) < timedelta(seconds=1)
    assert any(level == "warning" and f"sbk_{key.prefix}_" in text for level, text in messages_of(response))
    page = superuser_client.get(reverse("admin:matching_apiclientkey_changelist")).content.decode()
    assert "in use" in page


def test_the_admin_refuses_a_third_live_key_or_a_past_expiry(superuser_client):
    add = reverse("admin:matching_apiclientkey_add")
    api_key_create(name="snowtrace")
    api_key_create(name="snowtrace")
    response = superuser_client.post(add, {"name": "snowtrace", "note": ""})
    assert response.status_code == 200
    assert "snowtrace already has 2 keys in use" in response.context["adminform"].form.errors["name"][0]
    past = timezone.now() - timedelta(days=1)
    response = superuser_client.post(
        add, {"name": "other", "expires_at_0": f"{past:%Y-%m-%d}", "expires_at_1": f"{past:%H:%M:%S}"}
    )
    assert response.context["adminform"].form.errors["expires_at"] == ["A new key's expiry must be in the future."]
    assert ApiClientKey.objects.count() == 2


def test_renaming_a_key_cannot_give_a_client_a_third_live_key(superuser_client):
    api_key_create(name="snowtrace")
    api_key_create(name="snowtrace")
    other, _ = api_key_create(name="partner")
    change = reverse("admin:matching_apiclientkey_change", args=[other.pk])
    response = superuser_client.post(change, {"name": "snowtrace", "note": "moved"})
    assert "snowtrace already has 2 keys in use" in response.context["adminform"].form.errors["name"][0]
    assert superuser_client.post(change, {"name": "partner", "note": "kept"}).status_code == 302
    assert ApiClientKey.objects.get(pk=other.pk).note == "kept"
