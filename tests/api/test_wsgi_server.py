"""What a real WSGI server hands Django: gunicorn de-chunks a chunked body but sets no
CONTENT_LENGTH, so Django would read it as empty. The console answers 411 instead."""

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.durable_local._http import free_port
from tests.helpers.polling import port_answers, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory):
    port = free_port()
    var = tmp_path_factory.mktemp("gunicorn-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHING_", "DJANGO_", "CELERY_", "REDIS"))}
    env.update({"SNOWBUDDY_VAR_DIR": str(var), "DATABASE_URL": "", "LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or port_answers(port), timeout=30, message="gunicorn to listen")
        assert proc.poll() is None, "gunicorn exited at start-up"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _post(port: int, body, headers: dict, *, chunked: bool) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/matching/searches", body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def test_a_chunked_body_through_gunicorn_is_a_411(gunicorn_port):
    chunks = iter([b'{"role": "buddy", ', b'"skill_level_min": 3, "skill_level_max": 7}'])
    status, headers, body = _post(
        gunicorn_port, chunks, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, chunked=True
    )
    assert status == 411
    assert body["errors"][0]["code"] == "length_required"
    assert "no-store" in headers["Cache-Control"]


def test_the_same_body_with_a_length_reaches_the_api(gunicorn_port):
    raw = b'{"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}'
    status, _, body = _post(gunicorn_port, raw, {"Content-Type": "application/json"}, chunked=False)
    assert status == 401 and body["errors"][0]["code"] == "not_authenticated"
