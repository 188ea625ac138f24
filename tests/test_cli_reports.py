"""Run reports from the shell: ``ping --report`` and ``run``'s STEADYCRON_REPORT_FILE,
through the installed ``steadycron`` console script, against the dev server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_server import environment

from steadycron.cli.devserver import DevServer
from steadycron.testing import Report

AGENT = "nightly-summarizer"
HEARTBEAT = "nightly-db-backup"
RUN_ID = "0123456789abcdef0123456789abcdef"
#: The console script pip installed beside this Python, as crontab runs it.
CONSOLE_SCRIPT = Path(sys.executable).with_name("steadycron")


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer({AGENT: "agent", HEARTBEAT: "heartbeat"}) as running:
        yield running


def steadycron(server: DevServer, *arguments: str) -> subprocess.CompletedProcess[str]:
    assert CONSOLE_SCRIPT.exists(), "install the package (python3 tests/run.py does)"
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *arguments, "--timeout", "2"],
        env=environment(server.url),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def command_writing(report: str, *, exit_code: int = 0) -> list[str]:
    """A command that prints the report path it was given, writes *report* there, exits."""
    code = (
        "import os, sys; path = os.environ['STEADYCRON_REPORT_FILE']; print(path); "
        f"assert not os.path.exists(path); open(path, 'w').write({report!r}); "
        f"sys.exit({exit_code})"
    )
    return [sys.executable, "-c", code]


# -- steadycron run: the report file ------------------------------------------------------


def test_run_sends_the_report_the_command_wrote(server: DevServer) -> None:
    report = {"items": 5, "tokensIn": 1200, "tokens_out": 300, "cost_usd": 0.0042}
    result = steadycron(server, "run", AGENT, "--", *command_writing(json.dumps(report)))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    start, success = server.pings
    assert (start.state, success.state) == ("start", "success")
    assert start.run_id == success.run_id
    assert success.report == Report(items=5, tokens_in=1200, tokens_out=300, cost_usd=0.0042)
    path = result.stdout.strip()
    assert os.path.basename(path) == "report.json"
    assert not os.path.exists(os.path.dirname(path))  # its private folder is gone


def test_a_failed_command_sends_its_report_with_how_it_ended(server: DevServer) -> None:
    report = json.dumps({"items": 0, "summary": "no tickets"})
    result = steadycron(server, "run", AGENT, "--", *command_writing(report, exit_code=3))

    assert result.returncode == 3
    _, fail = server.pings
    assert fail.state == "fail"
    assert fail.report == Report(items=0, summary="command exited with code 3")


def test_invalid_json_in_the_report_file_is_a_warning_and_the_run_is_reported(
    server: DevServer,
) -> None:
    result = steadycron(server, "run", AGENT, "--", *command_writing("{'items': 5"))

    assert result.returncode == 0
    path = result.stdout.strip()
    assert (
        f"steadycron: warning: report file {path} is not valid: the report is not valid JSON"
        in (result.stderr)
    )
    assert "run reported without it" in result.stderr
    assert "Traceback" not in result.stderr
    _, success = server.pings
    assert (success.state, success.report) == ("success", Report())


def test_a_wrong_field_in_the_report_file_is_left_out_with_a_warning(server: DevServer) -> None:
    report = json.dumps({"items": 5, "cost_usd": "cheap", "tokenz": 1})
    result = steadycron(server, "run", AGENT, "--", *command_writing(report))

    assert result.returncode == 0
    path = result.stdout.strip()
    warnings = result.stderr.splitlines()
    assert warnings == [
        f"steadycron: warning: report file {path}: report field cost_usd must be a number of "
        "US dollars (float or Decimal), not str ('cheap'); that field is left out",
        f"steadycron: warning: report file {path}: unknown report field 'tokenz'; did you mean "
        "'tokens_in'? (the fields are items, output_chars, steps, tool_calls, model, "
        "tokens_in, tokens_out, cost_usd, trace_url, summary); that field is left out",
    ]
    assert server.pings[-1].report == Report(items=5)


def test_a_command_that_writes_no_report_sends_an_empty_one(server: DevServer) -> None:
    result = steadycron(server, "run", AGENT, "--", sys.executable, "-c", "pass")
    assert (result.returncode, result.stderr) == (0, "")
    assert server.pings[-1].report == Report()


def test_a_heartbeat_run_does_not_send_the_report(server: DevServer) -> None:
    result = steadycron(server, "run", HEARTBEAT, "--", *command_writing('{"items": 1}'))
    assert (result.returncode, result.stderr) == (0, "")
    assert [(p.state, p.report, p.message) for p in server.pings] == [
        ("start", None, None),
        ("success", None, None),
    ]


# -- steadycron ping --report -------------------------------------------------------------


def test_ping_sends_an_inline_report_after_its_start(server: DevServer) -> None:
    started = steadycron(server, "ping", AGENT, "--state", "start", "--run-id", RUN_ID)
    result = steadycron(
        server, "ping", AGENT, "--run-id", RUN_ID, "--report", '{"items": 3, "costUsd": 0.5}'
    )
    assert (started.returncode, result.returncode, result.stderr) == (0, 0, "")
    assert server.pings[-1].report == Report(items=3, cost_usd=0.5)


def test_ping_reads_a_report_from_a_file(server: DevServer, tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text('{"summary": "quota exceeded", "steps": 2}')
    result = steadycron(
        server, "ping", AGENT, "--state", "fail", "--report", f"@{tmp_path / 'report.json'}"
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert server.pings[-1].report == Report(summary="quota exceeded", steps=2)


def test_a_success_without_its_start_is_refused_and_says_why(server: DevServer) -> None:
    result = steadycron(server, "ping", AGENT, "--run-id", RUN_ID, "--report", "{}", "--strict")
    assert result.returncode == 1
    assert "the run was not open on the server" in result.stderr
    assert server.pings == []


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--report", "{"], "--report: the report is not valid JSON"),
        (["--report", '{"items": -1}'], "--report: report field items must be >= 0"),
        (["--report", "@/no/such/report.json"], "cannot read the report file /no/such/report"),
        (["--state", "start", "--report", "{}"], "not its start"),
    ],
)
def test_a_wrong_report_option_exits_two_and_sends_nothing(
    server: DevServer, arguments: list[str], problem: str
) -> None:
    result = steadycron(server, "ping", AGENT, *arguments)
    assert result.returncode == 2
    assert problem in result.stderr
    assert "Traceback" not in result.stderr
    assert server.pings == []
