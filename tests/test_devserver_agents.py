"""The dev server as an agent monitor: strict pairing, run reports read and shown."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _cli_server import environment
from test_devserver import MONITORS, RUN_ID, ServerProcess, call, call_json
from test_devserver import spawn as spawn  # the fixture, shared with the dev server's tests

from steadycron.cli.devserver import DevServer, ReceivedPing, Timeline, dev_token, format_ping
from steadycron.testing import Report

AGENT = "fleet-agent"
JSON = {"Content-Type": "application/json"}
OTHER_RUN = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def notes() -> list[str]:
    return []


@pytest.fixture
def server(notes: list[str]) -> Iterator[DevServer]:
    with DevServer(MONITORS, on_note=notes.append) as running:
        yield running


def ping(server: DevServer, suffix: str, run_id: str | None = RUN_ID, body: bytes = b"") -> int:
    query = f"?run_id={run_id}" if run_id else ""
    headers = JSON if body else {}
    status, _ = call(
        server.url, "POST", f"/{dev_token(AGENT)}{suffix}{query}", headers=headers, body=body
    )
    return status


# -- pairing ------------------------------------------------------------------------------


def test_an_agent_success_needs_the_open_start_of_its_run(
    server: DevServer, notes: list[str]
) -> None:
    assert ping(server, "") == 422  # no start at all
    assert ping(server, "/start") == 200
    assert ping(server, "", run_id=OTHER_RUN) == 422  # another run's start does not count
    assert ping(server, "/success") == 200
    assert ping(server, "") == 422  # that run is closed now

    assert [(p.state, p.run_id) for p in server.pings] == [("start", RUN_ID), ("success", RUN_ID)]
    refusals = [note for note in notes if "422" in note]
    assert len(refusals) == 3
    assert refusals[0] == (
        f"{AGENT} success refused (422): run {RUN_ID[:8]} has no open start "
        "(an agent monitor needs the start ping of a run before its success)"
    )


def test_a_fail_is_never_gated_on_an_open_start(server: DevServer) -> None:
    assert ping(server, "/fail") == 200
    assert ping(server, "/fail", run_id=None) == 200
    assert [p.state for p in server.pings] == ["fail", "fail"]


def test_pings_without_a_run_id_pair_with_a_start_without_one(server: DevServer) -> None:
    assert ping(server, "", run_id=None) == 422
    assert ping(server, "/start", run_id=None) == 200
    assert ping(server, "", run_id=None) == 200


def test_heartbeat_pings_are_not_paired(server: DevServer) -> None:
    status, _ = call(server.url, "POST", f"/{dev_token('nightly-db-backup')}?run_id={RUN_ID}")
    assert status == 200


def test_the_sdk_gets_a_422_when_the_start_was_lost(
    server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    from steadycron import Config, SteadyCron

    config = Config(api_key="sc_ro_dev", api_url=server.url, ping_url=server.url)
    with SteadyCron(config) as client:
        client.ping(AGENT, "success", run_id=RUN_ID, report={"items": 1})
    assert server.pings == []
    assert "the run was not open on the server" in caplog.text


# -- reports ------------------------------------------------------------------------------

REPORT = {
    "itemsProduced": 5,
    "outputChars": 2100,
    "steps": 4,
    "toolCalls": 2,
    "model": "gpt-x",
    "tokensIn": 1200,
    "tokensOut": 300,
    "costUsd": 0.0042,
    "traceUrl": "https://traces.example.org/r/1",
    "summary": "5 tickets triaged\nand more",
}
SNAKE_REPORT: dict[str, Any] = {
    "items": 5,
    "output_chars": 2100,
    "steps": 4,
    "tool_calls": 2,
    "model": "gpt-x",
    "tokens_in": 1200,
    "tokens_out": 300,
    "cost_usd": 0.0042,
    "trace_url": "https://traces.example.org/r/1",
    "summary": "5 tickets triaged\nand more",
}


def test_an_agent_outcome_report_is_read_and_listed(server: DevServer) -> None:
    ping(server, "/start")
    assert ping(server, "", body=json.dumps(REPORT).encode()) == 200

    start, success = server.pings
    assert start.report is None
    assert success.report == Report(**SNAKE_REPORT)
    assert success.message is None
    _, listed = call_json(server.url, "GET", f"/api/dev/pings?key={AGENT}")
    assert isinstance(listed, dict)
    assert [p["report"] for p in listed["pings"]] == [None, SNAKE_REPORT]


def test_a_fail_report_is_read_too(server: DevServer) -> None:
    assert ping(server, "/fail", body=b'{"summary": "quota exceeded", "costUsd": 1}') == 200
    [fail] = server.pings
    assert fail.report == Report(summary="quota exceeded", cost_usd=1.0)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'{"tokensIn": -1}', "tokens_in must be >= 0"),
        (b'{"itemsProduced": "5"}', "items must be a non-negative int"),
        (b'{"costUsd": "0.1"}', "cost_usd must be a number"),
        (b'{"tokens": 5}', "unknown report field 'tokens'"),
    ],
)
def test_an_invalid_report_is_400_and_not_recorded(
    server: DevServer, notes: list[str], body: bytes, problem: str
) -> None:
    ping(server, "/start")
    status, answer = call_json(
        server.url, "POST", f"/{dev_token(AGENT)}?run_id={RUN_ID}", headers=JSON, body=body
    )
    assert status == 400
    assert isinstance(answer, dict)
    assert problem in answer["message"]
    assert [p.state for p in server.pings] == ["start"]
    assert any(problem in note for note in notes)


# -- the timeline -------------------------------------------------------------------------


def agent_ping(report: Report | None, message: str | None = None) -> ReceivedPing:
    at = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    return ReceivedPing(AGENT, "success", None, RUN_ID, message, at, 12.5, report)


def test_the_timeline_shows_tokens_cost_items_and_summary() -> None:
    line = format_ping(agent_ping(Report(**{**SNAKE_REPORT, "summary": "5 tickets triaged"})))
    assert line.endswith(
        f"  {AGENT}  success  run=01234567  took 12.5s  items=5  output_chars=2100  steps=4  "
        "tool_calls=2  tokens_in=1200  tokens_out=300  cost=$0.0042  model=gpt-x  "
        '"5 tickets triaged"'
    )


def test_a_summary_of_several_lines_follows_the_ping_line_like_a_message() -> None:
    entry = format_ping(agent_ping(Report(items=1, summary="5 tickets triaged\nand more")))
    first, *rest = entry.splitlines()
    assert first.endswith("took 12.5s  items=1")
    assert [line.strip() for line in rest] == ["5 tickets triaged", "and more"]


@pytest.mark.parametrize(
    ("cost", "shown"), [(0.0000001, "$0.0000001"), (12.5, "$12.5"), (100.0, "$100"), (0.0, "$0")]
)
def test_the_timeline_shows_costs_as_plain_dollars(cost: float, shown: str) -> None:
    assert format_ping(agent_ping(Report(cost_usd=cost))).endswith(f"cost={shown}")


def test_the_json_timeline_carries_the_report() -> None:
    stream = io.StringIO()
    Timeline(stream, as_json=True).ping(agent_ping(Report(tokens_in=10, cost_usd=0.5)))
    record = json.loads(stream.getvalue())
    assert record["report"] == {"tokens_in": 10, "cost_usd": 0.5}


# -- end to end: the README's agent job, the dev server, its timeline ---------------------

README = Path(__file__).resolve().parent.parent / "README.md"

#: Stands in for the ``openai`` package: each answer used 240 tokens in and 60 out.
FAKE_OPENAI = """\
class _Usage:
    prompt_tokens = 240
    completion_tokens = 60
    total_tokens = 300


class _Response:
    def __init__(self, model):
        self.model = model
        self.usage = _Usage()


class _Completions:
    def create(self, *, model, messages):
        return _Response(model)


class _Chat:
    completions = _Completions()


class OpenAI:
    chat = _Chat()
"""


def readme_agent_section() -> dict[str, str]:
    """The code blocks of the README's "Monitoring scheduled AI agents", by language."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Monitoring scheduled AI agents\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL))


def test_the_readme_agent_job_reports_usage_and_cost_to_the_dev_server(
    spawn: type[ServerProcess], tmp_path: Path
) -> None:
    blocks = readme_agent_section()
    (tmp_path / "monitors.yaml").write_text(blocks["yaml"], encoding="utf-8")
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "openai.py").write_text(FAKE_OPENAI, encoding="utf-8")
    child = spawn(str(tmp_path / "monitors.yaml"), "--port", "0")
    url = child.url()
    assert any("nightly-summarizer  (agent)" in line for line in child.seen)

    env = environment(url)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "vendor"), env["PYTHONPATH"]])
    job = subprocess.run(
        [sys.executable, "-c", blocks["python"] + '\nsummarize(["a", "b", "c", "d", "e"])\n'],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert job.returncode == 0, job.stderr
    assert job.stderr == b""  # no warning: every ping was delivered

    resolved, started, succeeded = blocks["text"].strip().splitlines()
    assert child.wait_for_line("resolve ").endswith(resolved.split("  ", 1)[1])
    assert " start " in started
    child.wait_for_line(" start ")
    line = child.wait_for_line(" success ")
    # Time, run id and duration differ from run to run; what the run reported does not.
    reported = succeeded.split("took ", 1)[1].split("  ", 1)[1]
    assert reported.startswith("items=5  steps=5  tokens_in=1200  tokens_out=300  cost=$")
    assert line.endswith(reported)
    code, err = child.stop()
    assert (code, err.count("Traceback")) == (0, 0)
    assert child.seen[-1] == "stopped; 2 pings received"
