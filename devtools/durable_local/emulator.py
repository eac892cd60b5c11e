"""AWS's local durable-execution emulator as a managed subprocess.

Parent side: ``EmulatorProcess`` starts, probes, stops and restarts it.

Child side (``python -m devtools.durable_local.emulator start-server ...``):
the ``dex-local-runner`` command line itself (same flags, same ``AWS_DEX_*``
variables), with one addition. The emulator persists executions in SQLite but
keeps every timer in memory: an execution's timeout, its ``wait`` timers and
step-retry backoffs, and callback timeouts are lost on restart, and an
invocation that was in flight when it stopped is never retried. So after the
runner starts and before it serves, ``rearm_unfinished_executions`` walks the
store and schedules all of that again through the executor's own methods.
There is no public API for this in aws-durable-execution-sdk-python-testing
1.4.0; the hook uses the executor's internals, checked for at start so a
version change fails loudly instead of silently skipping re-arming.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.durable_local._http import LOCALHOST, http_ok
from devtools.durable_local._process import ManagedProcess

logger = logging.getLogger(__name__)

VERIFIED_TESTING_VERSION = "1.4.0"
_EXECUTOR_INTERNALS = (
    "_completion_events",
    "_execution_timeouts",
    "_callback_timeouts",
    "_callback_heartbeats",
    "_schedule_earliest_pending",
    "_invoke_execution",
    "_on_callback_timeout",
    "_on_callback_heartbeat_timeout",
    "on_timed_out",
)


# --- child side ------------------------------------------------------------------------------


@dataclass
class RearmReport:
    executions: int = 0
    timeouts: int = 0
    timers: int = 0
    callbacks: int = 0
    reinvoked: list[str] = field(default_factory=list)


def rearm_unfinished_executions(executor: Any, store: Any, scheduler: Any, now: dt.datetime) -> RearmReport:
    """Re-create the in-memory timers of every RUNNING execution in ``store``.

    * execution timeout: what is left of ``ExecutionTimeoutSeconds`` since the start
      (an overdue one fires at once, as it would have while the emulator was down);
    * ``wait`` timers and step retries: the executor's earliest-pending wake-up,
      computed from the persisted operations;
    * callback timeouts: what is left since the callback started; heartbeat timeouts
      restart in full (the last heartbeat time is not persisted);
    * an execution nothing would wake (no pending operation, e.g. its invocation was
      cut off by the restart) or with a completion its handler has not seen yet is
      invoked again, as Lambda retries a lost invocation.
    """
    from aws_durable_execution_sdk_python.lambda_service import (
        ErrorObject,
        OperationStatus,
        OperationType,
    )

    missing = [name for name in _EXECUTOR_INTERNALS if not hasattr(executor, name)]
    if missing:
        raise RuntimeError(
            "cannot re-arm timers: the emulator's Executor lacks "
            f"{missing} (verified against aws-durable-execution-sdk-python-testing {VERIFIED_TESTING_VERSION})"
        )

    report = RearmReport()
    executions, _ = store.query(status_filter="RUNNING")
    for execution in executions:
        arn: str = execution.durable_execution_arn
        if execution.is_complete or arn in executor._completion_events:
            continue
        report.executions += 1
        completion_event = scheduler.create_event()
        executor._completion_events[arn] = completion_event

        timeout = int(execution.start_input.execution_timeout_seconds or 0)
        started = execution.get_operation_execution_started().start_timestamp
        if timeout > 0 and started is not None:
            remaining = max(0.0, (started + dt.timedelta(seconds=timeout) - now).total_seconds())
            error = ErrorObject.from_message(f"Execution timed out after {timeout} seconds.")
            executor._execution_timeouts[arn] = scheduler.call_later(
                lambda arn=arn, error=error: executor.on_timed_out(arn, error),
                delay=remaining,
                completion_event=completion_event,
            )
            report.timeouts += 1

        if any(
            (op.operation_type == OperationType.WAIT and op.status == OperationStatus.STARTED)
            or (op.operation_type == OperationType.STEP and op.status == OperationStatus.PENDING)
            for op in execution.operations
        ):
            executor._schedule_earliest_pending(arn)
            report.timers += 1

        last_invocation_start = (
            execution.invocation_completions[-1].start_timestamp if execution.invocation_completions else None
        )
        unseen_callback = False
        for op in execution.operations:
            if op.operation_type != OperationType.CALLBACK or op.callback_details is None:
                continue
            if op.status != OperationStatus.STARTED:
                # Completed by a caller, but the invocation that would consume it may be lost.
                if (
                    last_invocation_start is None
                    or op.end_timestamp is None
                    or op.end_timestamp >= last_invocation_start
                ):
                    unseen_callback = True
                continue
            callback_id = op.callback_details.callback_id
            options = _callback_options(execution, op.operation_id)
            if options is None:
                continue
            if options.timeout_seconds > 0 and op.start_timestamp is not None:
                left = op.start_timestamp + dt.timedelta(seconds=options.timeout_seconds) - now
                executor._callback_timeouts[callback_id] = scheduler.call_later(
                    lambda arn=arn, cid=callback_id: executor._on_callback_timeout(arn, cid),
                    delay=max(0.0, left.total_seconds()),
                    completion_event=completion_event,
                )
                report.callbacks += 1
            if options.heartbeat_timeout_seconds > 0:
                executor._callback_heartbeats[callback_id] = scheduler.call_later(
                    lambda arn=arn, cid=callback_id: executor._on_callback_heartbeat_timeout(arn, cid),
                    delay=options.heartbeat_timeout_seconds,
                    completion_event=completion_event,
                )

        if execution.is_paused:
            continue
        if (
            not execution.has_pending_operations(execution)
            or execution.updated_operation_ids
            or unseen_callback
            or execution.needs_reinvoke
        ):
            executor._invoke_execution(arn)
            report.reinvoked.append(arn)
    return report


def _callback_options(execution: Any, operation_id: str) -> Any:
    for update in execution.updates:
        if update.operation_id == operation_id and update.callback_options is not None:
            return update.callback_options
    return None


def _run_emulator_cli(argv: list[str]) -> int:
    """``dex-local-runner`` with the re-arming runner in place of its ``WebRunner``."""
    from importlib.metadata import version

    from aws_durable_execution_sdk_python_testing import cli
    from aws_durable_execution_sdk_python_testing.clock import real_now
    from aws_durable_execution_sdk_python_testing.runner import WebRunner

    installed = version("aws-durable-execution-sdk-python-testing")
    if installed != VERIFIED_TESTING_VERSION:
        logger.warning(
            "re-arming was verified with aws-durable-execution-sdk-python-testing %s, found %s",
            VERIFIED_TESTING_VERSION,
            installed,
        )

    class RearmingWebRunner(WebRunner):
        def start(self) -> None:
            super().start()
            report = rearm_unfinished_executions(self._executor, self._store, self._scheduler, real_now())
            logging.getLogger(__name__).info(
                "re-armed %d unfinished executions: %d timeouts, %d wait/retry timers, %d callback timeouts, "
                "%d re-invoked",
                report.executions,
                report.timeouts,
                report.timers,
                report.callbacks,
                len(report.reinvoked),
            )

    cli.WebRunner = RearmingWebRunner  # the CLI looks the class up at call time

    # SIGTERM should stop the runner cleanly (the CLI handles KeyboardInterrupt).
    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    return cli.CliApp().run(argv)


# --- parent side -----------------------------------------------------------------------------


class EmulatorProcess:
    """The emulator subprocess, with its SQLite store and log under ``state_dir``."""

    def __init__(
        self,
        *,
        lambda_endpoint: str,
        state_dir: Path,
        region: str,
        env: Mapping[str, str],
        host: str = LOCALHOST,
        port: int = 8791,
        invocation_timeout_seconds: int = 900,
        skip_time: bool = False,
        log_level: str = "INFO",
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.store_path = state_dir / "emulator.sqlite"
        child_env = dict(env)
        # botocore in the emulator signs its Invoke calls: without a region and credentials
        # every invocation fails and the execution sits in RUNNING while it retries.
        child_env.setdefault("AWS_DEFAULT_REGION", region)
        child_env.setdefault("AWS_REGION", region)
        child_env.setdefault("AWS_ACCESS_KEY_ID", "local")
        child_env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        argv = [
            sys.executable,
            "-m",
            "devtools.durable_local.emulator",
            "start-server",
            "--host",
            host,
            "--port",
            str(port),
            "--lambda-endpoint",
            lambda_endpoint,
            "--local-runner-endpoint",
            self.url,
            "--local-runner-region",
            region,
            "--store-type",
            "sqlite",
            "--store-path",
            str(self.store_path),
            "--invocation-timeout",
            str(invocation_timeout_seconds),
            "--log-level",
            log_level,
            "--skip-time" if skip_time else "--no-skip-time",
        ]
        self.process = ManagedProcess(
            "emulator",
            argv,
            env=child_env,
            log_path=state_dir / "logs" / "emulator.log",
            ready=lambda: http_ok(f"{self.url}/health"),
            startup_timeout=startup_timeout,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()


if __name__ == "__main__":
    sys.exit(_run_emulator_cli(sys.argv[1:]))
