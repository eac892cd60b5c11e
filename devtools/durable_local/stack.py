"""Start the whole Durable side on this machine: ``python -m devtools.durable_local.stack``.

Processes (all on 127.0.0.1; logs and the emulator's SQLite store under ``var/durable/``):

======================  =====  ==========================================================
moto (DynamoDB)          8793  table ``matching-workflow-state`` + GSI, in memory
GlobalCoach (simulated)  8794  ``POST /vetting-requests``, answers after a delay
Lambda stand-in          8792  Invoke -> workflow handler / start; other Lambda APIs -> emulator
Durable API              8790  SigV4 / API key, then ``workflows.durable.api.handler``
durable emulator         8791  ``dex-local-runner`` with SQLite store and timer re-arming
======================  =====  ==========================================================

It prints the environment for the console and runs until Ctrl-C / SIGTERM, then stops every
child. ``LocalDurableStack`` is the same thing as a context manager for tests.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import secrets
import shlex
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Self

from devtools.durable_local._http import HEALTH_PATH, LOCALHOST, free_port, http_ok
from devtools.durable_local._process import REPO_ROOT, ManagedProcess
from devtools.durable_local.emulator import EmulatorProcess
from devtools.durable_local.moto_server import MotoProcess

logger = logging.getLogger(__name__)

VETTING_CALLBACK_PATH = "/workflows/matching/vetting-callback"
# Variables from the caller's shell that must not leak into the children: a real profile or
# session token would make botocore sign with real credentials or try to refresh them.
_SCRUBBED_PREFIXES = ("AWS_", "MATCHING_", "LOCAL_DURABLE_", "GLOBALCOACH_")


@dataclass
class StackConfig:
    state_dir: Path = REPO_ROOT / "var" / "durable"
    host: str = LOCALHOST
    durable_api_port: int = 8790
    emulator_port: int = 8791
    lambda_port: int = 8792
    moto_port: int = 8793
    globalcoach_port: int = 8794
    region: str = "us-east-1"
    # Local-only credentials: the Durable API verifies SigV4 against exactly this pair.
    access_key_id: str = "AKIALOCALDURABLE0001"
    secret_access_key: str = "local-durable-secret"  # noqa: S105 - a fixed local dev value
    api_key: str = "local-durable-api-key"
    api_key_header: str = "X-API-Key"
    auth_modes: tuple[str, ...] = ("iam_sigv4", "api_key")
    console_auth_mode: str = "iam_sigv4"
    sigv4_service: str = "lambda"
    function_name: str = "matching-workflow"
    workflow_handler: str = "workflows.durable.workflow:handler"
    api_handler: str = "workflows.durable.api:handler"
    table_name: str = "matching-workflow-state"
    execution_timeout_seconds: int = 8 * 86_400
    # The console (far side of the workflow's HTTP calls) and the secrets it shares.
    console_base_url: str = "http://127.0.0.1:8000"
    internal_token: str = "local-internal-token"  # noqa: S105
    webhook_secret: str = "whsec_" + base64.b64encode(b"local-durable-webhook-secret").decode()
    globalcoach_mode: str = "approve_all"
    globalcoach_delay_seconds: float = 2.0
    globalcoach_fraction: float = 0.5
    # GlobalCoach authenticates its callback with the per-search token, not SigV4.
    public_paths: tuple[str, ...] = (VETTING_CALLBACK_PATH,)
    skip_time: bool = False
    fresh: bool = False  # delete the emulator's store before starting
    log_level: str = "INFO"
    workflow_env: dict[str, str] = field(default_factory=dict)  # extra env for the workflow handler
    api_env: dict[str, str] = field(default_factory=dict)  # extra env for the Durable API handler
    startup_timeout: float = 30.0

    @classmethod
    def for_tests(cls, state_dir: Path, **overrides: object) -> StackConfig:
        """Free ports and fresh random secrets, so a test run never meets a dev stack."""
        config = cls(
            state_dir=state_dir,
            durable_api_port=free_port(),
            emulator_port=free_port(),
            lambda_port=free_port(),
            moto_port=free_port(),
            globalcoach_port=free_port(),
            secret_access_key=secrets.token_urlsafe(24),
            api_key=secrets.token_urlsafe(24),
            internal_token=secrets.token_urlsafe(24),
            webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            fresh=True,
        )
        return replace(config, **overrides)  # type: ignore[arg-type]

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"


class LocalDurableStack:
    """Every local process of the Durable side; ``with LocalDurableStack(config) as stack: stack.env``."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        c = self.config
        self.durable_api_url = c.url(c.durable_api_port)
        self.emulator_url = c.url(c.emulator_port)
        self.lambda_url = c.url(c.lambda_port)
        self.moto_url = c.url(c.moto_port)
        self.globalcoach_url = c.url(c.globalcoach_port)
        base = _base_env(c)
        logs = c.state_dir / "logs"

        self.moto = MotoProcess(
            state_dir=c.state_dir,
            region=c.region,
            env=base,
            table_name=c.table_name,
            host=c.host,
            port=c.moto_port,
            startup_timeout=c.startup_timeout,
        )
        globalcoach_env = dict(base)
        if c.workflow_env.get("MATCHING_VETTING_API_KEY"):
            globalcoach_env["GLOBALCOACH_API_KEY"] = c.workflow_env["MATCHING_VETTING_API_KEY"]
        self.globalcoach = self._python_child(
            "globalcoach",
            [
                "devtools.durable_local.globalcoach",
                "--mode",
                c.globalcoach_mode,
                "--delay",
                str(c.globalcoach_delay_seconds),
                "--fraction",
                str(c.globalcoach_fraction),
                "--port",
                str(c.globalcoach_port),
            ],
            globalcoach_env,
            logs,
            self.globalcoach_url,
        )
        self.lambda_standin = self._python_child(
            "lambda-standin",
            [
                "devtools.durable_local.invoke_standin",
                "--port",
                str(c.lambda_port),
                "--emulator-url",
                self.emulator_url,
                "--function",
                f"{c.function_name}={c.workflow_handler}",
                "--execution-timeout",
                str(c.execution_timeout_seconds),
            ],
            self.workflow_environment(base),
            logs,
            self.lambda_url,
        )
        self.durable_api = self._python_child(
            "durable-api",
            [
                "devtools.durable_local.durable_api_server",
                "--port",
                str(c.durable_api_port),
                "--handler",
                c.api_handler,
                *[arg for path in c.public_paths for arg in ("--public-path", path)],
            ],
            self.api_environment(base),
            logs,
            self.durable_api_url,
        )
        self.emulator = EmulatorProcess(
            lambda_endpoint=self.lambda_url,
            state_dir=c.state_dir,
            region=c.region,
            env=base,
            host=c.host,
            port=c.emulator_port,
            skip_time=c.skip_time,
            log_level=c.log_level,
            startup_timeout=c.startup_timeout,
        )
        self._started = False

    # --- environments ----------------------------------------------------------------------

    def workflow_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """What the workflow handler sees (its Lambda function configuration, locally)."""
        c = self.config
        env = dict(base)
        env.update(
            # The SDK builds its one boto3 client per process from this: checkpoints go
            # straight to the emulator.
            AWS_ENDPOINT_URL_LAMBDA=self.emulator_url,
            AWS_ENDPOINT_URL_DYNAMODB=self.moto_url,
            MATCHING_STATE_TABLE=c.table_name,
            MATCHING_CONSOLE_BASE_URL=c.console_base_url,
            MATCHING_INTERNAL_TOKEN=c.internal_token,
            MATCHING_WEBHOOK_SECRET=c.webhook_secret,
            MATCHING_VETTING_URL=self.globalcoach_url,
            MATCHING_VETTING_CALLBACK_URL=self.durable_api_url + VETTING_CALLBACK_PATH,
        )
        env.update(c.workflow_env)
        return env

    def api_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """What the Durable API handler sees, plus the auth settings of the local Function URL."""
        c = self.config
        env = dict(base)
        env.update(
            # Invoke (start) and the durable-execution APIs both go through the stand-in.
            AWS_ENDPOINT_URL_LAMBDA=self.lambda_url,
            AWS_ENDPOINT_URL_DYNAMODB=self.moto_url,
            MATCHING_STATE_TABLE=c.table_name,
            # Durable functions are invoked with a qualifier; the stand-in maps $LATEST to the handler.
            MATCHING_WORKFLOW_FUNCTION_NAME=f"{c.function_name}:$LATEST",
            # The handler checks the key itself too (unless the caller was SigV4-verified).
            MATCHING_WORKFLOW_API_KEY=c.api_key,
            MATCHING_WORKFLOW_API_KEY_HEADER=c.api_key_header,
            LOCAL_DURABLE_AUTH_MODES=",".join(c.auth_modes),
            LOCAL_DURABLE_SIGV4_CREDENTIALS=f"{c.access_key_id}:{c.secret_access_key}",
            LOCAL_DURABLE_SIGV4_REGION=c.region,
            LOCAL_DURABLE_SIGV4_SERVICE=c.sigv4_service,
            LOCAL_DURABLE_API_KEYS=c.api_key,
            LOCAL_DURABLE_API_KEY_HEADER=c.api_key_header,
        )
        env.update(c.api_env)
        return env

    @property
    def env(self) -> dict[str, str]:
        """Environment for the console (Django, Celery) to use this stack."""
        c = self.config
        return {
            "MATCHING_WORKFLOW_URL": self.durable_api_url,
            "MATCHING_WORKFLOW_AUTH_MODE": c.console_auth_mode,
            "MATCHING_WORKFLOW_SIGV4_SERVICE": c.sigv4_service,
            "MATCHING_WORKFLOW_API_KEY": c.api_key,
            "MATCHING_WORKFLOW_API_KEY_HEADER": c.api_key_header,
            "MATCHING_WORKFLOW_CALLBACK_URL": c.console_base_url.rstrip("/") + "/webhooks/matching",
            "MATCHING_WEBHOOK_SECRET": c.webhook_secret,
            "MATCHING_INTERNAL_TOKEN": c.internal_token,
            "MATCHING_STATE_TABLE": c.table_name,
            "AWS_REGION": c.region,
            "AWS_DEFAULT_REGION": c.region,
            "AWS_ACCESS_KEY_ID": c.access_key_id,
            "AWS_SECRET_ACCESS_KEY": c.secret_access_key,
            "AWS_ENDPOINT_URL_DYNAMODB": self.moto_url,
            # The console's execution and history reads (GetDurableExecution…), through the
            # stand-in to the emulator; without it they would go to real AWS.
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_url,
        }

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        c.state_dir.mkdir(parents=True, exist_ok=True)
        if c.fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.emulator.store_path}{suffix}").unlink(missing_ok=True)
        try:
            # Independent children boot in parallel; the emulator goes last because on start it
            # re-invokes unfinished executions, which need the stand-in, DynamoDB, GlobalCoach
            # and the Durable API (GlobalCoach's callback target) to be up.
            children = [self.moto.process, self.globalcoach, self.lambda_standin, self.durable_api]
            for child in children:
                child.spawn()
            for child in children:
                child.wait_ready()
            self.emulator.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        logger.info("local durable stack up: Durable API %s", self.durable_api_url)

    def stop(self) -> None:
        # Reverse order: nothing re-invokes the workflow once the emulator is gone.
        for stopper in (
            self.emulator.stop,
            self.durable_api.stop,
            self.lambda_standin.stop,
            self.globalcoach.stop,
            self.moto.stop,
        ):
            try:
                stopper()
            except Exception:  # keep stopping the others
                logger.exception("error while stopping the local stack")
        self._started = False

    def restart_emulator(self, *, crash: bool = False) -> None:
        """Stop (or SIGKILL, with ``crash``) and start the emulator; executions stay in SQLite."""
        if crash:
            self.emulator.kill()
        else:
            self.emulator.stop()
        self.emulator.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _python_child(
        self, name: str, module_args: list[str], env: Mapping[str, str], logs: Path, url: str
    ) -> ManagedProcess:
        return ManagedProcess(
            name,
            [sys.executable, "-m", *module_args, "--host", self.config.host, "--log-level", self.config.log_level],
            env=env,
            log_path=logs / f"{name}.log",
            ready=lambda: http_ok(url + HEALTH_PATH),
            startup_timeout=self.config.startup_timeout,
        )


def _base_env(config: StackConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        AWS_DEFAULT_REGION=config.region,
        AWS_REGION=config.region,
        AWS_ACCESS_KEY_ID=config.access_key_id,
        AWS_SECRET_ACCESS_KEY=config.secret_access_key,
        # No instance-metadata lookups: they stall each fresh botocore session by seconds.
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def main(argv: list[str] | None = None) -> None:
    defaults = StackConfig()
    parser = argparse.ArgumentParser(description="Run the Durable side of the matching system locally")
    parser.add_argument("--state-dir", type=Path, default=defaults.state_dir)
    parser.add_argument("--durable-api-port", type=int, default=defaults.durable_api_port)
    parser.add_argument("--emulator-port", type=int, default=defaults.emulator_port)
    parser.add_argument("--lambda-port", type=int, default=defaults.lambda_port)
    parser.add_argument("--moto-port", type=int, default=defaults.moto_port)
    parser.add_argument("--globalcoach-port", type=int, default=defaults.globalcoach_port)
    parser.add_argument("--region", default=defaults.region)
    parser.add_argument(
        "--console-url",
        default=os.environ.get("LOCAL_DURABLE_CONSOLE_URL", defaults.console_base_url),
        help="the console the workflow calls (candidates endpoint) and posts its callback to",
    )
    parser.add_argument(
        "--auth-mode",
        choices=("iam_sigv4", "api_key"),
        default=defaults.console_auth_mode,
        help="the mode printed for the console; the Durable API accepts both",
    )
    parser.add_argument("--api-key", default=os.environ.get("LOCAL_DURABLE_API_KEY", defaults.api_key))
    parser.add_argument(
        "--internal-token", default=os.environ.get("LOCAL_DURABLE_INTERNAL_TOKEN", defaults.internal_token)
    )
    parser.add_argument(
        "--webhook-secret", default=os.environ.get("LOCAL_DURABLE_WEBHOOK_SECRET", defaults.webhook_secret)
    )
    parser.add_argument(
        "--globalcoach-mode",
        choices=("approve_all", "approve_fraction", "reject_all", "staff"),
        default=defaults.globalcoach_mode,
    )
    parser.add_argument("--globalcoach-delay", type=float, default=defaults.globalcoach_delay_seconds)
    parser.add_argument("--globalcoach-fraction", type=float, default=defaults.globalcoach_fraction)
    parser.add_argument("--skip-time", action="store_true", help="durable waits complete at once (emulator)")
    parser.add_argument("--fresh", action="store_true", help="forget the emulator's stored executions")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--env-file", type=Path, help="also write the console's environment here (KEY=value lines) once up"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    config = replace(
        defaults,
        state_dir=args.state_dir,
        durable_api_port=args.durable_api_port,
        emulator_port=args.emulator_port,
        lambda_port=args.lambda_port,
        moto_port=args.moto_port,
        globalcoach_port=args.globalcoach_port,
        region=args.region,
        console_base_url=args.console_url,
        console_auth_mode=args.auth_mode,
        api_key=args.api_key,
        internal_token=args.internal_token,
        webhook_secret=args.webhook_secret,
        globalcoach_mode=args.globalcoach_mode,
        globalcoach_delay_seconds=args.globalcoach_delay,
        globalcoach_fraction=args.globalcoach_fraction,
        skip_time=args.skip_time,
        fresh=args.fresh,
        log_level=args.log_level,
    )
    stack = LocalDurableStack(config)
    stop = threading.Event()
    # SIGTERM and Ctrl-C both end the wait below; stop() then reaps every child.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with stack:
        print("# Local durable stack is up. Point the console at it with:", flush=True)
        for key, value in stack.env.items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        if args.env_file:
            # Written whole, then renamed: a reader polling for the file never sees half of it.
            partial = args.env_file.with_suffix(".partial")
            partial.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in stack.env.items()))
            partial.chmod(0o600)
            partial.replace(args.env_file)
        print(
            f"# emulator {stack.emulator_url}  lambda stand-in {stack.lambda_url}  "
            f"GlobalCoach {stack.globalcoach_url}  logs {config.state_dir / 'logs'}\n# Ctrl-C stops everything.",
            flush=True,
        )
        stop.wait()
    print("# stopped", flush=True)


if __name__ == "__main__":
    main()
