"""The Python versions the package claims, found on this machine, each in its own venv.

``tests/run.py`` tests every CPython that pyproject's classifiers list: the one running it
(the main interpreter, in ``.venv``) and each other one it can find (in ``.venv-X.Y``),
from pyenv or as ``pythonX.Y`` on PATH. A venv is rebuilt only when its interpreter
changed, and reinstalled only when pyproject.toml did: reruns cost no pip at all.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
#: What every venv gets: the package, editable, with its test tools.
INSTALL = ("-e", ".[test]")
STAMP_NAME = "steadycron-install.stamp"

_CLASSIFIER = re.compile(r'"Programming Language :: Python :: (3\.\d+)"')
_RELEASE = re.compile(r"(3\.\d+)\.(\d+)")
_PROBE = "import platform; print(platform.python_implementation(), platform.python_version())"
_BIN = "Scripts" if sys.platform == "win32" else "bin"


def claimed_versions(pyproject_text: str) -> list[str]:
    """The ``X.Y`` versions listed in the classifiers, oldest first."""
    return sorted(set(_CLASSIFIER.findall(pyproject_text)), key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class Interpreter:
    """A CPython found on this machine (``version`` is ``X.Y``, ``release`` ``X.Y.Z``)."""

    version: str
    release: str
    executable: Path
    main: bool = False

    @property
    def venv(self) -> Path:
        return ROOT / (".venv" if self.main else f".venv-{self.version}")

    @property
    def python(self) -> Path:
        """The venv's interpreter: what runs the tools and the tests."""
        return self.venv / _BIN / "python"


@dataclass(frozen=True)
class Missing:
    """A claimed version that cannot be had here, and why."""

    version: str
    reason: str


def main_interpreter() -> Interpreter:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return Interpreter(version, platform.python_version(), Path(sys.executable), main=True)


def find(version: str) -> Interpreter | Missing:
    """The newest ``version`` pyenv has, else ``pythonX.Y`` on PATH -- if it really runs.

    A pyenv shim is on PATH for every version pyenv knows, selected or not, so finding
    the name proves nothing: each candidate is asked what it is.
    """
    notes: list[str] = []
    for candidate in _candidates(version, notes):
        found = probe(candidate)
        if found is None:
            notes.append(f"{candidate} does not run")
        elif found.startswith(f"CPython {version}."):
            return Interpreter(version, found.split()[1], candidate)
        else:
            notes.append(f"{candidate} is {found}")
    return Missing(version, "; ".join(notes))


def newest_release(version: str, pyenv_versions: str) -> str | None:
    """The newest plain ``X.Y.Z`` of *version* in ``pyenv versions --bare`` output.

    Leaves out what is not a plain CPython release: ``3.13.0t`` (free-threaded),
    ``3.12-dev``, ``3.12.1/envs/name`` (a virtualenv), ``pypy3.10-7.3.15``.
    """
    releases = [
        match
        for line in pyenv_versions.split()
        if (match := _RELEASE.fullmatch(line)) and match.group(1) == version
    ]
    if not releases:
        return None
    return max(releases, key=lambda match: int(match.group(2))).group(0)


def _candidates(version: str, notes: list[str]) -> list[Path]:
    candidates = []
    pyenv = _pyenv()
    if pyenv is None:
        notes.append("no pyenv")
    else:
        root, versions = pyenv
        release = newest_release(version, versions)
        if release is None:
            notes.append(f"pyenv has no {version}.x")
        else:
            candidates.append(root / "versions" / release / "bin" / f"python{version}")
    on_path = shutil.which(f"python{version}")
    if on_path is None:
        notes.append(f"no python{version} on PATH")
    else:
        candidates.append(Path(on_path))
    return candidates


@functools.cache
def _pyenv() -> tuple[Path, str] | None:
    """pyenv's root and its ``versions --bare`` listing, asked once."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    try:
        root = _output([pyenv, "root"]).strip()
        versions = _output([pyenv, "versions", "--bare"])
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(root), versions


def probe(python: Path) -> str | None:
    """``"CPython 3.12.1"``: what *python* says it is, or None when it does not run."""
    try:
        return _output([python, "-c", _PROBE]).strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _output(command: list[str | Path]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


class SetupError(Exception):
    """A venv could not be built or installed; carries the tool's output."""


def install_stamp(interpreter: Interpreter, pyproject: bytes) -> str:
    """What the venv's installation depends on: pyproject.toml and the interpreter."""
    digest = hashlib.sha256(pyproject)
    digest.update(f"{interpreter.release} {interpreter.executable} {INSTALL}".encode())
    return digest.hexdigest()


def is_up_to_date(interpreter: Interpreter, stamp: str) -> bool:
    try:
        return (interpreter.venv / STAMP_NAME).read_text() == stamp
    except OSError:
        return False


def prepare(interpreter: Interpreter) -> str:
    """Build or refresh *interpreter*'s venv; say what was done.

    Raises:
        SetupError: with the output of the step that failed.
    """
    stamp = install_stamp(interpreter, PYPROJECT.read_bytes())
    built = probe(interpreter.python) == f"CPython {interpreter.release}"
    if built and is_up_to_date(interpreter, stamp):
        return "up to date"
    if not built:
        _step(interpreter.executable, "-m", "venv", "--clear", interpreter.venv)
        _step(interpreter.python, "-m", "pip", "install", "-q", "--upgrade", "pip")
    (interpreter.venv / STAMP_NAME).unlink(missing_ok=True)
    _step(interpreter.python, "-m", "pip", "install", "-q", *INSTALL)
    (interpreter.venv / STAMP_NAME).write_text(stamp)
    return "installed" if built else "built"


def _step(*command: str | Path) -> None:
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode:
        shown = " ".join(str(part) for part in command)
        raise SetupError(
            f"{shown} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
        )
