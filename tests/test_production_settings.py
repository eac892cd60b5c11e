"""The production example environment passes Django's deployment checklist, and its variables
really set what they name."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.production.example"


def production_env(tmp_path: Path) -> dict[str, str]:
    """The example file as an environment, each *_FILE secret written to a file of its own."""
    env = {k: v for k, v in os.environ.items() if not re.match(r"(MATCHING_|DJANGO_|CELERY_|REDIS|DATABASE_)", k)}
    env["SNOWBUDDY_VAR_DIR"] = str(tmp_path / "var")
    for line in EXAMPLE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, value = line.partition("=")
        if name.endswith("_FILE"):
            secret = tmp_path / name.lower()
            secret.write_text(secrets.token_urlsafe(50))
            value = str(secret)
        env[name.strip()] = value.strip()
    return env


def _check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_with_the_production_example(tmp_path):
    result = _check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_the_https_variables_check_deploy_warns(tmp_path):
    env = {k: v for k, v in production_env(tmp_path).items() if not k.startswith("DJANGO_SECURE_")}
    result = _check_deploy(env)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def _production_settings(tmp_path, *names: str) -> subprocess.CompletedProcess:
    """Print the named settings (`s.NAME` expressions) as a process with the production example's
    variables reads them."""
    code = "from django.conf import settings as s; print(" + ", ".join(names) + ")"
    env = {**production_env(tmp_path), "DJANGO_SETTINGS_MODULE": "snowbuddy.settings"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_production_variables_set_the_settings(tmp_path):
    result = _production_settings(
        tmp_path, "s.SECURE_HSTS_SECONDS", "s.SECURE_HSTS_INCLUDE_SUBDOMAINS", "s.SECURE_HSTS_PRELOAD",
        "s.SECURE_SSL_REDIRECT", "s.SECURE_PROXY_SSL_HEADER", "s.SESSION_COOKIE_SECURE", "s.DEBUG",
    )  # fmt: skip
    assert result.stdout.split() == [
        "31536000", "True", "True", "True", "('HTTP_X_FORWARDED_PROTO',", "'https')", "True", "False",
    ]  # fmt: skip


def test_every_production_variable_is_documented_in_the_env_example():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), re.M))
    assert {name.removesuffix("_FILE") for name in used} - documented == set()


@pytest.mark.django_db
def test_health_is_exempt_from_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health").status_code in (200, 503)
    assert client.get("/matching/searches").status_code == 301


def test_the_production_example_signs_staff_in_through_the_idp_with_pkce(tmp_path):
    result = _production_settings(
        tmp_path, "s.OIDC_ENABLED", "s.OIDC_USE_PKCE", "s.STAFF_PASSWORD_LOGIN", "s.STAFF_REQUIRE_MFA",
        "s.STAFF_CLIENT_IP_HEADER", "','.join(s.AUTHENTICATION_BACKENDS)", "len(s.OIDC_RP_CLIENT_SECRET) >= 50",
    )  # fmt: skip
    assert result.stdout.split() == [
        "True", "True", "False", "True", "X-Forwarded-For",
        "axes.backends.AxesStandaloneBackend,snowbuddy.staff.oidc.StaffOIDCBackend", "True",
    ], result.stderr  # fmt: skip
