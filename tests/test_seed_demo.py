import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from matching.models import ApiClientKey, Resort, SkierProfile

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_resorts_profiles_an_admin_and_a_working_key(client, capsys):
    call_command("seed_demo", "--profiles", "200")
    out = capsys.readouterr().out
    assert Resort.objects.count() == 43
    assert SkierProfile.objects.count() == 200
    assert SkierProfile.objects.filter(role="coach").exclude(certifications=[]).exists()
    password = out.split("admin login:  admin / ")[1].split()[0]
    key = out.split("demo API key: ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert ApiClientKey.objects.count() == 1
    assert client.get("/matching/searches", headers={"X-API-Key": key, "X-User-Id": "demo"}).status_code == 200


def test_seed_demo_is_deterministic(capsys):
    call_command("seed_demo", "--profiles", "50")
    first = list(SkierProfile.objects.values_list("user_id", "skill_level", "role", "resorts", "available_dates"))
    call_command("seed_demo", "--profiles", "50")
    assert (
        list(SkierProfile.objects.values_list("user_id", "skill_level", "role", "resorts", "available_dates")) == first
    )


def test_the_printed_curl_line_uses_the_given_address(capsys):
    call_command("seed_demo", "--profiles", "10", "--base-url", "http://127.0.0.1:8123")
    out = capsys.readouterr().out
    assert "curl -s -X POST http://127.0.0.1:8123/matching/searches" in out
