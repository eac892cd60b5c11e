"""schemathesis, with every check, over each OpenAPI schema the console serves: no failure
(docs/contracts.md, "OpenAPI schemas").

The console runs as it does in production, under gunicorn, on loopback, on the test database
(its broker and cache are files under a temporary directory: nothing consumes what it queues).
The runs are bounded and seeded by schemathesis.toml (max examples, one seed); credentials and
signatures come from tests/api/schemathesis_hooks.py. An endpoint
added to the API is in a schema, so it is covered here without a change to this file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devtools.durable_local._http import free_port
from matching.api.requests import EXAMPLE_REQUEST_ID
from matching.management.demo_profiles import demo_profiles
from matching.models import MatchRequest, SearchStatus, SearchVetting, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from snowbuddy.openapi_internal import EXAMPLE_SEARCH_ID, EXAMPLE_VETTING_TOKEN, InternalSchemaGenerator
from tests.conftest import JWT_TEST_SECRET, _database_url
from tests.helpers.factories import SearchFactory
from tests.helpers.polling import port_answers, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
INTERNAL_TOKEN = "internal-token-for-schemathesis"
WEBHOOK_SECRET = "whsec_" + "c2NoZW1hdGhlc2lzLWNhbGxiYWNrLXNlY3JldC0wMTIz"
VERSION_2 = "application/json; version=2"
USER_ID = str(uuid.UUID(int=2026))

# name: (schema path, extra headers on every request)
SCHEMAS = {
    "version 1": ("/api/schema/?format=json", []),
    "version 2": ("/api/schema/?format=json&version=2", [f"Accept: {VERSION_2}"]),
    "internal": ("/api/schema/internal/?format=json", []),
}

EXAMPLE_PREFERENCES = {
    "role": "coach",
    "skill_level_min": 1,
    "skill_level_max": 10,
    "resorts": [],
    "regions": ["Niigata Prefecture"],
    "dates": [],
    "include_knowledge_score": False,
    "knowledge_score": None,
    "required_certifications": [],
    "vetting_required": True,
    "limit": 20,
}
BREAKDOWN = {"skill": 1.0, "location": 1.0, "availability": 0.2, "role": 1.0, "knowledge": None}


@pytest.fixture(scope="module")
def console(django_db_setup, tmp_path_factory):
    """The console under gunicorn on loopback, on the test database: (base URL, its log file)."""
    from django.db import connection

    port, var = free_port(), tmp_path_factory.mktemp("console-var")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "CELERY_", "REDIS", "JWT_"))
    }
    env.update(
        {
            "SNOWBUDDY_VAR_DIR": str(var),
            "DATABASE_URL": _database_url(connection.settings_dict),
            "REDIS_URL": "",
            "REDIS_CACHE_URL": "",
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET_KEY": JWT_TEST_SECRET,
            "MATCHING_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "MATCHING_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # The limits would turn most generated searches into 429s (they have their own tests).
            "MATCHING_SEARCH_RATE": "100000/min",
            "MATCHING_KEY_RATE": "100000/min",
            "MATCHING_REQUEST_RATE": "100000/min",
        }
    )
    log_path = var / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or port_answers(port), timeout=30, message="gunicorn to listen")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def fuzz_environment(console, resorts, api_key) -> dict[str, str]:
    """The data the runs reach (the example search of the internal schema, waiting on GlobalCoach
    with the token of its example answer, among candidates; the example match request) and the
    hooks' environment."""
    SkierProfile.objects.bulk_create(
        SkierProfile(**profile_fields(**p)) for p in demo_profiles(60, resort_regions(), seed=11)
    )
    search = SearchFactory(
        search_id=EXAMPLE_SEARCH_ID,
        seeker_id="u000001",
        preferences=EXAMPLE_PREFERENCES,
        status=SearchStatus.AWAITING_VETTING,
    )
    SearchVetting.objects.create(
        search=search,
        attempt=1,
        deadline_at=search.deadline_at,
        candidates=[{"user_id": "u000002", "nickname": "Rider2", "score": 0.9, "breakdown": BREAKDOWN}],
        token_nonce="example",
        token_sha256=hashlib.sha256(EXAMPLE_VETTING_TOKEN.encode()).hexdigest(),
    )
    # A match request waiting for the fuzzing user's answer, under the id the schema gives as example.
    MatchRequest.objects.create(request_id=EXAMPLE_REQUEST_ID, requester_id="u000002", target_user_id=USER_ID)
    return {
        **os.environ,
        "SNOWBUDDY_FUZZ_API_KEY": api_key,
        "SNOWBUDDY_FUZZ_USER_ID": USER_ID,
        "SNOWBUDDY_FUZZ_JWT_SECRET": JWT_TEST_SECRET,
        "SNOWBUDDY_FUZZ_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "SNOWBUDDY_FUZZ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PYTHONPATH": str(ROOT),
    }


def run_schemathesis(
    location: str, headers: list[str], env: dict[str, str], tmp_path: Path, base_url: str | None = None
) -> subprocess.CompletedProcess:
    argv = [str(BIN / "schemathesis"), "run", location, "--checks", "all"]
    argv += ["--report", "junit,ndjson", "--report-dir", str(tmp_path)]
    if base_url:
        argv += ["--url", base_url]
    for header in headers:
        argv += ["--header", header]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def summary_of(output: str) -> str:
    """The run's closing summary (schemathesis prints it after `SUMMARY`)."""
    at = output.rfind("SUMMARY")
    return output[at:] if at >= 0 else output[-3000:]


def assert_no_failure(result: subprocess.CompletedProcess, tmp_path: Path, name: str, server_log: Path) -> None:
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    print(f"\nschemathesis over {name} (full output: {tmp_path / 'schemathesis.txt'})\n{summary_of(output)}")
    assert result.returncode == 0, output[-20000:]
    # Belt and braces: no request raised in the server (schemathesis' not_a_server_error saw no 5xx).
    log = server_log.read_text()
    assert "Traceback" not in log and "Internal Server Error" not in log, log[-5000:]


@pytest.mark.parametrize("name", SCHEMAS)
def test_schemathesis_with_every_check_finds_no_failure(fuzz_environment, console, tmp_path, name):
    base_url, server_log = console
    path, headers = SCHEMAS[name]
    result = run_schemathesis(f"{base_url}{path}", headers, fuzz_environment, tmp_path)
    assert_no_failure(result, tmp_path, name, server_log)


def test_schemathesis_finds_no_failure_in_the_signed_callback(fuzz_environment, console, tmp_path):
    """The internal schema's webhook, run as the operation that receives it: the hooks sign each
    body (tests/api/schemathesis_hooks.py), so the checks reach the validation behind the signature."""
    base_url, server_log = console
    schema = InternalSchemaGenerator().get_schema(request=None, public=True)
    schema["paths"] = {"/webhooks/matching": schema.pop("webhooks")["searchCallback"]}
    schema["info"]["title"] = "Snowbuddy console: the signed workflow callback, as received"
    (tmp_path / "callback-schema.json").write_text(json.dumps(schema))
    result = run_schemathesis(str(tmp_path / "callback-schema.json"), [], fuzz_environment, tmp_path, base_url)
    assert_no_failure(result, tmp_path, "the signed callback", server_log)
