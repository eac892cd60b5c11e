"""sync_profiles against a local fake of SnowTrace's three services on loopback."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from matching.candidates.sync import SOURCE, profiles_sync
from matching.models import ProfileSyncState, Resort, SkierProfile
from tests.helpers.snowtrace_fake import FakeSnowTrace

pytestmark = pytest.mark.django_db(transaction=True)

NAEBA = "yuzawa_naeba"


def user(user_id: str, **extra) -> dict:
    record = {
        "user_id": user_id,
        "nickname": f"nick-{user_id}",
        "skill_level": 6,
        "self_role": "buddy",
        "preferences": {"preferred_resorts": [NAEBA], "availability": ["2027-01-10"], "open_to_matching": True},
    }
    record.update(extra)
    return record


@pytest.fixture
def fake(settings, resorts):
    fake = FakeSnowTrace()
    with fake.running():
        settings.USER_CORE_API_URL = fake.url
        settings.KNOWLEDGE_ENGAGEMENT_API_URL = fake.url
        settings.RESORT_SERVICES_API_URL = ""
        settings.USER_CORE_SUPPORTS_UPDATED_SINCE = False
        settings.PROFILE_SYNC_PAGE_SIZE = 3
        settings.PROFILE_SYNC_KNOWLEDGE_CONCURRENCY = 4
        settings.SNOWTRACE_HTTP_RETRIES = 3
        settings.SNOWTRACE_HTTP_BACKOFF_SECONDS = 0.01
        settings.SNOWTRACE_HTTP_CONNECT_TIMEOUT_SECONDS = 1.0
        settings.SNOWTRACE_HTTP_READ_TIMEOUT_SECONDS = 1.0
        yield fake


def test_a_full_sync_pages_through_every_user_and_stores_knowledge_scores(fake):
    fake.users = [user(f"u{i}") for i in range(7)]
    fake.scores = {"u0": 80, "u1": 72.6, "u4": None}  # u1 rounds, u4 has none, the rest answer 404
    lines: list[str] = []

    report = profiles_sync(progress=lines.append)

    assert report.complete and not report.error
    assert report.mode == "full" and report.pages == 3
    assert report.counts == {
        "users": 7,
        "created": 7,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "knowledge_unavailable": 0,
    }
    assert [q.get("cursor", [None])[0] for q in fake.user_requests()] == [None, "3", "6"]
    assert all(q["limit"] == ["3"] for q in fake.user_requests())
    scores = dict(SkierProfile.objects.values_list("user_id", "knowledge_score"))
    assert scores == {"u0": 80, "u1": 73, "u2": None, "u3": None, "u4": None, "u5": None, "u6": None}
    row = SkierProfile.objects.get(user_id="u3")
    assert (row.role, row.skill_level, row.resorts, row.available_dates) == ("buddy", 6, [NAEBA], ["2027-01-10"])
    assert any(line.startswith("page 3: 1 users") for line in lines), lines
    state = ProfileSyncState.objects.get(pk=SOURCE)
    assert state.run_started_at is None and state.watermark is not None
    assert state.last_report["counts"]["created"] == 7


def test_5xx_answers_are_retried_with_backoff_and_the_sync_completes(fake):
    fake.users = [user(f"u{i}") for i in range(4)]
    fake.scores = {"u1": 50}
    fake.script("/users", 503, 502)  # the first page fails twice, then answers
    fake.script("/users/u1/skill-profile", 500)

    report = profiles_sync()

    assert report.complete and not report.error
    assert len(fake.user_requests()) == 2 + 2  # two failed tries, then two pages
    assert fake.knowledge_requests("u1") == 2
    assert SkierProfile.objects.get(user_id="u1").knowledge_score == 50
    assert SkierProfile.objects.count() == 4


def test_a_stalled_answer_times_out_and_the_retry_succeeds(fake, settings):
    settings.SNOWTRACE_HTTP_READ_TIMEOUT_SECONDS = 0.3
    fake.users = [user("u0")]
    fake.script("/users", ("stall", 1.5))

    began = time.monotonic()
    report = profiles_sync()

    assert report.complete and not report.error
    assert time.monotonic() - began < 1.4  # it did not wait the stall out
    assert len(fake.user_requests()) == 2
    assert SkierProfile.objects.filter(user_id="u0").exists()


def test_a_service_that_stays_down_stops_the_run_and_the_next_run_resumes_after_the_last_page(fake):
    fake.users = [user(f"u{i}") for i in range(7)]
    fake.script("/users", None, *([503] * 4))  # page 1 answers; page 2 fails every try

    first = profiles_sync()

    assert not first.complete and "503" in first.error
    assert set(SkierProfile.objects.values_list("user_id", flat=True)) == {"u0", "u1", "u2"}
    state = ProfileSyncState.objects.get(pk=SOURCE)
    assert (state.cursor, state.pages_done) == ("3", 1) and state.run_started_at is not None
    assert "503" in state.last_error

    asked_before = len(fake.user_requests())
    second = profiles_sync()

    assert second.resumed and second.complete and not second.error
    assert [q.get("cursor", [None])[0] for q in fake.user_requests()[asked_before:]] == ["3", "6"]
    assert SkierProfile.objects.count() == 7
    assert second.counts["created"] == 7  # the run's counters carry over the interruption


def test_malformed_records_are_reported_and_skipped_without_stopping_the_batch(fake):
    fake.users = [
        user("good-1"),
        user("bad-skill", skill_level=11),
        user("good-1", nickname="again"),  # twice on one page
        {"user_id": "no-role", "nickname": "x"},
        user("bad-resort", preferences={"preferred_resorts": ["atlantis"]}),
        "not an object",
        user("good-2"),
    ]
    out = StringIO()

    call_command("sync_profiles", stdout=out)

    assert set(SkierProfile.objects.values_list("user_id", flat=True)) == {"good-1", "good-2"}
    assert SkierProfile.objects.get(user_id="good-1").nickname == "nick-good-1"  # the duplicate did not apply
    text = out.getvalue()
    assert "rejected user bad-skill (page 1, item 1): skill_level: Must be between 1 and 10." in text
    assert "rejected user good-1 (page 1, item 2): user_id: Listed more than once on this page." in text
    assert "rejected user no-role (page 2, item 0): self_role: This field is required." in text
    assert (
        "rejected user bad-resort (page 2, item 1): preferences.preferred_resorts: Unknown resort(s): atlantis." in text
    )
    assert "rejected user (no user id) (page 2, item 2): non_field_errors: Expected a JSON object" in text
    assert "full complete" in text
    state = ProfileSyncState.objects.get(pk=SOURCE)
    assert state.last_report["counts"]["rejected"] == 5
    assert [r["user_id"] for r in state.rejections] == ["bad-skill", "good-1", "no-role", "bad-resort", None]


def test_a_second_full_sync_of_unchanged_users_writes_nothing(fake):
    fake.users = [user(f"u{i}") for i in range(5)]
    fake.scores = {"u2": 40}
    assert profiles_sync().complete
    stamps = dict(SkierProfile.objects.values_list("user_id", "updated_at"))

    fake.users[3] = user("u3", skill_level=9)
    report = profiles_sync()

    assert report.counts["unchanged"] == 4 and report.counts["updated"] == 1
    after = dict(SkierProfile.objects.values_list("user_id", "updated_at"))
    assert {uid for uid in stamps if after[uid] != stamps[uid]} == {"u3"}


def test_an_incremental_sync_asks_only_for_users_changed_since_the_last_complete_run(fake, settings):
    settings.USER_CORE_SUPPORTS_UPDATED_SINCE = True
    settings.PROFILE_SYNC_OVERLAP_SECONDS = 60
    fake.users = [user(f"u{i}") for i in range(4)]
    first = profiles_sync()
    assert first.mode == "full" and first.complete  # no watermark yet
    watermark = ProfileSyncState.objects.get(pk=SOURCE).watermark

    fake.users.append(user("u-new"))
    fake.changed_since = {"u-new": (timezone.now() + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")}
    second = profiles_sync()

    assert second.mode == "incremental" and second.complete
    asked = fake.user_requests()[-1]["updated_since"][0]
    assert asked == (watermark - timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert second.counts["users"] == 1 and SkierProfile.objects.filter(user_id="u-new").exists()
    assert profiles_sync(full=True).mode == "full"


def test_a_knowledge_score_that_cannot_be_fetched_keeps_the_stored_one(fake):
    fake.users = [user("u0"), user("u1")]
    fake.scores = {"u0": 30, "u1": 90}
    assert profiles_sync().complete
    fake.scores["u0"] = 35
    fake.script("/users/u0/skill-profile", *([503] * 4))

    report = profiles_sync()

    assert report.complete and report.counts["knowledge_unavailable"] == 1
    assert any("knowledge score of u0 not updated" in w for w in report.warnings)
    assert SkierProfile.objects.get(user_id="u0").knowledge_score == 30  # kept, not wiped


def test_knowledge_scores_are_fetched_with_bounded_concurrency(fake, settings):
    settings.PROFILE_SYNC_PAGE_SIZE = 12
    settings.PROFILE_SYNC_KNOWLEDGE_CONCURRENCY = 3
    fake.users = [user(f"u{i}") for i in range(12)]
    fake.scores = {f"u{i}": i for i in range(12)}
    fake.knowledge_delay = 0.05

    assert profiles_sync().complete

    assert 1 < fake.max_knowledge_in_flight <= 3


def test_resorts_come_first_and_a_resort_in_an_unknown_region_is_reported(fake, settings):
    settings.RESORT_SERVICES_API_URL = fake.url
    fake.resorts = [
        {"resort_id": "niigata_new_hill", "region": "Niigata Prefecture", "name": "New Hill"},
        {"resort_id": "moon_base", "region": "The Moon"},
        {"resort_id": NAEBA, "region": "Niigata Prefecture", "name": "Naeba"},
    ]
    fake.users = [user("u0", preferences={"preferred_resorts": ["niigata_new_hill"]})]

    report = profiles_sync()

    assert report.complete
    assert report.resorts == {"created": 1, "updated": 1, "unchanged": 0, "rejected": 1}
    assert Resort.objects.get(pk="niigata_new_hill").region == "Niigata Prefecture"
    assert any("moon_base rejected: unknown region 'The Moon'" in w for w in report.warnings)
    assert SkierProfile.objects.get(user_id="u0").resorts == ["niigata_new_hill"]  # checked against the new list


def test_only_one_sync_runs_at_a_time(fake):
    fake.users = [user("u0")]
    ProfileSyncState.objects.create(
        pk=SOURCE, lease_owner="elsewhere", lease_until=timezone.now() + timedelta(minutes=5)
    )
    report = profiles_sync()
    assert "another sync_profiles run" in report.error
    assert not SkierProfile.objects.exists()


def test_the_command_fails_clearly_without_the_user_service_url(settings, resorts):
    settings.USER_CORE_API_URL = ""
    with pytest.raises(CommandError, match="USER_CORE_API_URL"):
        call_command("sync_profiles")


def test_the_periodic_task_skips_without_a_user_service_and_runs_a_slice_with_one(fake, settings):
    from workflows.tasks.profiles import sync_profiles

    settings.USER_CORE_API_URL = ""
    assert sync_profiles() == "skipped: USER_CORE_API_URL is not set"
    settings.USER_CORE_API_URL = fake.url
    fake.users = [user("u0")]
    assert "full complete" in sync_profiles()
    assert SkierProfile.objects.filter(user_id="u0").exists()
