"""The metrics and logs of real processes, read by a real Prometheus.

One module-wide stack on loopback: gunicorn with two workers and a Celery worker with one prefork
child, each service with its own multiprocess directory, metrics behind a token, JSON logs; and
Debian's Prometheus scraping both every second with the shipped alert rules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from devtools.durable_local._http import free_port
from matching.models import Search, SearchStatus
from tests.faults.conftest import ConsoleProcess
from tests.helpers.polling import port_answers, wait_for
from tests.helpers.processes import stop_process

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "live-metrics-" + uuid.uuid4().hex
VALID = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7}


class Stack:
    def __init__(self, web: ConsoleProcess, web_url: str, worker: ConsoleProcess, worker_url: str) -> None:
        self.web, self.web_url, self.worker, self.worker_url = web, web_url, worker, worker_url

    def scrape(self, url: str) -> dict[tuple, float]:
        response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert response.status_code == 200, response.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def json_lines(process: ConsoleProcess) -> list[dict]:
    """Every line the process logged through the console's formatter, parsed (a line that does not
    parse fails the test). Lines that are not JSON come from outside logging: tracebacks Python
    prints itself, or Celery's start-up banner."""
    return [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def stack(worker_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("live-stack")
    env = {
        **worker_env,
        "SNOWBUDDY_VAR_DIR": str(base / "var"),
        "CELERY_TASK_DEFAULT_QUEUE": f"observability-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        "MATCHING_NOTIFICATION_WEBHOOK_URL": "",
        "MATCHING_SEARCH_RATE": "100000/min",
        "MATCHING_KEY_RATE": "100000/min",
        "METRICS_TOKEN": TOKEN,
        "METRICS_CACHE_SECONDS": "0",
        "LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    web_port, worker_port = free_port(), free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    web = ConsoleProcess(
        "web",
        [sys.executable, "-m", "gunicorn", "-c", "python:snowbuddy.gunicorn_conf", "snowbuddy.wsgi",
         "--bind", f"127.0.0.1:{web_port}", "--workers", "2", "--timeout", "30", "--access-logfile", "-"],
        {**env, "PROMETHEUS_MULTIPROC_DIR": str(base / "web-metrics")},
        base,
        lambda _p: port_answers(web_port),
    )  # fmt: skip
    try:
        worker = ConsoleProcess(
            "worker",
            [sys.executable, "-m", "celery", "-A", "snowbuddy", "worker", "--pool", "prefork", "--concurrency", "1",
             "-l", "info", "-Q", env["CELERY_TASK_DEFAULT_QUEUE"], "-n", f"observability-{os.getpid()}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            {**env, "PROMETHEUS_MULTIPROC_DIR": str(base / "worker-metrics"),
             "MATCHING_WORKER_METRICS_PORT": str(worker_port)},
            base,
            lambda p: "ready." in p.log() and port_answers(worker_port),
        )  # fmt: skip
    except BaseException:
        web.stop()
        raise
    yield Stack(web, web_url, worker, f"http://127.0.0.1:{worker_port}/metrics")
    worker.stop()
    web.stop()


def test_two_gunicorn_workers_add_up_on_metrics_and_log_json_access_lines(stack):
    before = sample(stack.scrape(f"{stack.web_url}/metrics"), "snowbuddy_http_requests_total",
                    route="health", method="GET", status="200")  # fmt: skip
    # Concurrent requests keep both sync workers busy, so both serve some.
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda n: requests.get(f"{stack.web_url}/health", timeout=10), range(60)))
    assert {a.status_code for a in answers} == {200}
    request_ids = {a.headers["X-Request-ID"] for a in answers}
    assert len(request_ids) == 60

    access = wait_for(
        lambda: (found := [
            line for line in json_lines(stack.web)
            if line["logger"] == "gunicorn.access" and line.get("request_id") in request_ids
        ]) and len(found) == 60 and found,
        timeout=10,
        message="60 JSON access lines",
    )  # fmt: skip
    assert {(line["method"], line["path"], line["status"]) for line in access} == {("GET", "/health", 200)}
    pids = {line["pid"] for line in access}
    assert len(pids) == 2, f"both gunicorn workers served: {pids}"

    # Whichever worker answers the scrape, it reports both workers' requests.
    for _ in range(4):
        samples = stack.scrape(f"{stack.web_url}/metrics")
        assert sample(samples, "snowbuddy_http_requests_total", route="health", method="GET", status="200") == (
            before + 60
        )
        # The database gauges are served once, by the console.
        assert ("snowbuddy_searches_stuck", (("engine", "celery"),)) in samples


def test_a_celery_child_adds_up_on_the_worker_port_and_logs_json_lines(stack, api_key):
    headers = {"X-API-Key": api_key, "X-User-Id": "observer-1", "X-Request-ID": "req-live-submit-1"}
    response = requests.post(f"{stack.web_url}/matching/searches", json=VALID, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    search_id = response.json()["search_id"]
    wait_for(
        lambda: Search.objects.filter(pk=search_id, status=SearchStatus.SUCCEEDED).exists(),
        timeout=30,
        message="the search to succeed on the worker",
    )
    worker = wait_for(
        lambda: (
            (s := stack.scrape(stack.worker_url))
            and sample(s, "snowbuddy_searches_finished_total", engine="celery", status="succeeded") >= 1
            and s
        ),
        timeout=10,
        message="the worker port to count the finished search",
    )
    assert sample(worker, "snowbuddy_searches_claimed_total", engine="celery") >= 1
    duration = {"engine": "celery", "shape": "plain", "status": "succeeded"}
    assert sample(worker, "snowbuddy_search_duration_seconds_count", **duration) >= 1
    assert sample(worker, "snowbuddy_search_stage_seconds_count", engine="celery", stage="search") >= 1
    assert not any(name == "snowbuddy_searches_stuck" for name, _ in worker), "database gauges are the console's"
    assert requests.get(stack.worker_url, timeout=5).status_code == 401
    web = stack.scrape(f"{stack.web_url}/metrics")
    assert sample(web, "snowbuddy_searches_submitted_total", engine="celery") >= 1

    # JSON lines: the submit (web, with the client's request id) and the run (the Celery child).
    web_lines = [line for line in json_lines(stack.web) if line.get("search_id") == search_id]
    submitted = [line for line in web_lines if line.get("event") == "submitted"]
    assert submitted and submitted[0]["request_id"] == "req-live-submit-1"
    assert submitted[0]["attempt"] == 1 and submitted[0]["engine"] == "celery"
    worker_lines = wait_for(
        lambda: (
            (found := [line for line in json_lines(stack.worker) if line.get("search_id") == search_id])
            and any(line.get("event") == "succeeded" for line in found)
            and found
        ),
        timeout=10,
        message="the worker's JSON lines of the search",
    )
    events = [line["event"] for line in worker_lines if line["logger"] == "matching.lifecycle"]
    assert events == ["claimed", "succeeded"]
    task_lines = [line for line in worker_lines if line["logger"] == "workflows.tasks"]
    assert task_lines and task_lines[0]["attempt"] == 1 and task_lines[0]["engine"] == "celery"
    assert all(line["trace_id"] == "" for line in worker_lines)


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    """Debian's Prometheus on loopback, scraping the console and the worker every second, with the
    shipped rules (their `for:` shortened to a second, the expressions as shipped)."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    binary = shutil.which("prometheus")
    if not binary:
        pytest.fail("prometheus is missing: `make test` installs Debian's prometheus package")
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        rule["for"] = "1s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    web_target = stack.web_url.removeprefix("http://")
    worker_target = stack.worker_url.removeprefix("http://").removesuffix("/metrics")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "console", "authorization": {"credentials": TOKEN},
             "static_configs": [{"targets": [web_target]}]},
            {"job_name": "worker", "authorization": {"credentials": TOKEN},
             "static_configs": [{"targets": [worker_target]}]},
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or _ready(url), timeout=20, message="prometheus to be ready")
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        yield url
    finally:
        stop_process(proc)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _alerts(url: str, name: str) -> list[dict]:
    body = requests.get(f"{url}/api/v1/alerts", timeout=5).json()
    assert body["status"] == "success"
    return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]


def test_prometheus_fires_the_stuck_alert_and_resolves_it(stack, prometheus):
    def targets_up():
        active = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active} == {"console": "up", "worker": "up"}

    wait_for(targets_up, timeout=15, message="both targets to be scraped")
    assert _alerts(prometheus, "SearchesStuck") == []
    now = timezone.now()
    stuck = Search.objects.create(
        seeker_id="stuck-1", preferences=VALID, engine="celery", status=SearchStatus.DISPATCHED, deadline_at=now
    )
    Search.objects.filter(pk=stuck.pk).update(updated_at=now - timedelta(hours=1))
    firing = wait_for(
        lambda: [a for a in _alerts(prometheus, "SearchesStuck") if a["state"] == "firing"],
        timeout=20,
        message="SearchesStuck to fire",
    )
    assert firing[0]["labels"]["engine"] == "celery" and firing[0]["labels"]["severity"] == "warning"
    assert firing[0]["annotations"]["runbook"] == "docs/observability.md#searchesstuck"

    Search.objects.filter(pk=stuck.pk).update(status=SearchStatus.CANCELLED, finished_at=timezone.now())
    wait_for(lambda: _alerts(prometheus, "SearchesStuck") == [], timeout=20, message="SearchesStuck to resolve")
    # The series behind it went back to 0 on Prometheus' side, too.
    query = requests.get(
        f"{prometheus}/api/v1/query", params={"query": 'max(snowbuddy_searches_stuck{engine="celery"})'}, timeout=5
    ).json()
    assert float(query["data"]["result"][0]["value"][1]) == 0


def test_every_dashboard_panel_query_runs_on_prometheus(stack, prometheus):
    """The Grafana dashboard (deploy/grafana/snowbuddy-console.json): each panel's query, asked of
    this Prometheus, returns without error or warning."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "snowbuddy-console.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 20
    for expr in exprs:
        body = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", (expr, body)
        assert not body.get("warnings"), (expr, body["warnings"])
    # Series behind the panels exist on this server (the stack has served requests and a search).
    for series in ("snowbuddy_http_requests_total", "snowbuddy_searches_stuck", "snowbuddy_searches_finished_total"):
        body = requests.get(f"{prometheus}/api/v1/query", params={"query": series}, timeout=5).json()
        assert body["data"]["result"], series
