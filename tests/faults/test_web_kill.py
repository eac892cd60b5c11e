"""A gunicorn worker SIGKILLed, three times, during 240 submits whose clients retry with their
Idempotency-Key: every client ends with exactly one search, none is created twice, and the
searches committed just before a kill (whose answers were lost) are returned to the retry."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection

from matching.models import Search, SubmitIdempotencyKey
from tests.faults.conftest import FAULT_PREFS, children_of

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SUBMITS = 240
KILLS = 3
BOUND_SECONDS = 10  # the longest a client waits for an answer across a kill


def test_a_web_worker_killed_during_submits_never_loses_or_doubles_a_search(console, snowtrace_key, resorts, report):
    console.env["CELERY_BROKER_URL"] = settings.REDIS_URL  # queued for a worker that never comes: not this test's
    web, url = console.web(workers=2)
    run = uuid.uuid4().hex[:8]
    answers: dict[str, str] = {}
    replayed = retries = 0
    done = threading.Semaphore(0)
    kills: list[float] = []
    first_success_after: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        nonlocal replayed, retries
        key = f"fault-{run}-{n}"
        headers = {"X-API-Key": snowtrace_key, "X-User-Id": f"rider-{n % 10}", "Idempotency-Key": key}
        with requests.Session() as session:
            for _ in range(50):
                try:
                    response = session.post(f"{url}/matching/searches", json=FAULT_PREFS, headers=headers, timeout=10)
                except requests.RequestException:
                    with lock:
                        retries += 1
                    time.sleep(0.05)
                    continue
                if response.status_code != 202:
                    with lock:
                        retries += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    answers[key] = response.json()["search_id"]
                    replayed += response.headers.get("Idempotent-Replayed") == "true"
                    if len(first_success_after) < len(kills):
                        first_success_after.append(time.monotonic())
                done.release()
                return

    def killer() -> None:
        completed = 0
        for threshold in (40, 100, 160):  # mid-stream, with 8 clients keeping both workers busy
            while completed < threshold:
                if not done.acquire(timeout=30):
                    return
                completed += 1
            workers = children_of(web.proc.pid)
            if workers:
                with lock:
                    kills.append(time.monotonic())
                with contextlib.suppress(ProcessLookupError):
                    os.kill(workers[0], signal.SIGKILL)

    chaos = threading.Thread(target=killer, daemon=True)
    chaos.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(SUBMITS)))
    chaos.join(timeout=30)

    connection.close()
    keys = SubmitIdempotencyKey.objects.filter(key__startswith=f"fault-{run}-")
    stored = dict(keys.values_list("key", "search_id"))
    searches = Search.objects.filter(seeker_id__startswith="rider-").count()
    lost = SUBMITS - sum(1 for k, sid in answers.items() if str(stored.get(k)) == sid)
    duplicated = searches - len(stored)
    recovered = max((after - at for at, after in zip(kills, first_success_after, strict=False)), default=0.0)
    report(
        "web worker SIGKILL during submits",
        in_flight=f"{SUBMITS} submits from 8 clients",
        faults=f"{len(kills)} SIGKILLs of a gunicorn worker",
        lost=lost,
        duplicated=duplicated,
        recovered_s=round(recovered, 2),
        client_retries=retries,
        replayed_answers=replayed,
        bound_s=BOUND_SECONDS,
    )
    redis.Redis.from_url(settings.REDIS_URL).delete(console.env["CELERY_TASK_DEFAULT_QUEUE"])
    assert len(kills) == KILLS  # (a kill between two requests interrupts nobody: retries are reported)
    assert len(answers) == SUBMITS and lost == 0
    assert duplicated == 0 and searches == SUBMITS
    assert recovered <= BOUND_SECONDS
