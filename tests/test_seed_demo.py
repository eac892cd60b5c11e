import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from matching.models import ApiClientKey, Resort, Search, SkierProfile

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)


def seed(capsys, *args) -> str:
    call_command("seed_demo", "--profiles", "200", *args)
    return capsys.readouterr().out


def login(out: str, name: str) -> str:
    return (
        out.split(f"login: {name} / ")[1].split()[0]
        if f"login: {name} / " in out
        else out.split(f"{name} / ")[1].split()[0]
    )


def test_seed_demo_loads_resorts_profiles_an_admin_and_a_working_key(client, capsys):
    out = seed(capsys)
    assert Resort.objects.count() == 43
    assert SkierProfile.objects.count() == 200
    assert SkierProfile.objects.filter(role="coach").exclude(certifications=[]).exists()
    password = out.split("admin login:  admin / ")[1].split()[0]
    key = out.split("demo API key: ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert ApiClientKey.objects.count() == 1
    assert client.get("/matching/searches", headers={"X-API-Key": key, "X-User-Id": "demo"}).status_code == 200


def test_seed_demo_is_deterministic(capsys):
    seed(capsys)
    first = list(SkierProfile.objects.values_list("user_id", "skill_level", "role", "resorts", "available_dates"))
    seed(capsys)
    assert (
        list(SkierProfile.objects.values_list("user_id", "skill_level", "role", "resorts", "available_dates")) == first
    )


def test_the_printed_curl_line_uses_the_given_address(capsys):
    call_command("seed_demo", "--profiles", "10", "--base-url", "http://127.0.0.1:8123")
    out = capsys.readouterr().out
    assert "curl -s -X POST http://127.0.0.1:8123/matching/searches" in out


def test_a_second_run_keeps_the_passwords_and_the_api_key(capsys, settings):
    first = seed(capsys)
    second = seed(capsys)
    for name in ("admin", "operator", "reviewer"):
        assert login(first, name) == login(second, name)
    assert first.split("demo API key: ")[1].split()[0] == second.split("demo API key: ")[1].split()[0]
    assert ApiClientKey.objects.filter(name="demo").count() == 1
    mode = stat.S_IMODE((settings.VAR_DIR / "demo_logins.json").stat().st_mode)
    assert mode == 0o600


def test_reset_password_gives_new_passwords_and_the_environment_wins(capsys, monkeypatch):
    first = seed(capsys)
    reset = seed(capsys, "--reset-password")
    assert login(reset, "admin") != login(first, "admin") and login(reset, "operator") != login(first, "operator")
    assert get_user_model().objects.get(username="admin").check_password(login(reset, "admin"))
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "from-the-environment-1")
    assert login(seed(capsys), "admin") == "from-the-environment-1"
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD")
    assert login(seed(capsys), "admin") == login(reset, "admin")  # the environment's was never stored


def test_demo_staff_are_in_the_two_groups(capsys):
    seed(capsys)
    users = get_user_model().objects
    assert list(users.get(username="operator").groups.values_list("name", flat=True)) == ["Match operators"]
    assert list(users.get(username="reviewer").groups.values_list("name", flat=True)) == ["Match reviewers"]
    assert users.get(username="operator").has_perm("matching.cancel_search")
    assert not users.get(username="reviewer").has_perm("matching.cancel_search")


def test_demo_searches_cover_every_state_and_every_attention_reason(capsys, client):
    seed(capsys)
    demo = Search.objects.filter(seeker_id__startswith="demo-seeker-")
    assert set(demo.values_list("status", flat=True)) >= {
        "succeeded", "failed", "cancelled", "timed_out", "awaiting_vetting", "dispatched", "running",
    }  # fmt: skip
    succeeded = demo.filter(status="succeeded", engine="celery").first()
    assert succeeded.results.count() == succeeded.result_count > 0
    client.force_login(get_user_model().objects.get(username="reviewer"))
    for reason in ("stuck", "drift", "dead_letter", "vetting"):
        response = client.get(reverse("admin:matching_search_changelist"), {"attention": reason})
        assert len(response.context["cl"].result_list) >= 1, reason
    count = demo.count()
    seed(capsys)
    assert Search.objects.filter(seeker_id__startswith="demo-seeker-").count() == count


def test_the_demo_logins_say_whether_a_second_factor_is_asked(capsys, settings):
    settings.STAFF_REQUIRE_MFA = False  # what `make run` sets
    assert "second factor: OFF for these demo logins (STAFF_REQUIRE_MFA=false" in seed(capsys, "--no-searches")
    settings.STAFF_REQUIRE_MFA = True
    assert "second factor: ON (STAFF_REQUIRE_MFA=true)" in seed(capsys, "--no-searches")
