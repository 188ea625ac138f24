"""Slips at the command line get an answer that says what was meant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli_server import serving, steadycron


@pytest.mark.parametrize(
    ("arguments", "meant"),
    [
        (
            ["run", "nightly-db-backup", "/usr/local/bin/backup.sh", "--full"],
            "steadycron run nightly-db-backup -- /usr/local/bin/backup.sh --full",
        ),
        (
            ["run", "nightly-db-backup", "--capture", "backup.sh", "--environment", "ci"],
            "steadycron run nightly-db-backup --capture --environment ci -- backup.sh",
        ),
        (
            ["run", "--strict", "nightly-db-backup", "my backup.sh", "-v"],
            "steadycron run --strict nightly-db-backup -- 'my backup.sh' -v",
        ),
    ],
)
def test_run_without_the_double_dash_shows_the_command_line_meant(
    arguments: list[str], meant: str, tmp_path: Path
) -> None:
    with serving() as fake:
        fake.add("nightly-db-backup")
        result = steadycron(*arguments, url=fake.url, cwd=tmp_path)

    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert stderr.splitlines() == [
        "usage: steadycron run KEY [options] -- COMMAND [ARGS ...]",
        f"steadycron run: error: the command goes after '--': {meant}",
    ]
    assert fake.pings == []  # nothing was run, nothing was pinged


def test_a_misspelt_run_option_is_still_an_unrecognized_argument() -> None:
    result = steadycron("run", "nightly-db-backup", "--captrue", "--", "true")

    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "usage: steadycron run KEY [options] -- COMMAND [ARGS ...]",
        "steadycron run: error: unrecognized arguments: --captrue",
    ]


def test_stray_arguments_of_other_commands_are_unrecognized() -> None:
    result = steadycron("ping", "nightly-db-backup", "extra")

    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1] == (
        "steadycron: error: unrecognized arguments: extra"
    )


@pytest.mark.parametrize("code", ["print(1)", 'import steadycron\nsteadycron.ping("typo")\n'])
def test_lint_json_output_ends_with_a_newline(tmp_path: Path, code: str) -> None:
    (tmp_path / "monitors.yaml").write_text(
        "version: 2\njobs:\n  - {id: nightly, name: N, kind: heartbeat, interval: 60}\n"
    )
    (tmp_path / "jobs.py").write_text(code)

    result = steadycron(
        "lint", "jobs.py", "--manifest", "monitors.yaml", "--format", "json", cwd=tmp_path
    )

    output = result.stdout.decode()
    assert output.endswith("]\n")
    assert isinstance(json.loads(output), list)
