"""The console in Traditional Chinese beside English, and in the staff member's own time zone."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import polib
import pyotp
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import strip_tags
from django.utils.text import camel_case_to_spaces, capfirst
from django_otp.plugins.otp_totp.models import TOTPDevice

from matching.admin.words import result_words
from matching.models import ApiClientKey, Engine, Resort, StaffAction, StaffPreference
from matching.services.keys import api_key_create
from matching.services.match_requests import match_request_answer, match_request_send
from snowbuddy.staff.sessions import SEEN_AT, SIGNED_IN_AT
from tests.console.catalogue import CATALOGUES, ROOT, english_left, visible_text
from tests.console.conftest import OPERATORS, _staff, make_search, with_results
from tests.console.helpers import CHANGELIST, act_url, confirm_bulk, confirm_single, messages_of

DASHBOARD = "admin:matching_search_dashboard"
PREFERENCE = "staff-preference"


def choose(client, language: str, time_zone: str = "Asia/Taipei", next_url: str = "/admin/"):
    return client.post(reverse(PREFERENCE), {"sb-language": language, "sb-time_zone": time_zone, "sb-next": next_url})


# --- the catalogue ---------------------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="`make test` installs gettext (msgfmt)")
@pytest.mark.parametrize("po", CATALOGUES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_catalogue_entry_is_translated_and_none_is_fuzzy(po):
    entries = polib.pofile(str(po))
    left = [e.msgid for e in entries.untranslated_entries()] + [f"(fuzzy) {e.msgid}" for e in entries.fuzzy_entries()]
    assert not left, "translate these in {}:\n{}".format(po.relative_to(ROOT), "\n".join(left))
    checked = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(po)],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "untranslated" not in checked.stderr and "fuzzy" not in checked.stderr, checked.stderr


@pytest.mark.skipif(not shutil.which("xgettext"), reason="`make test` installs gettext (xgettext)")
def test_the_catalogue_holds_every_string_the_code_marks(tmp_path):
    """`make messages` would add nothing: a string marked in code or a template but missing from the
    catalogue would show in English on a Traditional Chinese page."""
    for folder in ("matching", "workflows", "snowbuddy", "templates", "locale"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", tmp_path / "manage.py")
    before = {(e.msgctxt, e.msgid) for e in polib.pofile(str(tmp_path / "locale/zh_Hant/LC_MESSAGES/django.po"))}
    made = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hant", "--no-obsolete", "--ignore", "var/*"],
        cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "SNOWBUDDY_VAR_DIR": str(tmp_path / "var")},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    after = polib.pofile(str(tmp_path / "locale/zh_Hant/LC_MESSAGES/django.po"))
    new = [e.msgid for e in after if (e.msgctxt, e.msgid) not in before]
    assert not new, "run `make messages`, then translate:\n" + "\n".join(new)


# --- the language --------------------------------------------------------------------------------------


def test_the_browser_language_is_the_first_guess_and_the_saved_choice_wins(operator_client, operator):
    page = operator_client.get(reverse(DASHBOARD), HTTP_ACCEPT_LANGUAGE="zh-TW,zh;q=0.9,en;q=0.5")
    assert page["Content-Language"] == "zh-hant" and "配對儀表板" in page.content.decode()
    assert choose(operator_client, "en", next_url=reverse(DASHBOARD))["Location"] == reverse(DASHBOARD)
    assert StaffPreference.objects.get(user=operator).language == "en"
    page = operator_client.get(reverse(DASHBOARD), HTTP_ACCEPT_LANGUAGE="zh-TW,zh;q=0.9")
    assert page["Content-Language"] == "en" and "Matching dashboard" in page.content.decode()


def test_the_switch_goes_back_only_to_this_site(operator_client):
    assert choose(operator_client, "zh-hant", next_url="https://evil.example/")["Location"] == "/admin/"


def test_the_api_answers_in_english_whatever_the_browser_or_staff_choice(client, operator, owner):
    """DRF and Django have Chinese catalogues of their own: the API must not pick them up."""
    StaffPreference.objects.create(user=operator, language="zh-hant", time_zone="Asia/Taipei")
    client.force_login(operator)  # a staff session in the same browser changes nothing either
    chinese = {"Accept-Language": "zh-Hant"}
    invalid = owner.post("/matching/searches", {"role": "coach", "skill_level_min": 11}, headers=chinese)
    assert invalid.status_code == 400 and invalid["Content-Language"] == "en"
    assert json.dumps(invalid.json(), ensure_ascii=False).isascii()
    denied = client.post("/matching/searches", {}, headers=chinese, content_type="application/json")
    error = denied.json()["errors"][0]
    assert denied.status_code == 401 and denied["Content-Language"] == "en"
    assert (error["code"], error["detail"]) == ("not_authenticated", "Authentication credentials were not provided.")


def test_the_console_in_traditional_chinese_keeps_no_english_label(operator_client, operator, durable_api, resorts):
    choose(operator_client, "zh-hant")
    prefs = {"role": "coach", "skill_level_min": 3, "skill_level_max": 7, "resorts": ["yuzawa_naeba"],
             "regions": ["Niigata Prefecture"], "dates": ["2027-01-15"], "vetting_required": True}  # fmt: skip
    done = with_results(make_search(status="succeeded", engine=Engine.CELERY, preferences=prefs))
    running = make_search(status="running", engine=Engine.CELERY)
    waiting = make_search(status="awaiting_vetting", engine=Engine.DURABLE)
    # The dashboard's key card renders only with a key near expiry: one soon, one just expired.
    for name, days in (("partner-a", 3), ("partner-b", -2)):
        key, _ = api_key_create(name=name, note="由合作夥伴維運團隊保管")
        ApiClientKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=days))
    declined, _ = match_request_send(requester_id="alice-1", target_user_id="bob-2")
    match_request_answer(match_request=declined, acting_user_id="bob-2", action="decline")
    match_request_send(requester_id="carol-3", target_user_id="bob-2")
    said = messages_of(confirm_single(operator_client, running, "cancel", reason="已和搜尋者確認"))
    assert said[0][1].startswith("取消") and "1 筆完成" in said[0][1]
    skipped = messages_of(confirm_bulk(operator_client, [done], "cancel", reason="重複操作"))
    assert any("略過" in text and "已完成" in text for _, text in skipped)
    pages = {
        "list": reverse(CHANGELIST),
        "list filtered": reverse(CHANGELIST) + "?attention=any&created=24h&status__exact=running",
        "search page": reverse("admin:matching_search_change", args=[done.pk]) + "?why=u000002",
        "cancelled search": reverse("admin:matching_search_change", args=[running.pk]),
        "dashboard": reverse(DASHBOARD),
        "routing": reverse("admin:matching_search_routing"),
        "confirmation": act_url(done, "retry"),
        "vetting confirmation": act_url(waiting, "intervene") + "?decision=approve_all",
        "match requests": reverse("admin:matching_matchrequest_changelist"),
        "match requests filtered": reverse("admin:matching_matchrequest_changelist") + "?status__exact=declined",
        "match request": reverse("admin:matching_matchrequest_change", args=[declined.pk]),
        "user events": reverse("admin:matching_userevent_changelist"),
        "API keys": reverse("admin:matching_apiclientkey_changelist"),
    }
    for name, url in pages.items():
        response = operator_client.get(url)
        assert response.status_code == 200, name
        assert english_left(visible_text(response.content.decode())) == [], name
        if name == "dashboard":  # its cards are checked only if they are on it
            page = response.content.decode()
            assert 'id="sb-expiring-keys"' in page and 'id="sb-index"' in page and "partner-b" in page
    assert english_left(" ".join(text for _, text in said + skipped)) == []


ZH_BROWSER = {"HTTP_ACCEPT_LANGUAGE": "zh-TW,zh;q=0.9,en;q=0.5"}


def chinese(response, name: str) -> str:
    """The page's visible text, after checking it is in Traditional Chinese with no English label left."""
    assert response["Content-Language"] == "zh-hant", name
    text = visible_text(response.content.decode())
    assert english_left(text) == [], name
    return text


@pytest.mark.mfa
def test_the_staff_door_in_traditional_chinese_keeps_no_english_label(django_user_model, settings):
    """Before sign-in only the browser's language is known: the sign-in pages follow it."""
    settings.OIDC_ENABLED, settings.OIDC_PROVIDER_NAME, settings.STAFF_PASSWORD_LOGIN = True, "Example SSO", True
    browser = Client(**ZH_BROWSER)
    assert "使用 Example SSO 登入" in chinese(browser.get("/admin/login/"), "sign-in page")
    for name, url, status in [("not allowed", "/staff/not-allowed/", 403),
                              ("provider down", "/staff/sign-in-failed/?reason=provider", 401),
                              ("sign-in cancelled", "/staff/sign-in-failed/", 401)]:  # fmt: skip
        response = browser.get(url)
        assert response.status_code == status, name
        chinese(response, name)

    _staff(django_user_model, "olga", OPERATORS)
    signed_in = browser.post("/admin/login/", {"username": "olga", "password": "x-olga-pw", "next": "/admin/"})
    assert signed_in.status_code == 302
    otp = "/staff/second-factor/?next=/admin/"
    enrol = browser.get(otp)
    assert "驗證器 App" in chinese(enrol, "second-factor enrolment")
    secret = re.search(r'<code id="staff-otp-secret">([A-Z2-7]+)</code>', enrol.content.decode()).group(1)
    wrong = browser.post(otp, {"code": "000000"})
    assert "驗證碼不符" in chinese(wrong, "second-factor enrolment, wrong code")
    TOTPDevice.objects.filter(user__username="olga").update(throttling_failure_timestamp=None)  # no wait
    codes = browser.post(otp, {"code": pyotp.TOTP(secret).now()})
    assert "復原碼" in chinese(codes, "recovery codes")
    again = browser.get("/staff/sign-in-again/?next=/admin/")
    assert 'name="code"' in again.content.decode()
    chinese(again, "sign in again")
    wrong_password = browser.post("/staff/sign-in-again/?next=/admin/", {"password": "nope", "code": "1"})
    assert "密碼錯誤" in chinese(wrong_password, "sign in again, wrong password")

    for _ in range(settings.STAFF_LOCKOUT_FAILURES):  # the lockout page (axes renders staff/locked_out.html)
        locked = Client(**ZH_BROWSER).post("/admin/login/", {"username": "nobody", "password": "guess"})
    assert locked.status_code == 429
    assert "登入失敗次數過多" in chinese(locked, "locked out")


def test_an_unnamed_provider_is_the_company_account_in_the_readers_language(settings):
    """OIDC_PROVIDER_NAME unset: the button names the company's account in the reader's language; set, as it is."""
    settings.OIDC_ENABLED, settings.OIDC_PROVIDER_NAME, settings.STAFF_PASSWORD_LOGIN = True, "", True
    assert "使用 公司帳號 登入" in chinese(Client(**ZH_BROWSER).get("/admin/login/"), "sign-in page")
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get("/admin/login/").content.decode()
    assert "Sign in with the company account" in english
    settings.OIDC_PROVIDER_NAME = "Example Corp SSO"
    assert "使用 Example Corp SSO 登入" in chinese(Client(**ZH_BROWSER).get("/admin/login/"), "sign-in page")


def test_a_resync_report_is_worded_in_the_staff_members_language():
    """The resync's report is stored in English and as coded parts; the console words the parts."""
    parts = [("resync_applied", {"version": 4, "item_status": "awaiting_vetting", "count": 2}),
             ("resync_status_changed", {"before": "running", "status": "awaiting_vetting"}),
             ("resync_history_complete", {"count": 3})]  # fmt: skip
    with translation.override("zh-hant"):
        said = result_words("resync", {"parts": parts}, "stored English")
        assert said.startswith("已套用項目 v4（awaiting_vetting），時間軸新增 2 筆；") and "「等待審核」" in said  # noqa: RUF001
        assert english_left(said) == []
        unread = result_words("resync", {"parts": [("resync_history_unread", {"error": "HTTP 503"})]}, "")
        assert unread == "未能讀取執行歷程：HTTP 503"  # noqa: RUF001
    with translation.override("en"):
        said = result_words("resync", {"parts": parts}, "stored English")
    assert said == ("applied item v4 (awaiting_vetting), 2 timeline entries; the search went from running to "
                    "awaiting vetting; history: 3 new event(s) (complete)")  # fmt: skip


def test_the_sign_in_questions_and_session_ends_speak_the_staff_members_language(operator_client, settings):
    choose(operator_client, "zh-hant")
    session = operator_client.session
    session[SIGNED_IN_AT] = session[SEEN_AT] = time.time() - settings.STAFF_REAUTH_SECONDS - 60
    session.save()
    routing = reverse("admin:matching_search_routing")
    asked = operator_client.post(routing, {"mode": "celery", "reason": "演練"})
    said = [text for _, text in messages_of(asked)]
    assert asked.status_code == 302 and said and "重新登入" in said[0]
    chinese(operator_client.get(asked["Location"]), "sign in again")
    session = operator_client.session
    session[SEEN_AT] = time.time() - settings.STAFF_SESSION_IDLE_SECONDS - 1
    session.save()
    ended = operator_client.get(reverse(DASHBOARD), follow=True)
    said += [text for _, text in messages_of(ended)]
    assert "閒置" in said[-1]
    assert english_left(" ".join(said)) == []


# --- the time zone -------------------------------------------------------------------------------------


def test_times_follow_the_staff_members_zone_on_the_same_data(operator_client, operator):
    search = make_search(status="succeeded", engine=Engine.CELERY)
    at = timezone.now().replace(microsecond=456000) - timedelta(hours=1)
    StaffAction.objects.create(username="olga-operator", action="retry", search=search, attempt=1, reason="x",
                               outcome="done", status_before="failed", status_after="pending")  # fmt: skip
    StaffAction.objects.filter(search=search).update(at=at)
    url = reverse("admin:matching_search_change", args=[search.pk])
    taipei = at.astimezone(ZoneInfo("Asia/Taipei"))
    page = operator_client.get(url).content.decode()  # no choice yet: STAFF_TIME_ZONE
    assert taipei.strftime("%Y-%m-%d %H:%M:%S") + ".456 UTC+0800" in page and "When (Asia/Taipei)" in page
    audit_list = operator_client.get(reverse("admin:matching_staffaction_changelist")).content.decode()
    assert taipei.strftime("%Y-%m-%d %H:%M:%S UTC+0800") in audit_list

    choose(operator_client, "en", "UTC")
    page = operator_client.get(url).content.decode()
    assert at.strftime("%Y-%m-%d %H:%M:%S") + ".456 UTC+0000" in page and "When (UTC)" in page
    assert taipei.strftime("%H:%M:%S") + ".456" not in page
    audit_list = operator_client.get(reverse("admin:matching_staffaction_changelist")).content.decode()
    assert at.strftime("%Y-%m-%d %H:%M:%S UTC+0000") in audit_list


@pytest.mark.parametrize("key", ["export_csv", "export_json"])
def test_exports_are_the_same_bytes_in_every_language_and_zone(operator_client, key):
    searches = [with_results(make_search(status="succeeded", engine=Engine.CELERY)) for _ in range(2)]
    bodies = set()
    for language, zone in [("en", "UTC"), ("zh-hant", "Asia/Taipei"), ("en", "America/Los_Angeles")]:
        choose(operator_client, language, zone)
        response = confirm_bulk(operator_client, searches, key)
        assert response.status_code == 200
        bodies.add(response.content)
    assert len(bodies) == 1
    body = bodies.pop().decode()
    created = min(s.created_at for s in searches).astimezone(ZoneInfo("UTC"))
    if key == "export_json":
        stamps = {entry["created_at_utc"] for entry in json.loads(body)}
    else:
        stamps = {row["created_at_utc"] for row in csv.DictReader(io.StringIO(body))}
    assert all(stamp.endswith("Z") for stamp in stamps)
    assert created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z" in stamps


# --- every console list and page -----------------------------------------------------------------------

# Apps that ship no Traditional Chinese of their own (django-otp's devices, django-axes' sign-in records):
# their pages are rendered (they must work in zh-Hant) but their own English is theirs to translate.
UNTRANSLATED_APPS = {"otp_totp", "otp_static", "axes"}
_HEADER = re.compile(r'<th scope="col"[^>]*>.*?<div class="text">(?:<a [^>]*>|<span>)(.*?)(?:</a>|</span>)', re.S)
_LABEL = re.compile(r"<label[^>]*>(.*?)</label>", re.S)
# Permission names are rows Django writes in English at migrate time ("Can add search event") and never
# translates: the permission pickers of the user and group pages are left out.
_PERMISSION_PICKER = re.compile(r'<select [^>]*name="(?:user_)?permissions".*?</select>', re.S)


def _a_row_of_every_model(user) -> None:
    """A few rows, so every registered list has a line and every model a change page."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_otp.plugins.otp_static.models import StaticDevice

    from matching.models import (
        ProfileSyncState,
        SearchNotification,
        SearchVetting,
        SubmitIdempotencyKey,
        UserEvent,
    )
    from tests.helpers.factories import SkierProfileFactory
    from workflows.models import (
        EngineRouting,
        ExecutionTimelineEntry,
        SearchDispatch,
        SyncWatermark,
        WebhookDelivery,
        WorkflowExecution,
    )

    now = timezone.now()
    SkierProfileFactory(user_id="u100001", nickname="小雪", role="coach", skill_level=7)
    done = with_results(make_search(status="succeeded", engine=Engine.DURABLE))
    SearchNotification.objects.create(search=done, attempt=1, status="succeeded", tries=1, last_status_code=503,
                                      last_error="HTTP 503")  # fmt: skip
    SearchVetting.objects.create(search=done, attempt=1, deadline_at=now, candidates=[{"user_id": "u000001"}],
                                 token_nonce="n", token_sha256="h", answered_at=now,
                                 answered_by="globalcoach")  # fmt: skip
    StaffAction.objects.create(user=user, username=user.username, action="retry", search=done, attempt=1, reason="演練",
                               outcome="done", status_before="failed", status_after="pending",
                               detail="attempt 2 started on celery",
                               detail_code={"code": "attempt_started",
                                            "params": {"attempt": 2, "engine": "celery"}})  # fmt: skip
    ProfileSyncState.objects.create(source="user-core", run_mode="full", pages_done=3, watermark=now)
    SubmitIdempotencyKey.objects.create(seeker_id="owner-1", key="k-0001", fingerprint="0" * 64, search=done)
    api_key_create(name="partner-a", note="由合作夥伴維運團隊保管")
    request, _ = match_request_send(requester_id="alice-1", target_user_id="bob-2")
    match_request_answer(match_request=request, acting_user_id="bob-2", action="decline")
    UserEvent.objects.create(match_request=request, event_type="snowbuddy.match.request.declined", body={}, tries=2,
                             last_status_code=502, last_error="HTTP 502")  # fmt: skip
    SearchDispatch.objects.create(search=done, attempt=1, engine=Engine.DURABLE, sent_at=now, send_count=1)
    execution = WorkflowExecution.objects.create(search=done, attempt=1, engine=Engine.DURABLE, status="succeeded",
                                                 execution_name=f"{done.pk}-a1", version=4, drift_state="flagged",
                                                 drift_checked_at=now, last_synced_at=now)  # fmt: skip
    ExecutionTimelineEntry.objects.create(execution=execution, key="h-1", at=now, source="history", kind="step",
                                          name="rank-candidates", event="StepSucceeded")  # fmt: skip
    WebhookDelivery.objects.create(webhook_id="wh-0001", search=done, status="succeeded", version=4, outcome="applied")
    SyncWatermark.objects.create(name="dynamo-sync", position="2026-12-06T00:00:00Z", last_full_sync_at=now)
    EngineRouting.objects.create(pk=1, mode="celery", changed_at=now, changed_by=user.username, reason="演練")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    StaticDevice.objects.create(user=user, name="recovery", confirmed=True)
    seen = {"username": "nobody", "ip_address": "127.0.0.1", "user_agent": "test", "http_accept": "*/*",
            "path_info": "/admin/login/"}  # fmt: skip
    AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**seen)
    AccessFailureLog.objects.create(**seen)


def _untranslated_labels(html: str, model) -> list[str]:
    """Column headers and field labels that are Django's automatic English for one of the model's fields
    (the field has no verbose name, or its verbose name has no translation)."""
    automatic = {capfirst(f.name.replace("_", " ")) for f in model._meta.get_fields() if not f.auto_created}
    named = camel_case_to_spaces(model.__name__)
    automatic |= {capfirst(named), capfirst(f"{named}s")}
    shown = [strip_tags(text).strip().rstrip(":").strip() for text in _HEADER.findall(html) + _LABEL.findall(html)]
    return sorted({text for text in shown if text in automatic})


def test_every_console_list_and_page_in_traditional_chinese_keeps_no_english_label(admin_client, admin_user, resorts):
    """Every registered admin list, and one change page of each model, in zh-Hant: no English string of
    the catalogue, and no column or field label left as Django's automatic English."""
    from django.contrib import admin

    choose(admin_client, "zh-hant")
    _a_row_of_every_model(admin_user)
    for model in admin.site._registry:
        meta = model._meta
        listed = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert listed.status_code == 200, meta.label
        row = model._default_manager.order_by("pk").first()
        assert row is not None, f"{meta.label}: no row to open"
        opened = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk]))
        assert opened.status_code == 200, meta.label
        if meta.app_label in UNTRANSLATED_APPS:
            continue
        for page, response in (("list", listed), ("change page", opened)):
            html = _PERMISSION_PICKER.sub("", response.content.decode())
            assert response["Content-Language"] == "zh-hant", (meta.label, page)
            assert english_left(visible_text(html)) == [], (meta.label, page)
            assert _untranslated_labels(html, model) == [], (meta.label, page)


def test_the_resort_lists_region_filter_names_regions_as_the_column_does(admin_client, resorts):
    """The resort list's region filter offers the resort list's own Chinese names in zh-Hant, and
    filters by the stored name."""
    choose(admin_client, "zh-hant")
    url = reverse("admin:matching_resort_changelist")
    page = admin_client.get(url).content.decode()
    assert "長野縣" in page and "Nagano Prefecture" not in visible_text(page)
    filtered = admin_client.get(url, {"region": "Nagano Prefecture"})
    assert filtered.status_code == 200
    shown = {resort.id for resort in filtered.context["cl"].result_list}
    assert shown and shown == set(Resort.objects.filter(region="Nagano Prefecture").values_list("id", flat=True))


# --- the drift reconciler's reasons and the Durable API's transport failures -------------------------------


def _drift_row(search, *, reason: str, code: dict) -> None:
    from workflows.models import DriftState, WorkflowExecution

    WorkflowExecution.objects.create(search=search, attempt=1, engine=Engine.DURABLE, drift_state=DriftState.FLAGGED,
                                     drift_reason=reason, drift_reason_code=code,
                                     drift_checked_at=timezone.now())  # fmt: skip
    type(search).objects.filter(pk=search.pk).update(drift_flagged=True)


def test_a_drift_reason_is_worded_on_the_pages_and_an_older_one_stays_in_english(operator_client):
    """A reason stored with its code (tests/mirror/test_drift_words.py: the reconciler stores them) is
    shown in the reader's language on the search page, the dashboard and the mirror's pages; a row
    from before the codes shows its stored English, marked lang="en"."""
    worded = make_search(status="running", engine=Engine.DURABLE, idle_seconds=900)
    code = {"code": "succeeded_unfinished", "params": {"item": {"status": "running", "version": 2}}}
    _drift_row(worded, reason="the durable execution succeeded but item running v2 is not finished: its results "
                              "never reached DynamoDB", code=code)  # fmt: skip
    older = make_search(status="dispatched", engine=Engine.DURABLE, idle_seconds=900)
    _drift_row(older, reason="dispatched for 900s with no DynamoDB item", code={})
    # Their dispatch records' last errors: a transport failure with its code, and an older one without.
    from workflows.models import SearchDispatch

    unsent = {"request": "POST /workflows/matching", "count": 3, "error": "ConnectTimeout"}
    SearchDispatch.objects.create(search=worded, attempt=1, engine=Engine.DURABLE, send_count=3,
                                  last_error="DurableApiUnavailable: POST /workflows/matching failed after 3 tries: "
                                             "ConnectTimeout",
                                  last_error_code={"code": "durable_unavailable", "params": unsent})  # fmt: skip
    SearchDispatch.objects.create(search=older, attempt=1, engine=Engine.DURABLE, send_count=1,
                                  last_error="ConnectionError: refused")  # fmt: skip
    execution = reverse("admin:workflows_workflowexecution_change", args=[worded.executions.get().pk])
    old_execution = reverse("admin:workflows_workflowexecution_change", args=[older.executions.get().pk])
    pages = {"search page": reverse("admin:matching_search_change", args=[worded.pk]), "dashboard": reverse(DASHBOARD),
             "execution": execution}  # fmt: skip
    choose(operator_client, "zh-hant")
    for name, url in pages.items():
        text = chinese(operator_client.get(url), name)
        assert "Durable 執行已成功，但項目「執行中」v2尚未結束：結果從未寫入 DynamoDB" in text, name  # noqa: RUF001
        if name == "search page":
            assert "POST /workflows/matching 嘗試 3 次後失敗：ConnectTimeout" in text  # noqa: RUF001
    old_english = '<span lang="en">dispatched for 900s with no DynamoDB item</span>'
    older_page = operator_client.get(reverse("admin:matching_search_change", args=[older.pk])).content.decode()
    assert old_english in older_page and '<span lang="en">ConnectionError: refused</span>' in older_page
    assert old_english in operator_client.get(old_execution).content.decode()
    assert (
        '<td lang="en">dispatched for 900s with no DynamoDB item</td>'
        in operator_client.get(reverse(DASHBOARD)).content.decode()
    )
    choose(operator_client, "en")
    for name, url in pages.items():
        page = operator_client.get(url).content.decode()
        assert "the durable execution succeeded but item running v2 is not finished" in page, name
        assert '<span lang="en">the durable execution succeeded' not in page, name
        if name == "search page":
            assert "POST /workflows/matching failed after 3 tries: ConnectTimeout" in page


def test_a_durable_api_transport_failure_is_worded_for_staff_and_stored_in_english(operator_client, durable_api):
    """A Durable API that answers 503 through every try, then the breaker it opened: the action's
    message in the staff member's language, the audit row's detail in English beside its code."""
    durable_api.intervene_status = 503
    first, second = (make_search(status="awaiting_vetting", engine=Engine.DURABLE) for _ in range(2))
    choose(operator_client, "zh-hant")
    failed = " ".join(text for _, text in messages_of(confirm_single(operator_client, first, "intervene",
                                                                          decision="reject")))  # fmt: skip
    assert f"POST /workflows/matching/{first.pk}/intervene 嘗試 3 次後失敗：" in failed  # noqa: RUF001
    stored = StaffAction.objects.get(search=first)
    assert stored.detail.startswith(f"POST /workflows/matching/{first.pk}/intervene failed after 3 tries: ")
    assert stored.detail_code["code"] == "durable_unavailable"
    refused = " ".join(text for _, text in messages_of(confirm_single(operator_client, second, "intervene",
                                                                           decision="reject")))  # fmt: skip
    assert f"POST /workflows/matching/{second.pk}/intervene 未送出：Durable API 斷路器自 UTC " in refused  # noqa: RUF001
    assert "起處於「斷開」狀態" in refused
    assert english_left(failed + refused) == []
    assert StaffAction.objects.get(search=second).detail.startswith(
        f"POST /workflows/matching/{second.pk}/intervene not sent: Durable API circuit open since "
    )
    choose(operator_client, "en")
    said = " ".join(text for _, text in messages_of(confirm_single(operator_client, second, "intervene",
                                                                        decision="reject")))  # fmt: skip
    assert f"POST /workflows/matching/{second.pk}/intervene not sent: the Durable API circuit is open since " in said
