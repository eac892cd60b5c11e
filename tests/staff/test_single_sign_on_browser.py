"""Single sign-on in a real browser through a real OpenID Provider's own login and consent pages:
the IdP's groups claim decides what each person may do in the console, at every sign-in."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from matching.models import Search, SearchStatus
from snowbuddy.staff.sessions import SIGNED_IN_AT
from tests.console.conftest import OPERATORS, REVIEWERS, ensure_console_groups, make_search

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def sign_in(browser, base: str, login: str):
    """A fresh browser (no IdP session): the console's sign-in button, the IdP's login page, its consent page."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/admin/")
    assert page.locator("#login-form").count() == 0  # STAFF_PASSWORD_LOGIN=false: no password form
    page.click("#staff-sso")
    page.wait_for_selector("input[name=login]")  # the provider's own login page
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "whatever-the-idp-checks")
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("input[name=prompt][value=consent]").count():
        with page.expect_navigation():
            page.click("button[type=submit]")  # the provider's consent page: Continue
    page.wait_for_url(lambda url: url.startswith(base))
    return context, page


def _user(username: str):
    connection.close()  # see what the live server's threads committed
    return get_user_model().objects.get(username=username)


def test_the_idp_groups_claim_decides_who_may_do_what(oidc_provider, live_server, browser):
    ensure_console_groups()
    base = live_server.url
    flagged = make_search(status=SearchStatus.FAILED, seeker_id="skier-flagged", drift_flagged=True)
    oidc_provider.set_accounts({
        "ann": {"email": "ann@example.com", "name": "Ann Operator", "groups": ["snowbuddy-operators", "other"]},
        "rex": {"email": "rex@example.com", "name": "Rex Reviewer", "groups": ["snowbuddy-reviewers"]},
        "nora": {"email": "nora@example.com", "name": "Nora Nobody", "groups": ["marketing"]},
    })  # fmt: skip

    # An operator signs in and acts.
    ann_context, page = sign_in(browser, base, "ann")
    page.wait_for_selector("#site-name")
    ann = _user("oidc-ann")
    assert ann.is_staff and not ann.is_superuser and ann.email == "ann@example.com"
    assert list(ann.groups.values_list("name", flat=True)) == [OPERATORS]
    page.goto(f"{base}/admin/matching/search/{flagged.pk}/change/")
    page.click("#sb-actions a:has-text('Acknowledge flag')")
    page.wait_for_selector("#sb-confirm-what")
    page.fill("#id_reason", "drift explained: DynamoDB was restored")
    page.click("#sb-confirm")
    page.wait_for_selector("ul.messagelist")
    assert f"{str(flagged.pk)[:8]}: done" in page.inner_text("ul.messagelist")
    connection.close()
    assert not Search.objects.get(pk=flagged.pk).drift_flagged

    # Asked to sign in again before a sensitive action: the IdP's login page again (prompt=login).
    session = SessionStore(next(c["value"] for c in ann_context.cookies() if c["name"] == "sessionid"))
    session[SIGNED_IN_AT] = time.time() - 3600
    session.save()
    page.goto(f"{base}/staff/sign-in-again/?next=/admin/matching/search/routing/")
    page.click("#staff-sso")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", "ann")
    page.fill("input[name=password]", "whatever-the-idp-checks")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/matching/search/routing/")
    connection.close()
    assert time.time() - SessionStore(session.session_key)[SIGNED_IN_AT] < 60
    ann_context.close()

    # A reviewer sees everything and can act on nothing.
    context, page = sign_in(browser, base, "rex")
    page.wait_for_selector("#site-name")
    assert list(_user("oidc-rex").groups.values_list("name", flat=True)) == [REVIEWERS]
    page.goto(f"{base}/admin/matching/search/")
    assert "skier-flagged" in page.inner_text("#result_list")
    assert page.locator("select[name=action]").count() == 0
    page.goto(f"{base}/admin/matching/search/{flagged.pk}/change/")
    assert page.locator("#sb-actions").count() == 0
    context.close()

    # Someone the claim gives no console group is refused with a page that says why.
    context, page = sign_in(browser, base, "nora")
    page.wait_for_selector("#staff-not-allowed")
    assert "/staff/not-allowed/" in page.url
    assert "no console group" in page.inner_text("#staff-not-allowed")
    assert not _user("oidc-nora").is_staff
    page.goto(f"{base}/admin/")
    page.wait_for_selector("#staff-sso")  # not signed in: back at the sign-in page
    context.close()

    # The operator group is removed in the IdP: at the next sign-in the operator is refused.
    oidc_provider.set_accounts({"ann": {"email": "ann@example.com", "groups": ["other"]}})
    context, page = sign_in(browser, base, "ann")
    page.wait_for_selector("#staff-not-allowed")
    ann = _user("oidc-ann")
    assert not ann.is_staff and not ann.groups.filter(name__in=[OPERATORS, REVIEWERS]).exists()
    context.close()
