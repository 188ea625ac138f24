"""Django: a real project on SQLite, its commands run by manage.py, django-admin and
call_command."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from _cli_server import environment
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

import steadycron
from steadycron.cli.devserver import DevServer
from steadycron.testing import record

PROJECT = Path(__file__).resolve().parent / "djangoproject"
KEYS = ["nightly-report", "hourly-import", "exit-with", "nightly-clearsessions"]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project set up in this process, on a migrated SQLite file shared with its
    subprocesses."""
    path = tmp_path_factory.mktemp("django") / "db.sqlite3"
    saved = {name: os.environ.get(name) for name in ("DJANGO_SETTINGS_MODULE", "TESTSITE_DB")}
    os.environ["DJANGO_SETTINGS_MODULE"] = "testsite.settings"
    os.environ["TESTSITE_DB"] = str(path)
    sys.path.insert(0, str(PROJECT))
    try:
        django.setup()
        call_command("migrate", "sessions", verbosity=0)
        yield path
    finally:
        sys.path.remove(str(PROJECT))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def project(database: Path) -> Path:
    """The project's settings applied to the default client, as at start-up."""
    from steadycron.integrations.django.settings import apply_settings

    apply_settings()
    return database


def manage(server: DevServer, database: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = environment(server.url, TESTSITE_DB=str(database))
    env["DJANGO_SETTINGS_MODULE"] = "testsite.settings"
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(dict.fromkeys(KEYS, "heartbeat")) as running:
        yield running


# -- manage.py and django-admin, in processes of their own ----------------------------------


def test_manage_py_runs_a_monitored_command_configured_from_settings(
    server: DevServer, database: Path
) -> None:
    result = manage(server, database, "manage.py", "nightly_report")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "report sent\n"
    start, success = server.pings
    assert (start.key, start.state, success.state) == ("nightly-report", "start", "success")
    assert start.run_id == success.run_id
    assert start.environment == "test"  # from settings.STEADYCRON


@pytest.mark.parametrize(
    ("arguments", "exit_code", "key", "message"),
    [
        (["import_rows", "--fail"], 1, "hourly-import", "CommandError: 3 rows rejected"),
        (["exit_with", "3"], 3, "exit-with", "SystemExit: 3"),
    ],
)
def test_manage_py_a_failing_command_is_a_fail_and_keeps_its_exit_code(
    server: DevServer, database: Path, arguments: list[str], exit_code: int, key: str, message: str
) -> None:
    result = manage(server, database, "manage.py", *arguments)
    assert result.returncode == exit_code, result.stderr
    assert [(p.key, p.state) for p in server.pings] == [(key, "start"), (key, "fail")]
    assert server.pings[-1].message == message


def test_django_admin_runs_a_third_party_command_unedited(
    server: DevServer, database: Path
) -> None:
    result = manage(server, database, "-m", "django", "clearsessions")
    assert result.returncode == 0, result.stderr
    assert [(p.key, p.state) for p in server.pings] == [
        ("nightly-clearsessions", "start"),
        ("nightly-clearsessions", "success"),
    ]


def test_the_fixture_works_in_the_projects_own_tests(server: DevServer, database: Path) -> None:
    result = manage(server, database, "-m", "pytest", "-q", "reports/test_recorder.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert server.pings == []  # the recorder kept them in memory


# -- call_command, in this process ----------------------------------------------------------


def test_call_command_a_third_party_command_named_in_settings(project: Path) -> None:
    with record() as pings:
        call_command("clearsessions")
    assert pings.last_run("nightly-clearsessions").states == ["start", "success"]


def test_call_command_command_error_is_a_fail_and_leaves_unchanged(project: Path) -> None:
    with record() as pings, pytest.raises(CommandError, match="3 rows rejected"):
        call_command("import_rows", fail=True)
    run = pings.last_run("hourly-import")
    assert (run.states, run.message) == (["start", "fail"], "CommandError: 3 rows rejected")


@pytest.mark.parametrize(("code", "outcome"), [(0, "success"), (2, "fail")])
def test_call_command_system_exit_follows_the_run_rules(
    project: Path, code: int, outcome: str
) -> None:
    with record() as pings, pytest.raises(SystemExit):
        call_command("exit_with", code)
    assert pings.last_run("exit-with").outcome == outcome


def test_monitored_command_is_one_run_under_its_key_or_the_settings_key(project: Path) -> None:
    with record() as pings:
        call_command("nightly_report", stdout=io.StringIO())
        renamed = {"commands": {"nightly_report": "renamed-report"}}
        with override_settings(STEADYCRON=renamed):
            call_command("nightly_report", stdout=io.StringIO())
    assert [run.states for run in pings.runs("nightly-report")] == [["start", "success"]]
    assert [run.states for run in pings.runs("renamed-report")] == [["start", "success"]]


def test_commands_not_named_are_left_alone(project: Path) -> None:
    with record() as pings:
        call_command("check", verbosity=0)  # also: the project's settings pass the checks
    assert pings.pings == []


def test_a_monitored_command_without_a_key_is_refused(project: Path) -> None:
    from steadycron.integrations.django import MonitoredCommand

    class Command(MonitoredCommand):
        def handle(self, *args: Any, **options: Any) -> None:
            raise AssertionError("never runs")

    with pytest.raises(ImproperlyConfigured, match="steadycron_key"):
        Command()


def test_a_key_that_cannot_be_pinged_is_logged_once_and_the_command_runs(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with record(keys=["other"]), caplog.at_level(logging.ERROR, "steadycron"):
        call_command("import_rows", stdout=io.StringIO())
        call_command("import_rows", stdout=io.StringIO())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "hourly-import" in errors[0].getMessage()


def test_overriding_the_setting_reconfigures_the_default_client(project: Path) -> None:
    assert steadycron.environment == "test"
    with override_settings(STEADYCRON={"environment": "staging", "ping_timeout": 2}):
        assert (steadycron.environment, steadycron.ping_timeout) == ("staging", 2)
    assert (steadycron.environment, steadycron.ping_timeout) == ("test", 5.0)


# -- the system checks -----------------------------------------------------------------------


def messages(setting: object) -> list[checks.CheckMessage]:
    with override_settings(STEADYCRON=setting):
        return [m for m in checks.run_checks(tags=["steadycron"])]


@pytest.mark.parametrize(
    ("setting", "check_id", "text", "hint"),
    [
        ({"capture_erors": True}, "steadycron.E002", "'capture_erors'", "'capture_errors'"),
        ({"ping_timeout": -1}, "steadycron.E003", "'ping_timeout'", "more than 0"),
        ({"api_url": "ftp://x"}, "steadycron.E003", "'api_url'", "http(s) URL"),
        (["api_key"], "steadycron.E001", "must be a dict", "STEADYCRON = {"),
        ({"commands": ["clearsessions"]}, "steadycron.E004", "must be a dict", "clearsessions"),
        ({"commands": {"clearsessions": ""}}, "steadycron.E004", "invalid", "monitor key"),
    ],
)
def test_a_misspelt_or_invalid_setting_is_a_check_error_with_a_hint(
    project: Path, setting: object, check_id: str, text: str, hint: str
) -> None:
    (message,) = messages(setting)
    assert message.level == checks.ERROR
    assert message.id == check_id
    assert text in message.msg
    assert message.hint is not None
    assert hint in message.hint


def test_an_unknown_command_name_is_a_warning_that_guesses(project: Path) -> None:
    (message,) = messages({"commands": {"clearsesions": "nightly-clearsessions"}})
    assert (message.level, message.id) == (checks.WARNING, "steadycron.W001")
    assert "'clearsessions'" in (message.hint or "")


def test_valid_settings_pass_and_an_invalid_one_is_not_applied(project: Path) -> None:
    assert messages({"environment": "prod", "commands": {"clearsessions": "x"}}) == []
    with override_settings(STEADYCRON={"environment": "staging", "ping_timeout": -1}):
        assert steadycron.environment == "test"
