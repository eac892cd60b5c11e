"""Every model is in the admin, and its pages render for staff and only for staff."""

import pytest
from django.contrib import admin
from django.urls import reverse

from matching.services.keys import api_key_create
from tests.helpers.bodies import BUDDY as PREFS
from tests.helpers.dispatch import stub_dispatch_send
from workflows.dispatch.submit import search_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="x-root-pw")
    client.force_login(user)
    return client


@pytest.fixture
def some_data(resorts, monkeypatch):
    stub_dispatch_send(monkeypatch)
    api_key_create(name="partner")
    return search_submit(seeker_id="owner-1", preferences=PREFS)


def test_every_model_of_ours_is_registered():
    from django.apps import apps

    ours = [m for app in ("matching", "workflows") for m in apps.get_app_config(app).get_models()]
    assert ours and all(admin.site.is_registered(model) for model in ours)


@pytest.mark.parametrize("model", [m for m in admin.site._registry if m._meta.app_label in ("matching", "workflows")])
def test_each_changelist_renders_for_a_superuser(superuser_client, some_data, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert superuser_client.get(url).status_code == 200


def test_a_search_page_shows_its_events(superuser_client, some_data):
    url = reverse("admin:matching_search_change", args=[some_data.pk])
    response = superuser_client.get(url)
    assert response.status_code == 200
    assert b"submitted" in response.content


def test_a_user_who_is_not_staff_cannot_open_the_admin(client, outsider, some_data):
    client.force_login(outsider)
    response = client.get(reverse("admin:matching_search_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
