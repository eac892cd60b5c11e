"""Who may do what: reviewers read, operators act, each action behind its own permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from matching.admin.actions import ACTIONS
from matching.models import Engine, Search, StaffAction
from tests.console.conftest import make_search
from tests.console.helpers import CHANGELIST, act_url, confirm_bulk, confirm_single

pytestmark = pytest.mark.django_db


def test_a_reviewer_sees_no_action_on_the_list_or_the_search_page(reviewer_client):
    search = make_search(status="failed")
    listing = reviewer_client.get(reverse(CHANGELIST))
    assert listing.status_code == 200
    assert listing.context["action_form"] is None  # no actions at all: no checkbox column, no dropdown
    page = reviewer_client.get(reverse("admin:matching_search_change", args=[search.pk]))
    assert page.status_code == 200
    assert 'id="sb-actions"' not in page.content.decode() and "/act/" not in page.content.decode()


@pytest.mark.parametrize("key", sorted(ACTIONS))
def test_a_reviewers_forged_post_is_refused_for_every_action(reviewer_client, key):
    search = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    assert confirm_single(reviewer_client, search, key, decision="reject").status_code == 403
    assert reviewer_client.get(act_url(search, key)).status_code == 403
    assert confirm_bulk(reviewer_client, [search], key, decision="reject").status_code == 403
    assert not StaffAction.objects.exists()
    assert Search.objects.get(pk=search.pk).status == "awaiting_vetting"


@pytest.mark.parametrize("bulk_name", ["approve_vetting", "reject_vetting"])
def test_the_vetting_shortcuts_are_refused_to_a_reviewer(reviewer_client, bulk_name):
    search = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    assert confirm_bulk(reviewer_client, [search], bulk_name, decision="reject").status_code == 403


def test_a_reviewer_may_not_switch_the_routing(reviewer_client):
    assert reviewer_client.get(reverse("admin:matching_search_routing")).status_code == 200
    response = reviewer_client.post(reverse("admin:matching_search_routing"), {"mode": "celery", "reason": "x"})
    assert response.status_code == 403 and not StaffAction.objects.exists()


def test_the_dashboard_shows_a_reviewer_no_approve_buttons(reviewer_client):
    make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    page = reviewer_client.get(reverse("admin:matching_search_dashboard")).content.decode()
    assert "Pending vetting, by deadline (1)" in page and "/act/intervene/" not in page


def test_an_operator_sees_the_actions_that_apply(operator_client):
    search = make_search(status="failed", engine=Engine.CELERY)
    page = operator_client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    for key in ("retry", "rerun_durable", "export_csv", "export_json"):
        assert act_url(search, key) in page
    for key in ("cancel", "intervene", "rerun_celery", "acknowledge"):
        assert act_url(search, key) not in page
    listing = operator_client.get(reverse(CHANGELIST))
    offered = {name for name, _ in listing.context["action_form"].fields["action"].choices if name}
    assert offered == set(ACTIONS) | {"approve_vetting", "reject_vetting"}


@pytest.mark.parametrize("key", sorted(ACTIONS))
def test_each_action_needs_its_own_permission(client, django_user_model, key):
    spec = ACTIONS[key]
    user = django_user_model.objects.create_user("solo", password="x-solo-pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_search"), Permission.objects.get(codename=spec.permission)
    )
    client.force_login(user)
    search = make_search(status="failed")
    assert client.get(act_url(search, key)).status_code == 200
    others = [k for k, s in ACTIONS.items() if s.permission != spec.permission]
    assert all(client.get(act_url(search, other)).status_code == 403 for other in others)


def test_nobody_saves_or_deletes_a_search_from_the_console(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x-root-pw")
    client.force_login(root)
    search = make_search(status="running")
    page = client.get(reverse("admin:matching_search_change", args=[search.pk])).content.decode()
    assert 'name="_save"' not in page and "deletelink" not in page
    url = reverse("admin:matching_search_change", args=[search.pk])
    assert client.post(url, {"status": "succeeded"}).status_code == 403
    assert client.post(reverse("admin:matching_search_delete", args=[search.pk]), {"post": "yes"}).status_code == 403
    assert Search.objects.get(pk=search.pk).status == "running"


@pytest.mark.parametrize(
    "name",
    ["workflowexecution", "executiontimelineentry", "syncwatermark", "searchdispatch", "webhookdelivery",
     "enginerouting", "searchevent", "searchresult", "staffaction"],
)  # fmt: skip
def test_the_mirror_and_audit_pages_are_read_only_even_for_a_superuser(client, django_user_model, name):
    from django.apps import apps
    from django.contrib import admin

    root = django_user_model.objects.create_superuser("root", password="x-root-pw")
    model = next(m for m in apps.get_models() if m._meta.model_name == name)
    model_admin = admin.site._registry[model]
    request = type("R", (), {"user": root})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_someone_who_is_not_staff_is_sent_to_the_login_page(client, outsider):
    client.force_login(outsider)
    for url in (reverse("admin:matching_search_dashboard"), reverse(CHANGELIST)):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
