"""devtools/bench_support.py: what the benches share (a throwaway database, bounded waits, child
processes, percentiles)."""

import sys
import time
import uuid
from contextlib import ExitStack
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection

from devtools.bench_support import percentile, spawn, throwaway_database, wait_until


def _admin_url() -> str:
    settings = connection.settings_dict
    netloc = f"{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}"
    return urlunsplit(("postgresql", netloc, "/postgres", "", ""))


def _exists(name: str) -> bool:
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def test_a_throwaway_database_is_created_empty_and_dropped_even_when_the_bench_fails():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    base = urlsplit(_admin_url())._replace(scheme="postgres", path=f"/bs{uuid.uuid4().hex[:8]}").geturl()

    with pytest.raises(RuntimeError), throwaway_database(base, "_support_bench") as (url, name):
        assert name == f"{urlsplit(base).path[1:]}_support_bench" and url.endswith(f"/{name}")
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        raise RuntimeError("the bench failed")

    assert not _exists(name)


def test_wait_until_returns_once_true_and_ends_the_bench_naming_what_never_happened():
    ready_at = time.monotonic() + 0.2
    wait_until(lambda: time.monotonic() >= ready_at, 5, "the clock")

    with pytest.raises(SystemExit, match="the impossible did not happen within 0 s"):
        wait_until(lambda: False, 0.3, "the impossible")


def test_a_spawned_process_logs_to_its_file_and_is_stopped_with_the_stack(tmp_path):
    log = tmp_path / "child.log"
    with ExitStack() as stack:
        proc = spawn(stack, [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"], {}, log)
        wait_until(lambda: "up" in log.read_text(), 30, "the child's first line")
        assert proc.poll() is None

    assert proc.returncode == -15  # terminated (SIGTERM) when the stack closed, not finished


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]

    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99), percentile(values, 100)) == (
        50.0, 95.0, 99.0, 100.0,
    )  # fmt: skip
    assert percentile([7.0], 99) == 7.0
