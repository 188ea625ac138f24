"""``steadycron lint``: keys in code checked against manifests, without importing the code."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from _cli_server import steadycron

from steadycron.cli.lint import find_key_uses

MANIFEST = """\
version: 2
jobs:
  - id: nightly-db-backup
    name: Nightly DB backup
    kind: heartbeat
    schedule: "0 3 * * *"
  - id: queue-drain-tick
    name: Queue drain tick
    kind: heartbeat
    interval: 300
  - id: warm-search-index
    name: Warm search index
    schedule: "*/30 * * * *"
"""


def keys_in(source: str) -> list[str | None]:
    return [use.key for use in find_key_uses(textwrap.dedent(source))]


# -- finding keys --------------------------------------------------------------------------


def test_module_level_calls_and_aliases() -> None:
    source = """
        import steadycron
        import steadycron as sc

        @steadycron.job("a")
        def backup(): ...

        with sc.monitor("b"):
            pass

        steadycron.Monitor("c").ping()
        steadycron.ping("d", state="start")
    """
    assert keys_in(source) == ["a", "b", "c", "d"]


def test_imported_names_and_their_aliases() -> None:
    source = """
        from steadycron import job, monitor as track, Monitor

        @job("a")
        async def backup(): ...

        async def main():
            async with track("b"):
                pass

        Monitor(key="c")
    """
    assert keys_in(source) == ["a", "b", "c"]


def test_calls_through_a_client_object() -> None:
    source = """
        from myapp.monitoring import client

        @client.job("a")
        def backup(): ...

        with client.monitor("b"): ...
        client.ping("c", state="fail", message="disk full")
        client.Monitor("d").ping("fail")
        self.tenants["x"].job(key="e")
    """
    assert keys_in(source) == ["a", "b", "c", "d", "e"]


def test_monitor_ping_takes_a_state_not_a_key() -> None:
    source = """
        import steadycron
        backup = steadycron.Monitor("a")
        backup.ping("start")
        backup.ping("fail", "disk full")
        steadycron.Monitor("b").ping("success")
        monitor_from_elsewhere.ping("fail")
        monitor_from_elsewhere.ping(state)
    """
    assert keys_in(source) == ["a", "b"]


def test_client_ping_with_a_non_literal_key_is_reported() -> None:
    source = """
        from steadycron import SteadyCron
        client = SteadyCron(config)
        client.ping(key_for(tenant))
    """
    assert keys_in(source) == [None]


def test_non_literal_keys_are_reported_as_unknown() -> None:
    source = """
        import steadycron
        KEY = "a"
        steadycron.job(KEY)
        steadycron.monitor(f"backup-{region}")
        steadycron.job(*names)
        steadycron.Monitor(**settings)
    """
    assert keys_in(source) == [None, None, None, None]


def test_unrelated_calls_are_ignored() -> None:
    source = """
        import ping3
        import steadycron
        ping3.ping("example.org")
        redis.ping()
        job("not ours: never imported from steadycron")
        steadycron.configure(api_key="sc_ro_x")
        steadycron.job
    """
    assert keys_in(source) == []


def test_positions_are_those_of_the_key_argument() -> None:
    [use] = find_key_uses("import steadycron\n\nx = steadycron.job(\n    'k')\n", "jobs.py")
    assert (use.path, use.line, use.col) == ("jobs.py", 4, 5)


def test_syntax_error_is_raised_for_the_caller_to_report() -> None:
    with pytest.raises(SyntaxError):
        find_key_uses("def broken(:\n")


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small code tree whose keys all match the manifest."""
    (tmp_path / "monitors.yaml").write_text(MANIFEST)
    source = tmp_path / "src" / "app"
    source.mkdir(parents=True)
    (source / "jobs.py").write_text(
        textwrap.dedent("""
            import steadycron

            @steadycron.job("nightly-db-backup")
            def backup(): ...
        """)
    )
    (source / "ticks.py").write_text(
        "from steadycron import monitor\n\nwith monitor('queue-drain-tick'):\n    pass\n"
    )
    return tmp_path


def lint(project: Path, *arguments: str) -> tuple[int, list[str], str]:
    result = steadycron("lint", *arguments, "--manifest", "monitors.yaml", cwd=project)
    stdout = result.stdout.decode()
    return result.returncode, stdout.splitlines(), result.stderr.decode()


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def test_clean_tree_exits_zero_and_prints_nothing(project: Path) -> None:
    code, lines, stderr = lint(project, "src")
    assert (code, lines, stderr) == (0, [], "")


def test_default_path_is_the_current_directory(project: Path) -> None:
    write(project / "scripts" / "report.py", "import steadycron\nsteadycron.ping('nope')\n")
    code, lines, _ = lint(project)
    assert code == 1
    assert lines == [
        "scripts/report.py:2:17: SC001 monitor key 'nope' is not declared in any manifest"
    ]


def test_unknown_key_is_an_error_with_a_suggestion(project: Path) -> None:
    write(
        project / "src" / "app" / "more.py",
        "import steadycron\nsteadycron.job('nightly-db-bakup')\n",
    )
    code, lines, stderr = lint(project, "src")
    assert code == 1
    assert lines == [
        "src/app/more.py:2:16: SC001 monitor key 'nightly-db-bakup' is not declared in any "
        "manifest; did you mean 'nightly-db-backup'?"
    ]
    assert "1 error(s), 0 warning(s) in 3 file(s)" in stderr


def test_key_of_a_job_that_is_not_a_heartbeat_is_an_error(project: Path) -> None:
    write(project / "src" / "warm.py", "import steadycron\nsteadycron.ping('warm-search-index')\n")
    code, lines, _ = lint(project, "src")
    assert code == 1
    assert lines == [
        "src/warm.py:2:17: SC002 monitor key 'warm-search-index' names an 'http' job "
        "(monitors.yaml:11), not a heartbeat or agent monitor"
    ]


def test_agent_keys_can_be_pinged_and_unreferenced_ones_are_a_warning(project: Path) -> None:
    with (project / "monitors.yaml").open("a") as manifest:
        manifest.write(
            "  - id: nightly-summarizer\n    name: Nightly summarizer\n    kind: agent\n"
        )
    code, lines, _ = lint(project, "src")
    assert (code, lines) == (
        0,
        ["monitors.yaml:14:1: SC102 agent job 'nightly-summarizer' is not referenced by any "
         "scanned code"],
    )  # fmt: skip
    write(project / "src" / "agent.py", "import steadycron\nsteadycron.job('nightly-summarizer')\n")
    assert lint(project, "src") == (0, [], "")


def test_unreferenced_heartbeat_job_is_a_warning(project: Path) -> None:
    code, lines, _ = lint(project, "src/app/jobs.py")
    assert code == 0
    assert lines == [
        "monitors.yaml:7:1: SC102 heartbeat job 'queue-drain-tick' is not referenced by any "
        "scanned code"
    ]


def test_non_literal_key_is_a_warning(project: Path) -> None:
    write(project / "src" / "dynamic.py", "import steadycron\nsteadycron.monitor(name)\n")
    code, lines, _ = lint(project, "src")
    assert code == 0
    assert lines == [
        "src/dynamic.py:2:20: SC101 monitor key is not a string literal, so it cannot be checked"
    ]


def test_syntax_error_is_reported_and_the_rest_still_checked(project: Path) -> None:
    write(project / "src" / "broken.py", "import steadycron\n\ndef oops(:\n    pass\n")
    write(project / "src" / "zzz.py", "import steadycron\nsteadycron.job('nope')\n")
    code, lines, _ = lint(project, "src")
    assert code == 1
    assert lines[0].startswith("src/broken.py:3:10: SC003 cannot parse: ")
    assert lines[1].startswith("src/zzz.py:2:16: SC001 monitor key 'nope'")
    assert len(lines) == 2


def test_code_is_never_imported(project: Path) -> None:
    marker = project / "imported"
    write(
        project / "src" / "side_effect.py",
        f"open({str(marker)!r}, 'w').close()\nimport steadycron\nsteadycron.job('nope')\n",
    )
    code, _, _ = lint(project, "src")
    assert code == 1
    assert not marker.exists()


def test_hidden_directories_and_caches_are_skipped(project: Path) -> None:
    bad = "import steadycron\nsteadycron.job('nope')\n"
    for skipped in (".venv/lib/site.py", ".git/hook.py", "src/__pycache__/jobs.py"):
        write(project / skipped, bad)
    write(project / "src" / "notes.txt", bad)
    code, lines, _ = lint(project)
    assert (code, lines) == (0, [])


def test_explicitly_named_files_are_scanned_whatever_their_name(project: Path) -> None:
    write(project / "bin" / "backup", "import steadycron\nsteadycron.job('nope')\n")
    code, lines, _ = lint(project, "src", "bin/backup")
    assert code == 1
    assert lines[0].startswith("bin/backup:2:16: SC001")


def test_noqa_silences_a_finding(project: Path) -> None:
    write(
        project / "src" / "quiet.py",
        """\
        import steadycron
        steadycron.job('nope')  # noqa: SC001
        steadycron.job('nope-too')  # noqa
        steadycron.job('still-checked')  # noqa: SC002
        """,
    )
    code, lines, _ = lint(project, "src")
    assert code == 1
    assert [line.split(" ")[1] for line in lines] == ["SC001"]
    assert "still-checked" in lines[0]


def test_json_format(project: Path) -> None:
    write(project / "src" / "more.py", "import steadycron\nsteadycron.job('nope')\n")
    result = steadycron(
        "lint", "src", "--manifest", "monitors.yaml", "--format", "json", cwd=project
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == [
        {
            "path": "src/more.py",
            "line": 2,
            "col": 16,
            "code": "SC001",
            "severity": "error",
            "message": "monitor key 'nope' is not declared in any manifest",
        }
    ]


def test_json_format_of_a_clean_tree_is_an_empty_list(project: Path) -> None:
    result = steadycron(
        "lint", "src", "--manifest", "monitors.yaml", "--format", "json", cwd=project
    )
    assert (result.returncode, json.loads(result.stdout)) == (0, [])


def test_broken_manifest_exits_two(project: Path) -> None:
    (project / "monitors.yaml").write_text("jobs:\n  - id: a\n    name: [unclosed\n")
    code, _, stderr = lint(project, "src")
    assert code == 2
    assert "monitors.yaml" in stderr
    assert "Traceback" not in stderr


def test_missing_path_exits_two(project: Path) -> None:
    code, _, stderr = lint(project, "no-such-dir")
    assert code == 2
    assert "no-such-dir" in stderr


def test_manifest_is_required(project: Path) -> None:
    result = steadycron("lint", "src", cwd=project)
    assert result.returncode == 2
    assert b"--manifest" in result.stderr


def test_help_lists_every_code() -> None:
    from steadycron.cli.lint import CODES

    result = steadycron("lint", "--help")
    for code in CODES:
        assert code in result.stdout.decode()
