"""The whole check: ``python3 tests/run.py [--python X.Y]... [--jobs N] [pytest args]``.

The interpreter running this script is the main one. In ``.venv`` it runs ruff check, ruff
format --check and mypy --strict (all three judge the code as Python 3.10, the oldest
supported), then the whole pytest suite. Every other CPython that pyproject's classifiers
claim and that can be found here (pyenv, or ``pythonX.Y`` on PATH) runs the SDK's tests in
its own ``.venv-X.Y``: everything but the ``slow`` and ``integration`` marks. A claimed
version that cannot be found is reported as skipped, with the reason.

Two interpreters are tested at a time. The main one's slow tests (the soak, the benchmarks'
quick mode) then wait until the others are done and run alone: they load the machine on
purpose, and their bounds assume it is otherwise quiet.

Options, before any pytest argument:

``--python X.Y``
    Test only this version (repeatable). The lint and type checks come with the main one.
``--jobs N``
    How many interpreters are tested at once (default 2); ``--jobs 1`` runs one after
    another, the main one's tests in a single run.

Every pytest argument goes to each interpreter's run, and the main one's tests are then a
single run: ``-k resolver`` runs the resolver tests on every version; ``-m ''`` lifts the
selection on the other versions. Each run's output is kept in ``<venv>/pytest.log``. The
main interpreter prints as it goes; the others print nothing unless they fail, and then
their log is shown at the end (with ``--jobs 1`` every run prints as it goes). The command
exits non-zero if anything failed, and its last line is pytest's kind of summary, summed
over every interpreter.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _pythons import (
    PYPROJECT,
    ROOT,
    Interpreter,
    Missing,
    SetupError,
    claimed_versions,
    find,
    main_interpreter,
    prepare,
)
from _report import Part, Report, pytest_summary, show_problems, summarize

#: What the other interpreters leave out: the long runs and the framework tests.
OTHERS_SELECTION = ("-m", "not slow and not integration")
#: The main interpreter's tests, in two parts when other interpreters run beside it.
MAIN_WITH_OTHERS, MAIN_ALONE = ("-m", "not slow"), ("-m", "slow")
DEFAULT_JOBS = 2
#: A run out of view still going after this long is stopped and reported, not left to
#: hang CI in silence (one in view shows where it is stuck, and may be long on purpose).
SUITE_TIMEOUT = 15 * 60
#: pytest exits 5 when nothing was selected: on another interpreter, that is the selection.
NO_TESTS_RAN = 5
_RUNNING: set[subprocess.Popen[bytes]] = set()


@dataclass(frozen=True)
class Options:
    versions: tuple[str, ...] = ()
    jobs: int = DEFAULT_JOBS
    pytest_args: tuple[str, ...] = ()


def parse(argv: Sequence[str]) -> Options:
    """Runner options first, then pytest's, passed on untouched."""
    versions: list[str] = []
    jobs = DEFAULT_JOBS
    rest = list(argv)
    while rest and rest[0].partition("=")[0] in ("--python", "--jobs"):
        name, _, value = rest.pop(0).partition("=")
        if not value:
            if not rest:
                raise SystemExit(f"tests/run.py: {name} needs a value")
            value = rest.pop(0)
        if name == "--python":
            versions.append(value)
        elif value.isdigit() and int(value) > 0:
            jobs = int(value)
        else:
            raise SystemExit(f"tests/run.py: --jobs takes a whole number above 0, not {value!r}")
    return Options(tuple(versions), jobs, tuple(rest))


def choose(
    requested: Sequence[str], claimed: Sequence[str], main: Interpreter
) -> tuple[list[Interpreter], list[Missing]]:
    """The interpreters to test, the main one first, and the claimed ones not found."""
    versions = list(dict.fromkeys(requested or [main.version, *claimed]))
    unknown = [version for version in versions if version not in (*claimed, main.version)]
    if unknown:
        raise SystemExit(
            f"tests/run.py: {', '.join(unknown)}: not a version pyproject.toml claims"
            f" ({', '.join(claimed)})"
        )
    found: list[Interpreter] = []
    missing: list[Missing] = []
    for version in versions:
        result = main if version == main.version else find(version)
        if isinstance(result, Interpreter):
            found.append(result)
        else:
            missing.append(result)
    found.sort(key=lambda interpreter: not interpreter.main)
    return found, missing


def run_interpreter(report: Report, options: Options, *, shown: bool, split: bool) -> None:
    """All one interpreter does: the checks if it is the main one, then its tests.

    With *split*, the main interpreter leaves its slow tests for :func:`run_all` to run
    once nothing else is running.
    """
    if report.interpreter.main:
        check(report, "ruff check", "ruff", "check", ".")
        check(report, "ruff format --check", "ruff", "format", "--check", ".")
        check(report, "mypy", "mypy")
        arguments = MAIN_WITH_OTHERS if split else options.pytest_args
        run_pytest(report, "pytest", arguments, shown=shown, selected=split)
    else:
        arguments = (*OTHERS_SELECTION, *options.pytest_args)
        run_pytest(report, "pytest", arguments, shown=shown, selected=True)


def set_up(report: Report) -> None:
    """Build or refresh the interpreter's venv (pip only when pyproject.toml changed)."""
    interpreter = report.interpreter
    started = time.monotonic()
    try:
        done = prepare(interpreter)
    except SetupError as exc:
        report.problem = f"{interpreter.release}: could not set up its venv: {exc}"
        report.parts.append(Part("install", False, time.monotonic() - started))
        return
    seconds = time.monotonic() - started
    venv = interpreter.venv.relative_to(ROOT)
    print(f"+ {interpreter.release}: {venv} {done} in {seconds:.1f}s", flush=True)
    report.parts.append(Part("install", True, seconds, done))


def check(report: Report, name: str, *command: str) -> None:
    """One of the main interpreter's checks (ruff, mypy), in full view."""
    print(f"+ {name}", flush=True)
    started = time.monotonic()
    status = subprocess.run(
        [str(report.interpreter.python.parent / command[0]), *command[1:]],
        cwd=ROOT,
        env=environment(report.interpreter),
        check=False,
    ).returncode
    report.parts.append(Part(name, status == 0, time.monotonic() - started))


def run_pytest(
    report: Report, name: str, arguments: Sequence[str], *, shown: bool, selected: bool
) -> None:
    """pytest on the report's interpreter, logged, and on the terminal too if *shown*.

    When the runner *selected* tests by mark, a run that finds none to run is no failure.
    """
    interpreter = report.interpreter
    log = interpreter.venv / ("pytest.log" if name == "pytest" else "pytest-slow.log")
    color = ["--color=yes"] if shown and sys.stdout.isatty() else []
    if shown:
        print(f"+ {interpreter.release}: pytest {shlex.join(arguments)}", flush=True)
    started = time.monotonic()
    status = _logged(
        [str(interpreter.python), "-m", "pytest", *color, *arguments],
        environment(interpreter),
        log,
        shown=shown,
    )
    seconds = time.monotonic() - started
    found = pytest_summary(log.read_text(errors="replace")[-65536:])
    detail, counts = found or (f"pytest exited with {status}", Counter[str]())
    if status is None:
        detail = f"stopped after {SUITE_TIMEOUT} s; {detail}"
    elif status == NO_TESTS_RAN and selected:
        detail = f"nothing selected here: {detail}"
    ok = status == 0 or (status == NO_TESTS_RAN and selected)
    if not ok and not counts["failed"] and not counts["errors"]:
        counts["errors"] += 1
    report.parts.append(Part(name, ok, seconds, detail, counts, log, shown))


def _logged(command: list[str], env: dict[str, str], log: Path, *, shown: bool) -> int | None:
    """Run *command*, its output to *log* (and stdout); None if it ran out of time."""
    timed_out = threading.Event()
    with log.open("wb") as sink, subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:  # fmt: skip
        _RUNNING.add(process)

        def stop() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(SUITE_TIMEOUT, stop)
        if not shown:
            timer.start()
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 65536):
            sink.write(chunk)
            if shown:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        process.wait()
        timer.cancel()
        _RUNNING.discard(process)
    return None if timed_out.is_set() else process.returncode


def environment(interpreter: Interpreter) -> dict[str, str]:
    """The environment of a shell with the interpreter's venv activated."""
    path = os.pathsep.join([str(interpreter.python.parent), os.environ.get("PATH", "")])
    return {**os.environ, "VIRTUAL_ENV": str(interpreter.venv), "PATH": path}


def run_all(reports: Sequence[Report], options: Options) -> None:
    """Set up every venv, then test each interpreter, ``options.jobs`` at a time, in order.

    The installs come first, one at a time: they are heavy (no test should run beside
    one), and an editable install writes steadycron.egg-info into the project.

    When interpreters run side by side and no pytest argument narrows the run, the main
    interpreter's slow tests come last, alone: they load the machine on purpose and their
    bounds assume it is otherwise quiet.
    """
    for report in reports:
        set_up(report)
    reports = [report for report in reports if report.ok]
    if not reports:
        return
    split = options.jobs > 1 and len(reports) > 1 and not options.pytest_args
    pool = ThreadPoolExecutor(options.jobs)
    try:
        runs = [
            pool.submit(
                run_interpreter, report, options, shown=index == 0 or options.jobs == 1, split=split
            )
            for index, report in enumerate(reports)
        ]
        for run in runs:
            run.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(_RUNNING):
            process.terminate()
        raise
    pool.shutdown()
    main = reports[0]
    if split and main.interpreter.main:
        run_pytest(main, "pytest -m slow", MAIN_ALONE, shown=True, selected=True)
        for part in main.parts:
            part.counts.pop("deselected", None)  # between them, the two runs ran everything


def main(argv: Sequence[str]) -> int:
    started = time.monotonic()
    options = parse(argv)
    claimed = claimed_versions(PYPROJECT.read_text())
    found, missing = choose(options.versions, claimed, main_interpreter())
    for gone in missing:
        print(f"+ {gone.version}: skipped, not found: {gone.reason}", flush=True)
    reports = [Report(interpreter) for interpreter in found]
    try:
        run_all(reports, options)
    except KeyboardInterrupt:
        print("\ntests/run.py: interrupted", file=sys.stderr)
        return 130
    show_problems(reports)
    print(summarize(reports, missing, time.monotonic() - started), flush=True)
    asked_for_missing = bool(options.versions and missing)
    return 0 if all(report.ok for report in reports) and not asked_for_missing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
