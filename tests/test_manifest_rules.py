"""Manifest fields SteadyCron would refuse are errors, unknown ones warnings, in every tool."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from _cli_server import STEADYCRON, environment, serving, steadycron

from steadycron.cli.cron import CronError, check_cron
from steadycron.cli.manifest import ManifestError, read_manifests
from steadycron.cli.manifest_rules import JOB_FIELDS, TOP_LEVEL_FIELDS


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def one_job(tmp_path: Path, fields: str, *, header: str = "version: 2\n") -> Path:
    """A manifest holding one job named Backup with *fields* (YAML lines, 4-space indented)."""
    body = textwrap.indent(textwrap.dedent(fields).strip("\n"), "    ")
    text = f"{header}jobs:\n  - id: backup\n    name: Backup\n{body}\n"
    return write(tmp_path / "monitors.yaml", text)


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        read_manifests([path], environ={})
    return [str(problem) for problem in caught.value.problems if problem.severity == "error"]


# -- what a job may hold --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        "kind: heartbeat\nschedule: '15 3 * * *'",
        "kind: heartbeat\ninterval: 10",
        "kind: heartbeat\ninterval: 86400\ngrace: 0\nmax_run_duration_seconds: 60",
        "kind: heartbeat\nschedule: '0 9-17/2 * jan-mar MON-FRI'\ngrace: 86400",
        "kind: heartbeat\ninterval: 60\ntimezone: America/Chicago\npaused: false",
        "kind: heartbeat\ninterval: 60\nmax_run_duration_seconds: 86400\nstuck_run_detection: no",
        "kind: agent",  # agent and http jobs need no schedule of ours
        "url: https://internal.example.org/warm",
    ],
)
def test_valid_jobs_read_without_a_problem(tmp_path: Path, fields: str) -> None:
    read = read_manifests([one_job(tmp_path, fields)], environ={})

    assert list(read.jobs) == ["backup"]
    assert read.warnings == ()


def test_a_missing_version_is_an_error_on_the_first_line(tmp_path: Path) -> None:
    manifest = one_job(tmp_path, "kind: heartbeat\ninterval: 60", header="namespace: ops\n")

    assert errors_of(manifest) == [
        f"{manifest}:1: missing 'version' (write 'version: 2' at the top)"
    ]


def test_another_version_is_an_error_on_its_line(tmp_path: Path) -> None:
    manifest = one_job(tmp_path, "kind: heartbeat\ninterval: 60", header="# ops\nversion: 1\n")

    assert errors_of(manifest) == [f"{manifest}:2: 'version' must be 2, not 1"]


def test_a_heartbeat_job_without_schedule_or_interval_is_an_error(tmp_path: Path) -> None:
    manifest = one_job(tmp_path, "kind: heartbeat\ngrace: 60")

    assert errors_of(manifest) == [
        f"{manifest}:3: job 'Backup': a heartbeat job needs a 'schedule' (cron) "
        "or an 'interval' (seconds)"
    ]


def test_schedule_and_interval_together_are_an_error(tmp_path: Path) -> None:
    manifest = one_job(tmp_path, "kind: heartbeat\nschedule: '* * * * *'\ninterval: 60")

    assert errors_of(manifest) == [
        f"{manifest}:3: job 'Backup': give either 'schedule' or 'interval', not both"
    ]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            "schedule: every tuesday",
            "schedule 'every tuesday': a cron expression has 5 fields (minute hour "
            "day-of-month month day-of-week, e.g. '15 3 * * *'), this has 2",
        ),
        ("schedule: '61 3 * * *'", "schedule '61 3 * * *': minute 61 is out of range 0-59"),
        ("schedule: 15", "schedule 15: must be a cron expression in quotes, such as '15 3 * * *'"),
        (
            "interval: banana",
            "'interval' must be a whole number of seconds from 10 to 86400, not 'banana'",
        ),
        ("interval: 5", "'interval' must be a whole number of seconds from 10 to 86400, not 5"),
        (
            "interval: 86401",
            "'interval' must be a whole number of seconds from 10 to 86400, not 86401",
        ),
        ("interval: 30.5", "'interval' must be a whole number of seconds from 10 to 86400"),
        ("interval: true", "'interval' must be a whole number of seconds from 10 to 86400"),
        ("grace: -1", "'grace' must be a whole number of seconds from 0 to 86400, not -1"),
        ("grace: 86401", "'grace' must be a whole number of seconds from 0 to 86400, not 86401"),
        (
            "max_run_duration_seconds: 59",
            "'max_run_duration_seconds' must be a whole number of seconds from 60 to 86400",
        ),
        (
            "max_run_duration_seconds: 90000",
            "'max_run_duration_seconds' must be a whole number of seconds from 60 to 86400",
        ),
        ("timezone: Mars/Olympus", "'timezone' must name an IANA time zone"),
        ("paused: maybe", "'paused' must be true or false, not 'maybe'"),
        ("description: [a, b]", "'description' must be a string"),
    ],
)
def test_invalid_values_are_errors_on_the_line_of_the_field(
    tmp_path: Path, fields: str, error: str
) -> None:
    if "schedule" not in fields and "interval" not in fields:
        fields += "\ninterval: 60"
    manifest = one_job(tmp_path, "kind: heartbeat\n" + fields)

    [message] = errors_of(manifest)

    assert message.startswith(f"{manifest}:6: job 'Backup': {error}")


def test_an_unknown_kind_is_an_error(tmp_path: Path) -> None:
    manifest = one_job(tmp_path, "kind: cronjob\ninterval: 60")

    assert errors_of(manifest) == [
        f"{manifest}:3: job 'Backup': 'kind' must be one of http, heartbeat, agent, not 'cronjob'"
    ]


def test_a_misspelt_field_is_a_warning_that_names_the_right_one(tmp_path: Path) -> None:
    manifest = one_job(tmp_path, "kind: heartbeat\nshedule: '0 3 * * *'\ninterval: 60")

    [warning] = read_manifests([manifest], environ={}).warnings

    assert (warning.severity, str(warning)) == (
        "warning",
        f"{manifest}:6: unknown field 'shedule' in job 'Backup' is ignored; "
        "did you mean 'schedule'?",
    )


def test_the_misspelling_that_leaves_no_schedule_is_also_the_missing_schedule_error(
    tmp_path: Path,
) -> None:
    manifest = one_job(tmp_path, "kind: heartbeat\nshedule: '0 3 * * *'")

    with pytest.raises(ManifestError) as caught:
        read_manifests([manifest], environ={})

    assert [(p.severity, p.line) for p in caught.value.problems] == [
        ("error", 3),
        ("warning", 6),
    ]
    assert "did you mean 'schedule'?" in str(caught.value.problems[1])


def test_every_error_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    first = write(
        tmp_path / "a.yaml",
        """
        jobs:
          - {id: one, name: One, kind: heartbeat, interval: banana}
          - {id: two, name: Two, kind: heartbeat, schedule: "* * *"}
        """,
    )
    second = write(tmp_path / "b.yaml", "version: 2\njobs:\n  - {id: one, name: Again}\n")

    with pytest.raises(ManifestError) as caught:
        read_manifests([tmp_path], environ={})

    places = [(p.path, p.line) for p in caught.value.problems]
    assert places == [(str(first), 1), (str(first), 2), (str(first), 3), (str(second), 3)]
    assert str(caught.value).count("\n") == 3  # one line per error
    assert (caught.value.path, caught.value.line) == (str(first), 1)


# -- cron expressions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "15 3 * * *",
        "*/15 * * * *",
        "0 0 1,15 * 7",
        "0-30/5 8-18 * * 1-5",
        "5/10 * * * *",
        "0 12 * JAN,jul Sun",
        "0 9 * mar-oct mon-fri",
        "59 23 31 12 6",
        "  0\t3 * * *  ",
    ],
)
def test_valid_cron_expressions(expression: str) -> None:
    check_cron(expression)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("every tuesday", "a cron expression has 5 fields"),
        ("0 3 * * * *", "this has 6"),
        ("", "this has 0"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("* 24 * * *", "hour 24 is out of range 0-23"),
        ("* * 0 * *", "day of month 0 is out of range 1-31"),
        ("* * 32 * *", "day of month 32 is out of range 1-31"),
        ("* * * 13 *", "month 13 is out of range 1-12"),
        ("* * * * 8", "day of week 8 is out of range 0-7"),
        ("* * * foo *", "month: 'foo' is not a number 1-12 or a name (jan, feb,"),
        ("* * * * tues", "day of week: 'tues' is not a number 0-7 or a name (sun, mon,"),
        ("* * * * jan", "day of week: 'jan' is not"),
        ("*/0 * * * *", "minute: step '0' must be a whole number from 1 to 60"),
        ("*/x * * * *", "minute: step 'x' must be a whole number"),
        ("* */25 * * *", "hour: step '25' must be a whole number from 1 to 24"),
        ("1,,2 * * * *", "minute: an empty entry"),
        ("/5 * * * *", "minute: '/5' has nothing before the '/'"),
        ("30-10 * * * *", "minute: range '30-10' runs backwards"),
        ("* * * * fri-mon", "day of week: range 'fri-mon' runs backwards"),
        ("? * * * *", "minute: '?' is not a number 0-59"),
        ("* * L * *", "day of month: 'L' is not a number 1-31"),
        ("\u00b2 * * * *", "is not a number 0-59"),
        ("@daily", "write '0 0 * * *' instead of '@daily'"),
        ("@hourly", "write '0 * * * *' instead of '@hourly'"),
    ],
)
def test_invalid_cron_expressions_say_which_part(expression: str, problem: str) -> None:
    with pytest.raises(CronError) as caught:
        check_cron(expression)

    assert problem in str(caught.value)


# -- the tools report them alike ------------------------------------------------------------

WARNED = """\
version: 2
jobs:
  - id: nightly-db-backup
    name: Nightly DB backup
    kind: heartbeat
    interval: 300
    shedule: "0 3 * * *"
"""
BROKEN = """\
version: 2
jobs:
  - id: nightly-db-backup
    name: Nightly DB backup
    kind: heartbeat
    schedule: "every tuesday"
"""
WARNING = "monitors.yaml:7: unknown field 'shedule' in job 'Nightly DB backup' is ignored; did you mean 'schedule'?"  # noqa: E501
ERROR = "monitors.yaml:6: job 'Nightly DB backup': schedule 'every tuesday': a cron expression"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(
        'import steadycron\n\n@steadycron.job("nightly-db-backup")\ndef backup(): ...\n'
    )
    return tmp_path


def test_lint_prints_manifest_warnings_and_still_lints(project: Path) -> None:
    (project / "monitors.yaml").write_text(WARNED)

    result = steadycron("lint", "jobs.py", "--manifest", "monitors.yaml", cwd=project)

    assert result.returncode == 0
    assert result.stderr.decode().splitlines() == [f"steadycron lint: warning: {WARNING}"]


def test_lint_manifest_errors_exit_2(project: Path) -> None:
    (project / "monitors.yaml").write_text(BROKEN)

    result = steadycron("lint", "jobs.py", "--manifest", "monitors.yaml", cwd=project)

    assert result.returncode == 2
    assert f"steadycron lint: error: {ERROR}" in result.stderr.decode()
    assert result.stdout == b""


def test_check_prints_manifest_warnings_and_still_checks(project: Path) -> None:
    (project / "monitors.yaml").write_text(WARNED)
    with serving() as fake:
        fake.add("nightly-db-backup")
        result = steadycron("check", "--manifest", "monitors.yaml", url=fake.url, cwd=project)

    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["ok", "nightly-db-backup"]
    assert f"steadycron check: warning: {WARNING}" in result.stderr.decode()


def test_check_manifest_errors_exit_2_before_any_request(project: Path) -> None:
    (project / "monitors.yaml").write_text(BROKEN)
    with serving() as fake:
        result = steadycron("check", "--manifest", "monitors.yaml", url=fake.url, cwd=project)

    assert result.returncode == 2
    assert f"steadycron check: error: {ERROR}" in result.stderr.decode()
    assert fake.resolves == []


def test_dev_server_manifest_errors_exit_2(project: Path) -> None:
    (project / "monitors.yaml").write_text(BROKEN)

    result = steadycron("dev-server", "--manifest", "monitors.yaml", "--port", "0", cwd=project)

    assert result.returncode == 2
    assert f"steadycron dev-server: error: {ERROR}" in result.stderr.decode()


def test_dev_server_prints_manifest_warnings_and_serves(project: Path) -> None:
    (project / "monitors.yaml").write_text(WARNED)
    child = subprocess.Popen(
        [*STEADYCRON, "dev-server", "monitors.yaml", "--port", "0", "--json"],
        cwd=project,
        env=environment(None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stderr is not None
        first = child.stderr.readline().rstrip("\n")
        banner = child.stderr.readline()
    finally:
        child.terminate()
        child.wait(timeout=10)
        if child.stderr is not None:
            child.stderr.close()

    assert first == f"steadycron dev-server: warning: {WARNING}"
    assert banner.startswith("SteadyCron dev server on http://127.0.0.1:")


def test_the_readme_manifest_example_reads_cleanly(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The monitor manifest") :]
    example = section[section.index("```yaml\n") + len("```yaml\n") :]
    manifest = write(tmp_path / "monitors.yaml", example[: example.index("```")])

    read = read_manifests([manifest], environ={})

    assert read.warnings == ()
    assert {key: job.kind for key, job in read.jobs.items()} == {
        "nightly-db-backup": "heartbeat",
        "queue-drain-tick": "heartbeat",
        "warm-search-index": "http",
    }
    reference = section[: section.index("\n## ")]
    undocumented = [f for f in (*TOP_LEVEL_FIELDS, *JOB_FIELDS) if f"`{f}`" not in reference]
    assert undocumented == []
