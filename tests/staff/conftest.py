"""Fixtures for staff sign-in: a real OpenID Provider on loopback (node's oidc-provider, run by
tests/oidc/provider.js); the browser is the shared `browser` fixture (tests/helpers/browser.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.durable_local._http import free_port
from tests.helpers.polling import port_answers, wait_for
from tests.helpers.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
OIDC_DIR = ROOT / "tests" / "oidc"
CLIENT_ID, CLIENT_SECRET = "snowbuddy-console", "snowbuddy-console-test-secret"
OIDC_BACKEND = "snowbuddy.staff.oidc.StaffOIDCBackend"


@dataclass
class OpenIdProvider:
    issuer: str
    accounts_file: Path

    def set_accounts(self, accounts: dict) -> None:
        """Who exists in the IdP and their groups; read again by the provider at every sign-in."""
        self.accounts_file.write_text(json.dumps(accounts))


@pytest.fixture
def oidc_provider(live_server, tmp_path, settings):
    """The provider, and the console configured to sign staff in through it (password form off)."""
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("the test OpenID Provider is not installed: `make test` runs `npm ci` in tests/oidc")
    accounts = tmp_path / "accounts.json"
    accounts.write_text("{}")
    port = free_port()
    log = (tmp_path / "provider.log").open("w")
    process = subprocess.Popen(
        [node, "provider.js", "--port", str(port), "--accounts", str(accounts),
         "--redirect-uri", f"{live_server.url}/oidc/callback/",
         "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
        cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: process.poll() is not None or port_answers(port), timeout=30, message="the OpenID Provider")
        assert process.poll() is None, (tmp_path / "provider.log").read_text()
        issuer = f"http://127.0.0.1:{port}"
        settings.OIDC_ENABLED = True
        settings.OIDC_DISCOVERY_URL = f"{issuer}/.well-known/openid-configuration"
        settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
        settings.OIDC_RP_SCOPES = "openid email profile groups"
        settings.OIDC_PROVIDER_NAME = "Test IdP"
        settings.STAFF_PASSWORD_LOGIN = False
        settings.AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", OIDC_BACKEND]  # production
        yield OpenIdProvider(issuer=issuer, accounts_file=accounts)
    finally:
        stop_process(process)
        log.close()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """These tests sign in dozens of times; PBKDF2's deliberate slowness is not what they test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
