"""``steadycron ping`` and ``steadycron check``, and the command line as a whole."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_server import (
    API_KEY,
    REPOSITORY,
    TIMEOUT,
    FakeSteadyCron,
    dead_port,
    environment,
    serving,
    steadycron,
)


@pytest.fixture
def fake() -> Iterator[FakeSteadyCron]:
    with serving() as fake:
        fake.add("nightly-db-backup")
        fake.add("warm-search-index", kind="http")
        fake.ambiguous.add("shared-key")
        yield fake


def text(output: bytes) -> str:
    return output.decode("utf-8", "replace")


def assert_no_traceback(result: object) -> None:
    stderr = text(getattr(result, "stderr", b""))
    assert "Traceback" not in stderr, stderr


# -- the command line as a whole ------------------------------------------------------------


def test_version_comes_from_the_package() -> None:
    from steadycron._version import __version__

    result = steadycron("--version")
    assert result.returncode == 0
    assert text(result.stdout).strip() == f"steadycron {__version__}"


def test_console_script_is_installed_and_runs() -> None:
    script = Path(sys.executable).with_name("steadycron")
    assert script.exists(), "run 'pip install -e .' to install the console script"
    result = subprocess.run([script, "--help"], capture_output=True, check=False, cwd=REPOSITORY)
    assert result.returncode == 0
    assert b"steadycron ping" in result.stdout


@pytest.mark.parametrize("command", ["ping", "run", "check", "lint", "dev-server", "demo"])
def test_every_subcommand_help_shows_examples(command: str) -> None:
    result = steadycron(command, "--help")
    assert result.returncode == 0
    assert re.search(f"examples?:\n  steadycron {command}", text(result.stdout))


def test_no_subcommand_is_a_usage_error() -> None:
    result = steadycron()
    assert result.returncode == 2
    assert b"usage:" in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = steadycron("ping", "k", "--state", "finished")
    assert result.returncode == 2
    assert b"invalid choice" in result.stderr


# -- ping ----------------------------------------------------------------------------------


def test_ping_sends_a_success_ping(fake: FakeSteadyCron) -> None:
    result = steadycron("ping", "nightly-db-backup", "--timeout", TIMEOUT, url=fake.url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    [ping] = fake.pings_for("nightly-db-backup")
    assert (ping.state, ping.body, ping.run_id) == ("success", "", None)


def test_ping_passes_state_message_environment_and_run_id(fake: FakeSteadyCron) -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    result = steadycron(
        "ping", "nightly-db-backup", "--state", "fail", "--message", "disk full",
        "--environment", "staging", "--run-id", run_id, "--timeout", TIMEOUT,
        url=fake.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [ping] = fake.pings_for("nightly-db-backup")
    assert (ping.state, ping.body, ping.env) == ("fail", "disk full", "staging")
    assert ping.run_id == run_id


def test_malformed_run_id_is_a_usage_error(fake: FakeSteadyCron) -> None:
    result = steadycron("ping", "nightly-db-backup", "--run-id", "run-42", url=fake.url)
    assert result.returncode == 2
    assert b"32 lowercase hex digits" in result.stderr
    assert fake.pings == []


def test_options_override_the_environment(fake: FakeSteadyCron) -> None:
    env = environment(fake.url, STEADYCRON_API_KEY="sc_wrong", STEADYCRON_ENVIRONMENT="prod")
    result = steadycron(
        "ping", "nightly-db-backup", "--api-key", API_KEY, "--environment", "ci",
        "--timeout", TIMEOUT, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert fake.pings_for("nightly-db-backup")[0].env == "ci"


def test_api_and_ping_urls_can_be_given_as_options(fake: FakeSteadyCron) -> None:
    with dead_port() as dead:
        result = steadycron(
            "ping", "nightly-db-backup", "--api-url", fake.url, "--ping-url", fake.url,
            "--timeout", TIMEOUT, url=dead,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(fake.pings_for("nightly-db-backup")) == 1
    assert result.stderr == b""


def test_unreachable_server_warns_and_exits_zero() -> None:
    with dead_port() as dead:
        result = steadycron("ping", "nightly-db-backup", "--timeout", "0.5", url=dead)
    assert result.returncode == 0
    assert b"warning" in result.stderr
    assert_no_traceback(result)


def test_unreachable_server_with_strict_exits_one() -> None:
    with dead_port() as dead:
        result = steadycron("ping", "nightly-db-backup", "--strict", "--timeout", "0.5", url=dead)
    assert result.returncode == 1
    assert b"warning" in result.stderr
    assert_no_traceback(result)


def test_server_error_on_the_ping_is_delivery_trouble(fake: FakeSteadyCron) -> None:
    fake.broken_tokens.add(fake.monitors["nightly-db-backup"][1])
    lenient = steadycron("ping", "nightly-db-backup", "--timeout", "0.3", url=fake.url)
    strict = steadycron("ping", "nightly-db-backup", "--timeout", "0.3", "--strict", url=fake.url)
    assert (lenient.returncode, strict.returncode) == (0, 1)
    assert b"warning" in lenient.stderr


def test_delivered_ping_with_strict_exits_zero(fake: FakeSteadyCron) -> None:
    result = steadycron("ping", "nightly-db-backup", "--strict", "--timeout", TIMEOUT, url=fake.url)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("key", "api_key", "expected"),
    [
        ("no-such-job", API_KEY, "no monitor has this key"),
        ("shared-key", API_KEY, "more than one job"),
        ("warm-search-index", API_KEY, "not a heartbeat"),
        ("nightly-db-backup", "sc_revoked", "API key"),
    ],
    ids=["unknown-key", "ambiguous", "wrong-kind", "bad-api-key"],
)
def test_misconfiguration_exits_two_and_says_what_to_fix(
    fake: FakeSteadyCron, key: str, api_key: str, expected: str
) -> None:
    result = steadycron("ping", key, "--api-key", api_key, "--timeout", TIMEOUT, url=fake.url)
    assert result.returncode == 2
    assert expected in text(result.stderr)
    assert "hint:" in text(result.stderr)
    assert_no_traceback(result)
    assert fake.pings == []


def test_missing_api_key_exits_two_naming_the_variable(fake: FakeSteadyCron) -> None:
    env = environment(fake.url)
    del env["STEADYCRON_API_KEY"]
    result = steadycron("ping", "nightly-db-backup", "--timeout", TIMEOUT, env=env)
    assert result.returncode == 2
    assert "STEADYCRON_API_KEY" in text(result.stderr)
    assert_no_traceback(result)


def test_invalid_setting_exits_two() -> None:
    result = steadycron("ping", "nightly-db-backup", "--api-url", "ftp://example.invalid")
    assert result.returncode == 2
    assert "api_url" in text(result.stderr)
    assert_no_traceback(result)


def test_api_key_never_shows_in_the_output(fake: FakeSteadyCron) -> None:
    result = steadycron("ping", "warm-search-index", "--timeout", TIMEOUT, url=fake.url)
    assert API_KEY not in text(result.stdout + result.stderr)


# -- check ---------------------------------------------------------------------------------


CHECK_LINE = re.compile(r"(ok|not found|ambiguous|wrong kind|auth failure|unreachable)\s+(\S+)")


def check_lines(output: bytes) -> dict[str, str]:
    """``status  key  (reason)`` lines -> {key: status}."""
    verdicts = {}
    for line in text(output).splitlines():
        match = CHECK_LINE.match(line)
        assert match, line
        verdicts[match.group(2)] = match.group(1)
    return verdicts


def test_check_all_ok_exits_zero(fake: FakeSteadyCron) -> None:
    fake.add("queue-drain-tick")
    result = steadycron(
        "check", "nightly-db-backup", "queue-drain-tick", "--timeout", TIMEOUT, url=fake.url
    )
    assert result.returncode == 0, result.stderr
    assert check_lines(result.stdout) == {"nightly-db-backup": "ok", "queue-drain-tick": "ok"}
    assert fake.pings == []


def test_check_reports_each_problem_and_exits_one(fake: FakeSteadyCron) -> None:
    keys = ["nightly-db-backup", "no-such-job", "shared-key", "warm-search-index"]
    result = steadycron("check", *keys, "--timeout", TIMEOUT, url=fake.url)
    assert result.returncode == 1
    assert check_lines(result.stdout) == {
        "nightly-db-backup": "ok",
        "no-such-job": "not found",
        "shared-key": "ambiguous",
        "warm-search-index": "wrong kind",
    }
    assert "kind 'http'" in text(result.stdout)
    assert list(check_lines(result.stdout)) == keys


def test_check_takes_agent_keys_as_pingable(fake: FakeSteadyCron, tmp_path: Path) -> None:
    fake.add("nightly-summarizer", kind="agent")
    result = steadycron("check", "nightly-summarizer", "--timeout", TIMEOUT, url=fake.url)
    assert result.returncode == 0, result.stdout
    assert check_lines(result.stdout) == {"nightly-summarizer": "ok"}
    (tmp_path / "monitors.yaml").write_text(
        "version: 2\njobs:\n  - {id: nightly-summarizer, name: Summarizer, kind: agent}\n"
        "  - {id: warm-search-index, name: Warm search index}\n"
    )
    from_manifest = steadycron(
        "check", "--manifest", str(tmp_path), "--timeout", TIMEOUT, url=fake.url
    )
    assert check_lines(from_manifest.stdout) == {"nightly-summarizer": "ok"}


def test_check_reports_auth_failure(fake: FakeSteadyCron) -> None:
    result = steadycron(
        "check", "nightly-db-backup", "--api-key", "sc_revoked", "--timeout", TIMEOUT, url=fake.url
    )
    assert result.returncode == 1
    assert check_lines(result.stdout) == {"nightly-db-backup": "auth failure"}


def test_check_reports_unreachable() -> None:
    with dead_port() as dead:
        result = steadycron("check", "nightly-db-backup", "--timeout", "0.5", url=dead)
    assert result.returncode == 1
    assert check_lines(result.stdout) == {"nightly-db-backup": "unreachable"}
    assert_no_traceback(result)


MANIFEST = """\
version: 2
jobs:
  - id: nightly-db-backup
    name: Nightly DB backup
    kind: heartbeat
    schedule: "0 3 * * *"
  - name: Queue drain tick
    kind: heartbeat
    interval: 300
  - id: warm-search-index
    name: Warm search index
    schedule: "*/30 * * * *"
"""


def test_check_takes_the_heartbeat_keys_of_a_manifest(fake: FakeSteadyCron, tmp_path: Path) -> None:
    (tmp_path / "monitors.yaml").write_text(MANIFEST)
    result = steadycron(
        "check", "--manifest", str(tmp_path / "monitors.yaml"), "--timeout", TIMEOUT, url=fake.url
    )
    assert result.returncode == 1
    assert check_lines(result.stdout) == {
        "nightly-db-backup": "ok",
        "queue-drain-tick": "not found",
    }
    fake.add("queue-drain-tick")
    again = steadycron("check", "--manifest", str(tmp_path), "--timeout", TIMEOUT, url=fake.url)
    assert again.returncode == 0, again.stdout


def test_check_broken_manifest_exits_two(tmp_path: Path) -> None:
    (tmp_path / "monitors.yaml").write_text("jobs:\n  - id: x\n    kind: [\n")
    result = steadycron("check", "--manifest", str(tmp_path / "monitors.yaml"))
    assert result.returncode == 2
    assert "monitors.yaml" in text(result.stderr)
    assert_no_traceback(result)


def test_check_missing_manifest_exits_two(tmp_path: Path) -> None:
    result = steadycron("check", "--manifest", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert_no_traceback(result)


def test_check_without_keys_is_a_usage_error() -> None:
    result = steadycron("check")
    assert result.returncode == 2
    assert b"--manifest" in result.stderr


def test_check_without_api_key_exits_two(fake: FakeSteadyCron) -> None:
    env = environment(fake.url)
    del env["STEADYCRON_API_KEY"]
    result = steadycron("check", "nightly-db-backup", env=env)
    assert result.returncode == 2
    assert "STEADYCRON_API_KEY" in text(result.stderr)
    assert fake.resolves == []
