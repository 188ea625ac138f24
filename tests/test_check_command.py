"""``tests/run.py``: which Pythons it tests, how it reads their runs, what it reports."""

from __future__ import annotations

import platform
import re
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import _pythons
import conftest
import pytest
import run
from _pythons import Interpreter, Missing, claimed_versions, find, newest_release, prepare, probe
from _report import Part, Report, pytest_summary, summarize, summary_line

PYPROJECT_TEXT = _pythons.PYPROJECT.read_text()


def test_the_tools_judge_the_code_as_the_oldest_claimed_python() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT_TEXT)
    claimed = claimed_versions(PYPROJECT_TEXT)
    oldest, newest = claimed[0], claimed[-1]
    assert project["project"]["requires-python"] == f">={oldest}"
    assert project["tool"]["mypy"]["python_version"] == oldest
    assert project["tool"]["ruff"]["target-version"] == "py" + oldest.replace(".", "")
    minors = range(int(oldest.split(".")[1]), int(newest.split(".")[1]) + 1)
    assert claimed == [f"3.{minor}" for minor in minors], "no version left out in between"


def test_claimed_versions_come_from_the_classifiers_oldest_first() -> None:
    text = """classifiers = [
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
    ]"""
    assert claimed_versions(text) == ["3.9", "3.10", "3.12"]


def test_the_newest_plain_release_of_a_version_is_taken_from_pyenv() -> None:
    listing = "system\n3.12.1\n3.12.10\n3.12.2/envs/tools\n3.13.0t\n3.12-dev\npypy3.12-7.3\n3.1.5\n"
    assert newest_release("3.12", listing) == "3.12.10"
    assert newest_release("3.13", listing) is None
    assert newest_release("3.1", listing) == "3.1.5"


def test_the_running_interpreter_says_what_it_is() -> None:
    expected = f"{platform.python_implementation()} {platform.python_version()}"
    assert probe(Path(sys.executable)) == expected


def test_a_name_on_path_that_does_not_run_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like a pyenv shim for a version not selected: on PATH, yet it exits 127."""
    executable(tmp_path / "python3.99", "echo 'pyenv: python3.99: command not found' >&2; exit 127")
    executable(tmp_path / "python3.98", "echo CPython 3.8.18")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_pythons, "_pyenv", lambda: None)
    assert find("3.99") == Missing("3.99", f"no pyenv; {tmp_path / 'python3.99'} does not run")
    assert find("3.98") == Missing("3.98", f"no pyenv; {tmp_path / 'python3.98'} is CPython 3.8.18")
    assert find("3.97") == Missing("3.97", "no pyenv; no python3.97 on PATH")


def test_a_working_python_on_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (tmp_path / f"python{version}").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_pythons, "_pyenv", lambda: None)
    found = find(version)
    assert isinstance(found, Interpreter), found
    assert (found.release, found.executable) == (
        platform.python_version(),
        tmp_path / f"python{version}",
    )


def test_pip_runs_only_when_the_venv_is_new_or_pyproject_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[tuple[str, ...]] = []
    made: set[str] = set()

    def step(*command: str | Path) -> None:
        steps.append(tuple(str(part) for part in command[1:]))
        if "venv" in command:
            made.add(str(command[-1]))
            Path(command[-1]).mkdir()

    interpreter = Interpreter("3.99", "3.99.1", Path("/opt/python3.99"))
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[project]\n")
    monkeypatch.setattr(_pythons, "ROOT", tmp_path)
    monkeypatch.setattr(_pythons, "PYPROJECT", pyproject)
    monkeypatch.setattr(_pythons, "_step", step)
    monkeypatch.setattr(_pythons, "probe", lambda python: "CPython 3.99.1" if made else None)
    venv = str(tmp_path / ".venv-3.99")
    install = ("-m", "pip", "install", "-q", "-e", ".[test]")

    assert prepare(interpreter) == "built"
    assert steps == [
        ("-m", "venv", "--clear", venv),
        ("-m", "pip", "install", "-q", "--upgrade", "pip"),
        install,
    ]
    steps.clear()
    assert prepare(interpreter) == "up to date"
    assert steps == []
    pyproject.write_text("[project]\ndependencies = ['attrs']\n")
    assert prepare(interpreter) == "installed"
    assert steps == [install]


def test_a_failed_install_leaves_no_stamp_so_the_next_run_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def step(*command: str | Path) -> None:
        attempts.append(str(command[-1]))
        raise _pythons.SetupError("no network")

    (tmp_path / ".venv-3.99").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    monkeypatch.setattr(_pythons, "ROOT", tmp_path)
    monkeypatch.setattr(_pythons, "PYPROJECT", tmp_path / "pyproject.toml")
    monkeypatch.setattr(_pythons, "_step", step)
    monkeypatch.setattr(_pythons, "probe", lambda python: "CPython 3.99.1")
    interpreter = Interpreter("3.99", "3.99.1", Path("/opt/python3.99"))
    for _ in range(2):
        with pytest.raises(_pythons.SetupError):
            prepare(interpreter)
    assert attempts == [".[test]", ".[test]"]


@pytest.mark.parametrize(
    ("output", "line", "counts"),
    [
        (
            "....\n==== 3 failed, 745 passed, 12 deselected in 166.78s (0:02:46) ====\n",
            "3 failed, 745 passed, 12 deselected in 166.78s (0:02:46)",
            {"failed": 3, "passed": 745, "deselected": 12},
        ),
        (
            "x\n\x1b[32m\x1b[1m2 passed\x1b[0m, \x1b[33m1 warning\x1b[0m\x1b[32m in 0.12s\x1b[0m\n",
            "2 passed, 1 warning in 0.12s",
            {"passed": 2, "warnings": 1},
        ),
        ("E   ImportError\n1 error in 0.30s\n", "1 error in 0.30s", {"errors": 1}),
        ("===== no tests ran in 0.01s =====\n", "no tests ran in 0.01s", {}),
        (
            "=== 9 passed in 1.00s ===\n=== 1 failed, 2 passed in 3.00s ===\ntrailer\n",
            "1 failed, 2 passed in 3.00s",
            {"failed": 1, "passed": 2},
        ),
    ],
)
def test_pytests_summary_line_is_read_back(output: str, line: str, counts: dict[str, int]) -> None:
    assert pytest_summary(output) == (line, Counter(counts))


def test_output_without_a_summary_line_has_none() -> None:
    assert pytest_summary("ERROR: usage: pytest [options]\nKilled\n") is None


def test_the_closing_line_reads_like_pytests() -> None:
    counts = Counter({"passed": 2971, "deselected": 57, "failed": 1, "errors": 1})
    line = summary_line(counts, 306.35)
    assert line.strip("= ") == "1 failed, 2971 passed, 57 deselected, 1 error in 306.35s (0:05:06)"
    assert len(line) == 80
    assert summary_line(Counter({"passed": 3, "warnings": 2}), 1.5).strip("= ") == (
        "3 passed, 2 warnings in 1.50s"
    )
    assert summary_line(Counter(), 0.25).strip("= ") == "no tests ran in 0.25s"


def test_the_report_has_a_line_per_python_and_counts_a_failed_lint_as_an_error() -> None:
    main = Interpreter("3.11", "3.11.7", Path("/py311"), main=True)
    other = Interpreter("3.10", "3.10.13", Path("/py310"))
    main_report = Report(main, [
        Part("install", True, 0.1, "up to date"),
        Part("ruff check", False, 0.4),
        Part("pytest", True, 160.0, "748 passed in 159.90s", Counter(passed=748)),
    ])  # fmt: skip
    other_report = Report(other, [
        Part("pytest", False, 120.0, "1 failed, 730 passed", Counter(failed=1, passed=730)),
    ])  # fmt: skip
    missing = Missing("3.13", "pyenv has no 3.13.x; no python3.13 on PATH")
    lines = summarize([main_report, other_report], [missing], 290.0).splitlines()
    assert [re.split(r"\s+", line)[:2] for line in lines[1:-1]] == [
        ["3.10.13", "FAILED"],
        ["3.11.7", "FAILED"],
        ["3.13", "SKIPPED"],
    ]
    assert "ruff check 0.4s FAILED" in lines[2]
    assert lines[3].endswith("not found: pyenv has no 3.13.x; no python3.13 on PATH")
    assert lines[-1].strip("= ") == "1 failed, 1478 passed, 1 error in 290.00s (0:04:50)"


def test_runner_options_come_first_and_the_rest_is_pytests() -> None:
    options = run.parse(["--python", "3.12", "--python=3.13", "--jobs=3", "-k", "--python", "-x"])
    assert options == run.Options(("3.12", "3.13"), 3, ("-k", "--python", "-x"))
    assert run.parse([]) == run.Options((), run.DEFAULT_JOBS, ())
    with pytest.raises(SystemExit, match="whole number"):
        run.parse(["--jobs", "0"])
    with pytest.raises(SystemExit, match="needs a value"):
        run.parse(["--python"])


def test_only_claimed_versions_can_be_asked_for_and_the_main_one_comes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = Interpreter("3.11", "3.11.7", Path("/py311"), main=True)
    other = Interpreter("3.12", "3.12.1", Path("/py312"))
    monkeypatch.setattr(
        run, "find", lambda version: other if version == "3.12" else Missing(version, "gone")
    )
    claimed = ["3.10", "3.11", "3.12"]
    assert run.choose(["3.12", "3.11"], claimed, main) == ([main, other], [])
    assert run.choose([], claimed, main) == ([main, other], [Missing("3.10", "gone")])
    with pytest.raises(SystemExit, match=r"3\.9: not a version pyproject.toml claims"):
        run.choose(["3.9"], claimed, main)


@pytest.mark.parametrize(
    ("main", "selected", "exit_code", "printed", "ok", "detail", "counts"),
    [
        (False, True, 0, "== 9 passed in 0.10s ==", True, "9 passed in 0.10s", {"passed": 9}),
        (False, True, 5, "== 4 deselected in 0.10s ==", True,
         "nothing selected here: 4 deselected in 0.10s", {"deselected": 4}),
        (True, False, 5, "== no tests ran in 0.10s ==", False, "no tests ran in 0.10s",
         {"errors": 1}),
        (True, False, 1, "== 1 failed, 8 passed in 0.10s ==", False,
         "1 failed, 8 passed in 0.10s", {"failed": 1, "passed": 8}),
        (False, True, 4, "ERROR: file or directory not found: nowhere", False,
         "pytest exited with 4", {"errors": 1}),
    ],
)  # fmt: skip
def test_a_test_run_is_judged_by_its_exit_code_and_told_by_its_summary(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    main: bool,
    selected: bool,
    exit_code: int,
    printed: str,
    ok: bool,
    detail: str,
    counts: dict[str, int],
) -> None:
    monkeypatch.setattr(_pythons, "ROOT", tmp_path)
    interpreter = Interpreter("3.99", "3.99.1", Path("/opt/python3.99"), main=main)
    interpreter.python.parent.mkdir(parents=True)
    executable(interpreter.python, f"echo 'collected 9 items'; echo '{printed}'; exit {exit_code}")
    report = Report(interpreter)
    run.run_pytest(report, "pytest", ["-m", "not slow"], shown=False, selected=selected)
    (part,) = report.parts
    assert (part.ok, part.detail, part.counts) == (ok, detail, Counter(counts))
    assert part.log is not None
    assert part.log.read_text().splitlines() == ["collected 9 items", printed]


def test_tests_under_integrations_carry_the_integration_mark(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not named "integrations": that name is taken by the real package on sys.path.
    pytester.mkpydir("frameworks")
    pytester.makepyfile(
        **{"frameworks/test_framework": "def test_a(): pass", "test_sdk": "def test_b(): pass"}
    )
    items, _ = pytester.inline_genitems()
    monkeypatch.setattr(conftest, "INTEGRATIONS", pytester.path / "frameworks")
    conftest.pytest_collection_modifyitems(items)
    marked = {item.name: item.get_closest_marker("integration") is not None for item in items}
    assert marked == {"test_a": True, "test_b": False}


def test_the_integration_mark_is_set_before_a_selection_is_made() -> None:
    """``-m 'not integration'`` leaves out every test under tests/integrations/."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not integration",
         str(conftest.INTEGRATIONS)],
        cwd=_pythons.ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == run.NO_TESTS_RAN, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* deselected\b", result.stdout), result.stdout


def executable(path: Path, script: str) -> None:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
