"""Child processes of the local stack: started with a log file, probed with a deadline, always reaped."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from devtools.durable_local._http import wait_until

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


class ManagedProcess:
    """One child process whose stdout/stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        ready: Callable[[], bool],
        startup_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self._ready = ready
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process without waiting (so several children can boot in parallel)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - argv built by the stack, no shell
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=str(REPO_ROOT),
        )
        logger.info("started %s (pid %s), log %s", self.name, self._process.pid, self.log_path)

    def wait_ready(self) -> None:
        try:
            wait_until(
                self._probe,
                timeout=self.startup_timeout,
                interval=0.1,
                what=f"{self.name} ready",
                fatal=(ChildExited,),
            )
        except BaseException:
            self.stop()
            raise

    def _probe(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise ChildExited(f"{self.name} exited during startup; see {self.log_path}")
        return self._ready()

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM; killing it", self.name)
                process.kill()
                process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self.stop()


class ChildExited(RuntimeError):
    """A child process died before it became ready."""
