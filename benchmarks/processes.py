"""Fresh interpreter processes, timed wall clock to wall clock.

Children get the parent's environment without proxy settings and with bytecode caching
allowed, so after one untimed warm-up run both contenders start from compiled modules,
as an installed package would. They start without ``site`` (``python -S``) and find this
checkout and the installed packages through ``PYTHONPATH``: the editable install of a
development checkout adds an import hook that every process would load at start (pathlib,
fnmatch and re: 10 to 40 ms on the development machine), which a user's installed
package does not have and which would blur every ratio.
"""

from __future__ import annotations

import os
import site
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .timing import Batch

_DROPPED = {"PYTHONDONTWRITEBYTECODE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
_CHECKOUT = Path(__file__).resolve().parent.parent


def python_command(python: str) -> list[str]:
    """How a measured child starts *python*: without ``site`` (see above)."""
    return [python, "-S"]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a measured child process runs with."""
    env = {name: value for name, value in os.environ.items() if name.upper() not in _DROPPED}
    env["PYTHONPATH"] = os.pathsep.join([str(_CHECKOUT), *site.getsitepackages()])
    env.update(extra or {})
    return env


def run(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run one child to completion; a failing child fails the benchmark."""
    done = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return done


def process_batch(argv: Sequence[str], env: Mapping[str, str]) -> Batch:
    """A batch that starts *argv* once per iteration."""

    def batch(iterations: int) -> None:
        for _ in range(iterations):
            run(argv, env)

    return batch


def wall_seconds(argv: Sequence[str], env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    run(argv, env)
    return time.perf_counter() - started
