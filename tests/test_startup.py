"""Each process that starts the console stops on a bad environment with one line naming the
variable and a non-zero exit: no traceback (snowbuddy/startup.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
UNREACHABLE_REDIS = "redis://:hunter2@127.0.0.1:1/0"
UNREACHABLE_DATABASE = "postgres://nobody:hunter2@127.0.0.1:1/nowhere"


def _run(argv: list[str], overrides: dict, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "CELERY_", "REDIS"))}
    env.update({"SNOWBUDDY_VAR_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": "", "REDIS_CACHE_URL": ""})
    env.update(overrides)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _one_line_naming(result: subprocess.CompletedProcess, variable: str) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("ImproperlyConfigured: ")]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"ImproperlyConfigured: {variable}: "), lines[0]
    assert "hunter2" not in output  # passwords in URLs are not printed
    return lines[0]


MANAGE = [sys.executable, "manage.py"]
GUNICORN = [
    str(VENV_BIN / "gunicorn"),
    "-c",
    "python:snowbuddy.gunicorn_conf",
    "snowbuddy.wsgi",
    "--bind",
    "127.0.0.1:0",
]
WORKER = [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--pool", "solo", "--without-mingle"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MATCHING_SEARCH_RATE", "abc"),
        ("MATCHING_SEARCH_RATE", "0/min"),
        ("MATCHING_KEY_RATE", "10/fortnight"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("DATABASE_URL", "postgres://u@host:port/db"),
        ("DJANGO_SECURE_HSTS_SECONDS", "a year"),
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
        ("REDIS_URL", "localhost:6379"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path, name, value):
    _one_line_naming(_run([*MANAGE, "check"], {name: value}, tmp_path), name)


def test_every_entry_point_stops_on_a_bad_rate(tmp_path):
    for argv in (GUNICORN, WORKER):
        _one_line_naming(_run(argv, {"MATCHING_SEARCH_RATE": "abc"}, tmp_path), "MATCHING_SEARCH_RATE")


def test_gunicorn_without_the_config_file_stops_instead_of_rebooting_workers(tmp_path):
    # One worker: with two, gunicorn's own arbiter may reap both failures at once and print its
    # HaltServer traceback (a race inside gunicorn, not the console's start-up check).
    bare = [str(VENV_BIN / "gunicorn"), "snowbuddy.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"]
    result = _run(bare, {"MATCHING_SEARCH_RATE": "abc"}, tmp_path, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.count("ImproperlyConfigured: MATCHING_SEARCH_RATE: ") == 1


@pytest.mark.parametrize("argv", [GUNICORN, WORKER, [*MANAGE, "runserver", "127.0.0.1:0", "--noreload"]])
def test_an_unreachable_broker_stops_the_servers(tmp_path, argv):
    line = _one_line_naming(_run(argv, {"REDIS_URL": UNREACHABLE_REDIS}, tmp_path), "REDIS_URL")
    assert "cannot reach redis://:***@127.0.0.1:1/0" in line


def test_an_unreachable_cache_is_named_apart_from_the_broker(tmp_path, settings):
    result = _run(GUNICORN, {"REDIS_URL": settings.REDIS_URL, "REDIS_CACHE_URL": UNREACHABLE_REDIS}, tmp_path)
    _one_line_naming(result, "REDIS_CACHE_URL")


@pytest.mark.parametrize("argv", [GUNICORN, WORKER])
def test_an_unreachable_database_stops_the_servers(tmp_path, argv):
    line = _one_line_naming(_run(argv, {"DATABASE_URL": UNREACHABLE_DATABASE}, tmp_path), "DATABASE_URL")
    assert "postgres://nobody:***@127.0.0.1:1/nowhere" in line


def test_one_off_commands_do_not_need_the_services(tmp_path):
    result = _run([*MANAGE, "check"], {"REDIS_URL": UNREACHABLE_REDIS}, tmp_path)
    assert result.returncode == 0, result.stderr


def test_gunicorn_workers_load_the_warm_index_as_they_boot_when_the_durable_engine_is_configured(tmp_path):
    # The workflow's ranking requests (/internal/searches/{id}/matches) are served by the web
    # workers: each starts its load at boot, not at the first workflow's request.
    env = {"SNOWBUDDY_VAR_DIR": str(tmp_path), "LOG_LEVEL": "INFO", "MATCHING_WORKFLOW_URL": "http://127.0.0.1:9/"}
    assert _run([*MANAGE, "migrate", "-v0"], env, tmp_path).returncode == 0
    log = tmp_path / "gunicorn.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "CELERY_", "REDIS"))}
    base.update({"DATABASE_URL": "", "REDIS_URL": "", "REDIS_CACHE_URL": "", **env})
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*GUNICORN[:-1], "127.0.0.1:0", "--workers", "2"], cwd=ROOT, env=base, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip

    def loaded_pids() -> set[str]:
        # The first to finish writes the host's snapshot; a worker that finds it maps it instead.
        return set(re.findall(r"warm profile index (?:loaded|mapped) in pid (\d+)", log.read_text()))

    try:
        wait_for(lambda: proc.poll() is not None or len(loaded_pids()) == 2, timeout=30, message="both workers' loads")
        assert proc.poll() is None, log.read_text()
        assert len(loaded_pids()) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize(("workflow_url", "preload", "expected"), [
    ("http://127.0.0.1:9/", True, 1), ("", True, 0), ("http://127.0.0.1:9/", False, 0),
])  # fmt: skip
def test_the_web_preload_follows_the_durable_engine_and_the_switch(
    settings, monkeypatch, workflow_url, preload, expected
):
    from matching.candidates import warm_index as candidates
    from snowbuddy import gunicorn_conf

    calls = []
    monkeypatch.setattr(candidates, "candidate_index_preload", lambda: calls.append(1))
    settings.MATCHING_WORKFLOW_URL = workflow_url
    settings.MATCHING_INDEX_PRELOAD = preload
    gunicorn_conf.post_worker_init(None)
    assert len(calls) == expected
