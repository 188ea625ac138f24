"""Real framework processes for integration tests, always cleaned up.

Each process runs in a session of its own, so stopping it also reaches what it forked
(a Celery worker's pool children): a polite signal first, then SIGKILL to the whole
group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

#: ``tests/``: where the test packages (``integrations.*``) are importable from.
TESTS = Path(__file__).resolve().parent.parent


class Process:
    """A child process whose output goes to a log file.

    Args:
        command: the command line (``sys.executable`` is used for ``python``).
        env: variables added to this process's environment.
        log: the file stdout and stderr are written to.
    """

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str], log: Path) -> None:
        self.log = log
        environment = {**os.environ, **env, "PYTHONPATH": str(TESTS)}
        with open(log, "wb") as output:
            self._popen = subprocess.Popen(
                [sys.executable if part == "python" else part for part in command],
                cwd=TESTS,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def exit_code(self) -> int | None:
        return self._popen.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM, wait up to *grace* seconds, then SIGKILL the whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signal.SIGKILL)
        self._popen.wait()


@contextlib.contextmanager
def running(command: Sequence[str], *, env: Mapping[str, str], log: Path) -> Iterator[Process]:
    """A :class:`Process` that is stopped when the block ends, however it ends."""
    process = Process(command, env=env, log=log)
    try:
        yield process
    finally:
        process.stop()


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    what: str,
    watch: Sequence[Process] = (),
) -> None:
    """Poll *condition* until it is true; fail the test saying *what* did not happen, at
    once (with its output) when a *watch*ed process has died meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in watch:
            if not process.alive():
                raise AssertionError(f"{process.log.name} died:\n{process.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
