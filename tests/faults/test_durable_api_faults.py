"""The Durable API behind a fault proxy that drops the connection after doing the work, answers
5xx, or stalls: every search finishes exactly once, each durable (search, attempt) has exactly one
execution in AWS's emulator, the circuit breaker fails new searches over to Celery while it is
open (with the reason recorded), and all is done within the bound once the faults stop.

The console is pytest-django's live server (the workflow reads candidates from it and posts its
signed callbacks to it); the durable side is the local stack; a real Celery worker runs what fails
over. Dispatch goes through the console's own relay and sweeper.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from devtools.durable_local.stack import LocalDurableStack, StackConfig
from matching.management.demo_profiles import demo_profiles
from matching.models import Engine, Search, SearchEvent, SkierProfile
from matching.selectors import resort_regions
from matching.services.profiles import profile_fields
from tests.faults.conftest import FAULT_PREFS, tally
from tests.faults.proxy import FaultProxy
from tests.helpers.durable import emulator_lambda, point_console_at_stack
from tests.helpers.polling import wait_for
from workflows.celery_engine.recovery import durable_api_probe
from workflows.dispatch.submit import dispatch_relay, dispatch_sweep
from workflows.durable.state import execution_name_for
from workflows.durable_console.breaker import durable_breaker

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

PHASES = (("drop_after_work", 5), ("error", 5), ("stall", 4))
BOUND_SECONDS = 45


@pytest.fixture
def durable_behind_proxy(live_server, tmp_path, settings, monkeypatch, resorts):
    config = StackConfig.for_tests(tmp_path / "durable", console_base_url=live_server.url, globalcoach_mode="staff")
    with LocalDurableStack(config) as stack, FaultProxy(stack.durable_api_url, stall_seconds=5) as proxy:
        point_console_at_stack(stack.env, settings, monkeypatch, url=proxy.url, mirror=False)
        settings.MATCHING_DURABLE_BREAKER_OPEN_SECONDS = 2
        settings.DISPATCH_GRACE_SECONDS = 0
        SkierProfile.objects.bulk_create(
            SkierProfile(**profile_fields(**p)) for p in demo_profiles(300, resort_regions(), seed=12)
        )
        yield stack, proxy


def _executions(stack: LocalDurableStack, search_id: str) -> int:
    client = emulator_lambda(stack)
    name = execution_name_for(search_id, 1)
    listed = client.list_durable_executions_by_function(
        FunctionName=stack.config.function_name, DurableExecutionName=name
    )
    return sum(1 for e in listed["DurableExecutions"] if e["DurableExecutionName"] == name)


def _all_succeeded(ids: list[str]) -> bool:
    dispatch_sweep()  # the sweeper's turn (beat's, in production), sending what the faults left
    durable_api_probe()
    connection.close()
    return not Search.objects.filter(pk__in=ids).exclude(status="succeeded").exists()


def test_durable_api_faults_lose_nothing_start_nothing_twice_and_fail_over(
    durable_behind_proxy, celery_worker_process, owner, report
):
    stack, proxy = durable_behind_proxy
    ids: list[str] = []
    for mode, count in PHASES:
        durable_breaker().record_success()  # each fault meets a closed circuit first
        proxy.mode = mode
        for _ in range(count):
            ids.append(owner.post("/matching/searches", FAULT_PREFS).json()["search_id"])
            assert dispatch_relay.wait_idle(timeout=30)
    faults = proxy.faults
    proxy.mode = "pass"
    healed_at = time.monotonic()

    wait_for(lambda: _all_succeeded(ids), timeout=BOUND_SECONDS + 30, interval=1, message="every search")
    recovered_in = time.monotonic() - healed_at

    connection.close()
    engines = {str(pk): engine for pk, engine in Search.objects.filter(pk__in=ids).values_list("pk", "engine")}
    durable = [sid for sid in ids if engines[sid] == Engine.DURABLE]
    failed_over = SearchEvent.objects.filter(search_id__in=ids, kind="failed_over")
    executions = {sid: _executions(stack, sid) for sid in durable}
    figures = tally(ids)
    report(
        "Durable API faults behind a proxy",
        in_flight=f"{len(ids)} ({len(durable)} durable, {len(ids) - len(durable)} failed over to Celery)",
        faults=f"{faults} ({', '.join(m for m, _ in PHASES)})",
        lost=figures["lost"],
        duplicated=figures["duplicated"] + sum(n - 1 for n in executions.values() if n > 1),
        recovered_s=round(recovered_in, 1),
        starts_forwarded=proxy.starts(),
        bound_s=BOUND_SECONDS,
    )
    assert faults >= 3 * len(PHASES)  # every mode really hit the API (or the console) at least thrice
    assert figures == {"lost": 0, "duplicated": 0}
    assert executions == dict.fromkeys(durable, 1)  # exactly one execution per (search, attempt)
    assert failed_over.count() == len(ids) - len(durable) >= len(PHASES)
    assert all("Durable API circuit" in e.detail for e in failed_over)
    assert recovered_in <= BOUND_SECONDS
