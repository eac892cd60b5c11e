"""The sign-in page: the password form and the single sign-on button as configured, and an IdP that
cannot be reached."""

from __future__ import annotations

import pytest

from devtools.durable_local._http import free_port
from tests.console.conftest import OPERATORS, _staff

pytestmark = pytest.mark.django_db


def test_the_password_form_and_the_sso_button_follow_the_settings(client, settings, django_user_model):
    _staff(django_user_model, "olga", OPERATORS)
    settings.OIDC_ENABLED, settings.OIDC_PROVIDER_NAME = True, "Example SSO"
    settings.STAFF_PASSWORD_LOGIN = False
    page = client.get("/admin/login/?next=/admin/matching/search/").content.decode()
    assert 'id="login-form"' not in page and "Sign in with Example SSO" in page
    assert 'href="/oidc/authenticate/?next=/admin/matching/search/"' in page
    refused = client.post("/admin/login/", {"username": "olga", "password": "x-olga-pw"})
    assert refused.status_code == 403 and "_auth_user_id" not in client.session

    settings.STAFF_PASSWORD_LOGIN = True  # break-glass: both
    page = client.get("/admin/login/").content.decode()
    assert 'id="login-form"' in page and "Sign in with Example SSO" in page

    settings.OIDC_ENABLED = False  # `make run`: the password form alone
    page = client.get("/admin/login/").content.decode()
    assert 'id="login-form"' in page and "Sign in with" not in page
    assert client.post("/admin/login/", {"username": "olga", "password": "x-olga-pw"}).status_code == 302


def test_an_idp_that_cannot_be_reached_is_a_page_that_says_so(client, settings):
    settings.OIDC_ENABLED = True
    settings.OIDC_DISCOVERY_URL = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    settings.OIDC_TIMEOUT = 2
    response = client.get("/oidc/authenticate/?next=/admin/")
    assert response.status_code == 302 and response["Location"] == "/staff/sign-in-failed/?reason=provider"
    page = client.get(response["Location"])
    assert page.status_code == 401 and "could not be reached" in page.content.decode()
