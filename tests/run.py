"""The whole check, from nothing but Python: ``python3 tests/run.py [pytest args]``.

Creates ``.venv`` beside the project if needed, installs the package with its test
dependencies, then runs lint (ruff), types (mypy --strict) and the tests (pytest).
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")


def step(*command: str | Path) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    if status:
        sys.exit(status)


def main() -> None:
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    step(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    step(BIN / "python", "-m", "pip", "install", "-q", "-e", ".[test]")
    step(BIN / "ruff", "check", ".")
    step(BIN / "ruff", "format", "--check", ".")
    step(BIN / "mypy")
    step(BIN / "python", "-m", "pytest", *sys.argv[1:])


if __name__ == "__main__":
    main()
