"""The staff console in a real browser (Debian's Chromium driven by Playwright) against a real server.

pytest-django's live server runs the console on the test database; the local durable stack runs
the durable engine, so an operator's approval of a pending vetting request travels the whole way
(Durable API → Lambda emulator → signed callback) and comes back as a finished search. The scripts
run once in English (an operator on UTC) and once in Traditional Chinese (in Asia/Taipei); in Chinese
no English string of the project's catalogue may be left on a page. Screenshots go to
var/screenshots/<time>/<language>/ (printed at the end).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.db import connection
from django.utils import translation
from django.utils.translation import gettext

from devtools.durable_local.stack import LocalDurableStack, StackConfig
from matching.admin.actions import ACTIONS
from matching.admin.words import outcome_words, result_words
from matching.management.demo_profiles import demo_profiles
from matching.models import Engine, Search, SearchStatus, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.console.catalogue import VISIBLE_TEXT_JS, english_left
from tests.console.conftest import _staff, make_search
from tests.helpers.bodies import E2E_COACH as COACH_SEARCH
from tests.helpers.dispatch import stub_dispatch_send
from tests.helpers.durable import point_console_at_stack
from tests.helpers.polling import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def durable_stack(live_server, tmp_path_factory):
    config = StackConfig.for_tests(
        tmp_path_factory.mktemp("console-stack"), console_base_url=live_server.url, globalcoach_mode="staff"
    )
    with LocalDurableStack(config) as stack:
        yield stack


@pytest.fixture
def console(durable_stack, settings, monkeypatch, resorts):
    point_console_at_stack(durable_stack.env, settings, monkeypatch)
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(400, resort_regions(), seed=21)
    )
    return durable_stack


@pytest.fixture(scope="module")
def shots_dir(request) -> Path:
    folder = ROOT / "var" / "screenshots" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    # Printed past pytest's output capture, so `make test` shows where the screenshots are.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nconsole screenshots: {folder}")


def _fresh(search_id) -> Search:
    connection.close()  # see what the live server's threads committed
    return Search.objects.get(pk=search_id)


class CspWatch:
    """Records every content-security-policy violation a page reports: Chromium's console message
    ("Refused to …") and the page's `securitypolicyviolation` events, with the page they were on."""

    EVENT_SCRIPT = """document.addEventListener("securitypolicyviolation", (e) => window.sbCspViolation(
        `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));"""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def watch(self, page):
        page.expose_function("sbCspViolation", lambda text: self.violations.append(f"{page.url}: {text}"))
        page.add_init_script(self.EVENT_SCRIPT)
        page.on("console", self._console(page))
        return page

    def _console(self, page):
        def record(message) -> None:
            if "Content Security Policy" in message.text:
                self.violations.append(f"{page.url}: console {message.type}: {message.text}")

        return record


@pytest.fixture
def csp() -> CspWatch:
    return CspWatch()


def login(browser, base: str, username: str, password: str, locale: str = "en-US", csp: CspWatch | None = None):
    """A fresh browser context whose Accept-Language is `locale` (the console's first guess); with
    `csp`, every content-security-policy violation on its pages is recorded."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(20_000)
    if csp is not None:
        csp.watch(page)
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def choose(page, language: str, time_zone: str) -> None:
    """The header's switch: a plain form, kept for this staff member."""
    page.select_option("#id_sb-language", language)
    page.select_option("#id_sb-time_zone", time_zone)
    page.click("#sb-preference-apply")
    page.wait_for_selector(f"html[lang='{language}']")


def no_english_left(page, where: str, language: str) -> None:
    """On a Traditional Chinese page, no English string of the project's catalogue is left."""
    if language == "zh-hant":
        left = english_left(page.evaluate(VISIBLE_TEXT_JS))
        assert left == [], f"{where} ({page.url}): {left}"


def act(page, label: str, reason: str, shot: Path | None = None, language: str = "en", **choose: str):
    """Press an action button on the search page, fill the confirmation, confirm."""
    page.click(f"#sb-actions a:has-text('{label}')")
    page.wait_for_selector("#sb-confirm-what")
    for value in choose.values():
        page.check(f"input[value='{value}']")
    page.fill("#id_reason", reason)
    if shot:
        page.screenshot(path=str(shot), full_page=True)
    no_english_left(page, f"the {label} confirmation", language)
    page.click("#sb-confirm")
    page.wait_for_selector("ul.messagelist")
    no_english_left(page, f"the messages after {label}", language)
    return page.inner_text("ul.messagelist")


def said(search_id, code: str, **params) -> str:
    """The message line the console shows for one search's result, in the active language."""
    return gettext("Search %(id)s: %(outcome)s: %(message)s") % {
        "id": str(search_id)[:8],
        "outcome": outcome_words("done"),
        "message": result_words(code, params, ""),
    }


# Each language with the zone its operator chooses: the same data read in Taipei and in UTC.
SETTINGS = {"en": ("en-US", "UTC", "UTC+0000"), "zh-hant": ("zh-TW", "Asia/Taipei", "UTC+0800")}


@pytest.mark.parametrize("language", list(SETTINGS))
def test_an_operator_works_the_console_and_a_reviewer_finds_no_action(
    console, live_server, owner, browser, shots_dir, django_user_model, language, csp
):
    base = live_server.url
    locale, zone, offset = SETTINGS[language]
    shots = shots_dir / language
    shots.mkdir(exist_ok=True)
    running = make_search(status=SearchStatus.RUNNING, engine=Engine.CELERY, seeker_id="skier-running")
    failed = make_search(status=SearchStatus.FAILED, engine=Engine.CELERY, seeker_id="skier-failed",
                         error="internal error: OperationalError")  # fmt: skip
    answer = owner.post("/matching/searches", COACH_SEARCH)
    assert answer.status_code == 202 and answer.json()["engine"] == "durable"
    vetted = answer.json()["search_id"]
    wait_for(lambda: _fresh(vetted).status == SearchStatus.AWAITING_VETTING, timeout=90, message="vetting wait")
    _staff(django_user_model, "olga", "Match operators")
    _staff(django_user_model, "rita", "Match reviewers")

    # The operator's browser asks for English; she picks her language and zone in the header.
    page = login(browser, base, "olga", "x-olga-pw", csp=csp)
    choose(page, language, zone)
    page.screenshot(path=str(shots / "01-admin-index.png"), full_page=True)

    with translation.override(language):
        # The list, filtered to running searches; it fits a 1366 px screen.
        page.goto(f"{base}/admin/matching/search/")
        no_english_left(page, "the list", language)
        page.click(f"#changelist-filter a:has-text('{SearchStatus.RUNNING.label}')")
        page.wait_for_url(re.compile(r"status__exact=running"))
        assert "skier-running" in page.inner_text("#result_list")
        assert "skier-failed" not in page.inner_text("#result_list")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        no_english_left(page, "the filtered list", language)
        page.screenshot(path=str(shots / "02-list-filtered-running.png"), full_page=True)

        # Open it and cancel it.
        page.click(f"#result_list a:has-text('{str(running.pk)[:8]}')")
        page.wait_for_selector("#sb-actions")
        no_english_left(page, "the search page", language)
        page.screenshot(path=str(shots / "03-running-search.png"), full_page=True)
        message = act(page, str(ACTIONS["cancel"].label), "seeker asked us to stop",
                      shots / "04-cancel-confirmation.png", language)  # fmt: skip
        assert said(running.pk, "cancelled_celery") in message
        assert str(SearchStatus.CANCELLED.label) in page.inner_text("h1")
        # Every time of the timeline is in the zone she chose, and says so.
        times = page.locator(".sb-timeline td.sb-t:first-child").all_inner_texts()
        assert times and all(t.endswith(offset) for t in times), times
        page.screenshot(path=str(shots / "05-cancelled.png"), full_page=True)
        assert _fresh(running.pk).status == SearchStatus.CANCELLED

        # The pending vetting request, from the dashboard's inbox: approve every candidate.
        page.goto(f"{base}/admin/matching/search/dashboard/")
        no_english_left(page, "the dashboard", language)
        page.screenshot(path=str(shots / "06-dashboard.png"), full_page=True)
        assert str(vetted)[:8] in page.inner_text("#sb-vetting")
        assert page.inner_text("#sb-vetting tbody tr td:nth-child(4)").endswith(offset)
        page.click(f"#sb-vetting a[href*='{vetted}'][href*='approve_all']")
        page.wait_for_selector("#sb-confirm-what")
        page.fill("#id_reason", "certificates checked by phone")
        no_english_left(page, "the approve confirmation", language)
        page.screenshot(path=str(shots / "07-approve-confirmation.png"), full_page=True)
        page.click("#sb-confirm")
        page.wait_for_selector("ul.messagelist")
        no_english_left(page, "the messages after approving", language)
        assert said(vetted, "approved_all_durable") in page.inner_text("ul.messagelist")
        wait_for(lambda: _fresh(vetted).status == SearchStatus.SUCCEEDED, timeout=90, message="the signed callback")
        page.goto(f"{base}/admin/matching/search/{vetted}/change/")
        assert str(SearchStatus.SUCCEEDED.label) in page.inner_text("h1")
        assert page.locator("#sb-results tbody tr").count() == _fresh(vetted).result_count > 0
        no_english_left(page, "the vetted search page", language)
        page.screenshot(path=str(shots / "08-vetted-search-succeeded.png"), full_page=True)

        # A failed Celery search, rerun on the durable engine.
        page.goto(f"{base}/admin/matching/search/{failed.pk}/change/")
        message = act(page, str(ACTIONS["rerun_durable"].label), "Celery workers were down",
                      shots / "09-rerun-confirmation.png", language)  # fmt: skip
        assert said(failed.pk, "attempt_started", attempt=2, engine="durable") in message
        rerun = gettext("rerun of attempt %(previous)s") % {"previous": 1}
        assert rerun in page.inner_text("#attempt-2 h2")
        wait_for(lambda: _fresh(failed.pk).status == SearchStatus.SUCCEEDED, timeout=90, message="the rerun to finish")
        page.reload()
        no_english_left(page, "the rerun search page", language)
        page.screenshot(path=str(shots / "10-rerun-on-durable.png"), full_page=True)
        page.close()

        # A reviewer reads everything and can act on nothing; her browser's language is the first guess.
        page = login(browser, base, "rita", "x-rita-pw", locale=locale, csp=csp)
        assert page.get_attribute("html", "lang") == language
        page.goto(f"{base}/admin/matching/search/")
        assert page.locator("select[name=action]").count() == 0
        no_english_left(page, "the reviewer's list", language)
        page.goto(f"{base}/admin/matching/search/{failed.pk}/change/")
        assert page.locator("#sb-actions").count() == 0
        # No zone chosen: STAFF_TIME_ZONE (Asia/Taipei).
        times = page.locator(".sb-timeline td.sb-t:first-child").all_inner_texts()
        assert times and all(t.endswith("UTC+0800") for t in times), times
        page.screenshot(path=str(shots / "11-reviewer-search-page.png"), full_page=True)
        page.goto(f"{base}/admin/matching/search/dashboard/")
        assert page.locator("#sb-vetting a.button").count() == 0
        no_english_left(page, "the reviewer's dashboard", language)
        page.close()
    assert csp.violations == []


def _one_of_each(django_user_model) -> Search:
    """At least one row of every model the console lists, so each change page can be opened too."""
    from matching.models import (
        ApiClientKey,
        ProfileSyncState,
        SearchNotification,
        SearchVetting,
        StaffAction,
        SubmitIdempotencyKey,
    )
    from matching.services.keys import api_key_create
    from tests.console.conftest import ensure_console_groups, with_results
    from workflows.models import (
        ExecutionTimelineEntry,
        SearchDispatch,
        SyncWatermark,
        WebhookDelivery,
        WorkflowExecution,
    )
    from workflows.staff_actions import routing_set

    ensure_console_groups()
    root = django_user_model.objects.create_superuser("root", password="x-root-pw")
    search = with_results(
        make_search(status=SearchStatus.AWAITING_VETTING, engine=Engine.CELERY, seeker_id="skier-vetting")
    )
    now = search.created_at
    SearchDispatch.objects.create(search=search, attempt=1, engine=Engine.CELERY, sent_at=now)
    execution = WorkflowExecution.objects.create(
        search=search, attempt=1, engine=Engine.CELERY, status="RUNNING", drift_state="flagged", drift_reason="differ"
    )
    ExecutionTimelineEntry.objects.create(
        execution=execution, key="k1", at=now, source="console", kind="transition", event="running", detail={}
    )
    WebhookDelivery.objects.create(webhook_id="wh-1", search=search, status="running", version=1, outcome="applied")
    SearchVetting.objects.create(
        search=search, attempt=1, deadline_at=now + dt.timedelta(hours=1), token_nonce="n", token_sha256="0" * 64,
        candidates=[{"user_id": "u000001", "nickname": "Aki", "score": 0.8}],
    )  # fmt: skip
    SearchNotification.objects.create(search=search, attempt=1, status="failed", state="dead_letter", tries=3)
    SubmitIdempotencyKey.objects.create(seeker_id="skier-vetting", key="idem-1", fingerprint="0" * 64, search=search)
    ProfileSyncState.objects.create(source="user-service", last_error="HTTP 503")
    SyncWatermark.objects.create(name="mirror", position="42")
    routing_set(mode="celery", user=root, reason="durable API incident")  # a StaffAction and the EngineRouting row
    key, _ = api_key_create(name="partner", note="held by the partner's ops team")
    ApiClientKey.objects.filter(pk=key.pk).update(expires_at=now + dt.timedelta(days=3))
    assert StaffAction.objects.exists()
    return search


@pytest.fixture
def sync_orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still
    sync. (Requested before `browser`, so it is undone after the browser is closed.)"""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    stub_dispatch_send(monkeypatch)


def test_every_console_page_keeps_to_the_content_security_policy(
    sync_orm_beside_playwright, live_server, resorts, django_user_model, csp, browser
):
    """Every page staff can open (each model's list, change and add page, the dashboard, the routing
    page, each action's confirmation, a search, the login page and the API docs) under the enforced
    policy, with zero violations reported by Chromium."""
    from django.contrib import admin
    from django.test import RequestFactory
    from django.urls import reverse

    from matching.admin.actions import ACTIONS

    SkierProfile.objects.bulk_create(SkierProfile(**profile_fields(**p)) for p in demo_profiles(30, resort_regions()))
    search = _one_of_each(django_user_model)
    base = live_server.url
    page = login(browser, base, "root", "x-root-pw", csp=csp)
    header = page.request.get(f"{base}/admin/").headers["content-security-policy"]
    assert "script-src 'self'" in header and "style-src 'self'" in header and "unsafe-inline" not in header

    visited = []

    def visit(path: str, ready: str = "#content") -> None:
        page.goto(base + path)
        page.wait_for_selector(ready)
        visited.append(path)

    as_root = RequestFactory().get("/admin/")
    as_root.user = django_user_model.objects.get(username="root")
    visit("/admin/")
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        visit(reverse("admin:{}_{}_changelist".format(*info)))
        if (obj := model.objects.first()) is not None:
            visit(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        if model_admin.has_add_permission(as_root):
            visit(reverse("admin:{}_{}_add".format(*info)))
    # The date and time widgets' pop-ups (Django admin's own script) on the key form.
    visit(reverse("admin:matching_apiclientkey_add"))
    page.click("#calendarlink0")
    page.wait_for_selector("#calendarbox0", state="visible")
    page.click("#clocklink0")
    page.wait_for_selector("#clockbox0", state="visible")

    visit(reverse("admin:matching_search_dashboard"), "#sb-expiring-keys")
    visit(reverse("admin:matching_search_routing"))
    visit(f"{reverse('admin:matching_search_change', args=[search.pk])}?why=u000001#sb-why", "#sb-verdict")
    visit(f"{reverse('admin:matching_search_changelist')}?q=skier-vetting", "#result_list")
    visit(f"{reverse('admin:matching_search_changelist')}?attention=any", "#changelist")
    for key in ACTIONS:
        visit(reverse("admin:matching_search_act", args=[search.pk, key]), "#sb-confirm-what")
    # A bulk action's confirmation, reached as staff reach it: tick the rows, choose, Go.
    for action in ("cancel", "approve_vetting"):
        visit(reverse("admin:matching_search_changelist"), "#result_list")
        page.check("#action-toggle")
        page.select_option("select[name=action] >> nth=0", action)
        page.click("button[name=index] >> nth=0")
        page.wait_for_selector("#sb-confirm-what")
    visit(reverse("admin:password_change"))
    # The staff door's own pages: second-factor enrolment (its QR code), signing in again, refusals.
    for name in ("staff:otp", "staff:reauth", "staff:not-allowed", "staff:sign-in-failed"):
        visit(reverse(name))

    # The API docs: Swagger UI rendered from the same origin, an operation opened.
    visit("/api/docs/", ".swagger-ui .information-container")
    page.click(".opblock-summary >> nth=0")
    page.wait_for_selector(".opblock-body")
    page.close()

    # The login page itself, signed out.
    anonymous = csp.watch(browser.new_page())
    anonymous.goto(f"{base}/admin/login/")
    anonymous.wait_for_selector("#id_username")
    anonymous.close()

    assert len(visited) > 40
    assert csp.violations == []
