"""A process killed between commit and dispatch, with 200 searches committed and none sent: the
dispatch sweeper sends every one, each runs once.

The submitting process stores 200 searches through `search_submit`, but its after-commit sends
never happen (the hook is disabled in that process, as if it died right after each commit), and
then it SIGKILLs itself. The running worker's beat, on shortened sweeper timings, finds the unsent
dispatch records and sends them.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.faults.conftest import ROOT, tally, unfinished
from tests.helpers.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

SEARCHES = 200
GRACE, SWEEP = 5, 5  # DISPATCH_GRACE_SECONDS, CELERY_SWEEP_INTERVAL_SECONDS (defaults 20, 30)
BOUND_SECONDS = GRACE + SWEEP + 40  # + running 200 searches on a loaded 2-core machine

SUBMITTER = """
import os, signal, sys
import django

django.setup()
import workflows.dispatch.submit as services
from workflows.dispatch.submit import search_submit

services.dispatch_schedule = lambda **kw: None  # dies before any after-commit send
prefs = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "resorts": [], "regions": [], "dates": [],
         "include_knowledge_score": False, "knowledge_score": None, "required_certifications": [],
         "vetting_required": False, "limit": 20}
for n in range(int(sys.argv[1])):
    print(search_submit(seeker_id=f"rider-{n % 10}", preferences=prefs).pk, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_searches_committed_by_a_process_killed_before_dispatch_all_run_once(console, few_candidates, report):
    console.env.update(DISPATCH_GRACE_SECONDS=str(GRACE), CELERY_SWEEP_INTERVAL_SECONDS=str(SWEEP))
    console.worker("worker", concurrency=2, beat=True)
    env = {**console.env, "DJANGO_SETTINGS_MODULE": "snowbuddy.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SUBMITTER, str(SEARCHES)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    died_at = time.monotonic()
    assert done.returncode == -9, done.stderr[-2000:]
    ids = done.stdout.split()
    assert len(ids) == SEARCHES

    wait_for(lambda: unfinished(ids) == 0, timeout=BOUND_SECONDS + 30, interval=0.5, message="every search")
    recovered_in = time.monotonic() - died_at

    figures = tally(ids)
    report(
        "process killed between commit and dispatch",
        in_flight=f"{SEARCHES} committed, 0 sent",
        faults="1 SIGKILL after the commits",
        lost=figures["lost"],
        duplicated=figures["duplicated"],
        recovered_s=round(recovered_in, 1),
        sweeper=f"grace {GRACE}s, every {SWEEP}s",
        bound_s=BOUND_SECONDS,
    )
    assert figures == {"lost": 0, "duplicated": 0}
    assert recovered_in <= BOUND_SECONDS
