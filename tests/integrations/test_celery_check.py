"""``steadycron check --celery``: beat schedules said as cron lines, and held against the
monitor manifests."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
from celery import Celery
from celery.schedules import crontab, schedule, solar

from steadycron.cli import main
from steadycron.cli.celery_schedule import compare, describe
from steadycron.cli.cron import expand_cron
from steadycron.cli.manifest import ManifestJob


@pytest.fixture
def app() -> Any:
    app = Celery("check", broker="memory://", set_as_current=False)
    app.conf.timezone = "UTC"
    return app


def _job(
    schedule: str | None = None, interval: int | None = None, tz: str | None = None
) -> ManifestJob:
    return ManifestJob("k", "K", "heartbeat", "m.yaml", 1, schedule, interval, tz)


# -- a crontab, field by field ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "cron"),
    [
        ({"minute": 30, "hour": 3}, "30 3 * * *"),
        ({"minute": 0, "hour": 9, "day_of_week": "mon-fri"}, "0 9 * * 1-5"),
        ({"minute": 0, "hour": 0, "day_of_week": 1}, "0 0 * * 1"),
        ({"minute": 0, "hour": 0, "day_of_month": 1}, "0 0 1 * *"),
        ({"minute": 0, "hour": 0, "day_of_month": 15, "month_of_year": 6}, "0 0 15 6 *"),
        ({"minute": "*/15"}, "*/15 * * * *"),
        ({"minute": "5-59/10", "hour": [1, 2, 3, 9]}, "5-55/10 1-3,9 * * *"),
        ({"minute": 0, "hour": 0, "day_of_week": "sun"}, "0 0 * * 0"),
    ],
)
def test_a_crontab_becomes_a_cron_line_in_manifest_field_order(
    app: Any, fields: dict[str, Any], cron: str
) -> None:
    described = describe(crontab(**fields), app)
    assert described.cron == cron
    assert described.text == f"{cron} (UTC)"
    assert compare(described, _job(cron)) == []


def test_day_of_week_is_never_put_in_the_day_of_month_field(app: Any) -> None:
    # The classic mistake: a Monday job declared as "the 1st of the month".
    described = describe(crontab(minute=0, hour=0, day_of_week=1), app)
    (difference,) = compare(described, _job("0 0 1 * *"))
    assert "day of month * vs 1" in difference
    assert "day of week 1 vs *" in difference


def test_equal_schedules_written_differently_agree(app: Any) -> None:
    described = describe(crontab(minute="0,15,30,45", hour="9-17", day_of_week="1-5"), app)
    assert compare(described, _job("*/15 9-17 * * mon-fri")) == []
    assert compare(described, _job("0-59/15 9,10,11,12,13,14,15,16,17 * * MON-FRI")) == []


def test_both_day_fields_restricted_warns_that_celery_needs_both(app: Any) -> None:
    described = describe(crontab(minute=0, hour=0, day_of_month="1-7", day_of_week="mon"), app)
    (note,) = described.notes
    assert "both the day of month and the day of week" in note
    assert describe(crontab(minute=0, hour=0, day_of_week="mon"), app).notes == ()


def test_the_time_zone_is_the_apps_or_the_schedules_own(app: Any) -> None:
    app.conf.timezone = "Europe/Paris"
    described = describe(crontab(minute=0, hour=3), app)
    assert described.timezone == "Europe/Paris"
    assert compare(described, _job("0 3 * * *", tz="Europe/Paris")) == []
    assert compare(described, _job("0 3 * * *")) == [
        "time zone: Celery uses Europe/Paris, the manifest UTC"
    ]
    from zoneinfo import ZoneInfo

    own = crontab(minute=0, hour=3)
    own.tz = ZoneInfo("America/Chicago")  # as django-celery-beat's crontabs carry it
    assert describe(own, app).timezone == "America/Chicago"


def test_utc_spelt_differently_is_the_same_zone(app: Any) -> None:
    app.conf.timezone = "Etc/UTC"
    assert compare(describe(crontab(minute=0), app), _job("0 * * * *", tz="UTC")) == []


def test_intervals_compare_with_manifest_intervals_and_warn_against_cron(app: Any) -> None:
    described = describe(schedule(timedelta(minutes=5)), app)
    assert described.text == "every 300 s"
    assert compare(described, _job(interval=300)) == []
    assert compare(described, _job(interval=600)) == [
        "Celery runs it every 300 s; the manifest says every 600 s"
    ]
    assert described.notes == ("every 300 s is no cron line; declare it as 'interval: 300'",)
    (note,) = describe(schedule(2.5), app).notes
    assert note == "every 2.5 s is no cron line, nor a monitor's interval (10 to 86400 whole s)"


def test_a_solar_schedule_cannot_be_a_cron_line(app: Any) -> None:
    sunset = solar.__new__(solar)  # without the ephem library solar() refuses to build
    sunset.event, sunset.lat, sunset.lon = "sunset", 48.85, 2.35
    described = describe(sunset, app)
    assert described.cron is None
    assert "a cron line cannot express it" in described.notes[0]


def test_a_manifest_cron_line_expands_to_the_values_of_each_field() -> None:
    minute, hour, day, month, weekday = expand_cron("5/20 9-17/4 1,15 jan-mar *")
    assert (minute, hour, day, month) == (
        frozenset({5, 25, 45}),
        frozenset({9, 13, 17}),
        frozenset({1, 15}),
        frozenset({1, 2, 3}),
    )
    assert weekday == frozenset(range(7))


def test_sunday_is_seven_or_zero() -> None:
    assert expand_cron("0 0 * * 7")[4] == expand_cron("0 0 * * sun")[4] == frozenset({0})


# -- the command -------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a module defining a Celery app in the current folder; return its name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    names: list[str] = []

    def write(body: str) -> str:
        name = f"celery_project_{uuid.uuid4().hex}"
        header = textwrap.dedent(
            """\
            from datetime import timedelta
            from celery import Celery
            from celery.schedules import crontab
            from steadycron.integrations.celery import instrument
            app = Celery("project", broker="memory://", set_as_current=False)
            """
        )
        (tmp_path / f"{name}.py").write_text(header + textwrap.dedent(body))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


MANIFEST = """\
version: 2
jobs:
  - id: nightly-db-backup
    name: Nightly backup
    kind: heartbeat
    schedule: "30 3 * * *"
  - id: queue-drain-tick
    name: Drain
    kind: heartbeat
    interval: 300
  - id: warm-cache
    name: Warm cache
    url: https://example.org/warm
  - id: forgotten
    name: Forgotten
    kind: heartbeat
    interval: 60
"""

SCHEDULE = """\
app.conf.beat_schedule = {
    "nightly-db-backup": {"task": "t.backup", "schedule": crontab(minute=30, hour=3)},
    "drain": {"task": "t.drain", "schedule": timedelta(minutes=5),
              "options": {"steadycron_key": "queue-drain-tick"}},
    "quiet": {"task": "t.quiet", "schedule": 60.0},
}
"""


def test_check_lists_each_entry_with_its_key_and_exits_0(
    project: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    module = project(SCHEDULE + 'instrument(app, exclude=["quiet"])\n')
    assert main(["check", "--celery", f"{module}:app"]) == 0
    out = capsys.readouterr().out
    assert "nightly-db-backup  nightly-db-backup  30 3 * * * (UTC)" in out
    assert "drain              queue-drain-tick   every 300 s" in out
    assert "quiet              - (excluded)" in out


def test_check_against_a_manifest_that_agrees_passes(
    project: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = project(SCHEDULE + 'instrument(app, exclude=["quiet"])\n')
    (tmp_path / "monitors.yaml").write_text(MANIFEST)
    assert main(["check", "--celery", module, "--manifest", "monitors.yaml"]) == 0
    out = capsys.readouterr().out
    assert "error" not in out.replace("errors: 0", "")
    assert "warning: job 'forgotten' (monitors.yaml:14) is declared but no beat entry" in out


def test_check_reports_undeclared_and_wrong_kind_keys_and_differing_schedules(
    project: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = project(
        """\
        app.conf.beat_schedule = {
            "nightly-db-backup": {"task": "t.backup", "schedule": crontab(minute=0, hour=3)},
            "drain": {"task": "t.drain", "schedule": 60.0,
                      "options": {"steadycron_key": "queue-drain-tick"}},
            "warm-cache": {"task": "t.warm", "schedule": 60.0},
            "nightly-db-backpu": {"task": "t.backup", "schedule": 60.0},
        }
        @app.task(steadycron_key="not-there", shared=False)
        def keyed(): ...
        instrument(app)
        """
    )
    (tmp_path / "monitors.yaml").write_text(MANIFEST)
    assert main(["check", "--celery", f"{module}:app", "--manifest", "monitors.yaml"]) == 1
    out = capsys.readouterr().out
    assert (
        "error: entry 'nightly-db-backup': Celery runs it at '0 3 * * *', the manifest says "
        "'30 3 * * *' (minute 0 vs 30)" in out
    )
    assert "error: entry 'drain' (key 'queue-drain-tick'): Celery runs it every 60 s; " in out
    assert "error: entry 'warm-cache': key 'warm-cache' names an 'http' job" in out
    assert "did you mean 'nightly-db-backup'?" in out
    assert f"error: task '{module}.keyed': key 'not-there' is not declared" in out


def test_check_says_when_the_app_is_not_instrumented(
    project: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    module = project(SCHEDULE)
    assert main(["check", "--celery", f"{module}:app"]) == 1
    out = capsys.readouterr().out
    assert "the app is not instrumented" in out
    assert "- (not instrumented)" in out


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("no_such_module_here:app", "cannot import 'no_such_module_here': ModuleNotFoundError"),
        (":app", "takes module:app"),
    ],
)
def test_check_exits_2_when_the_app_cannot_be_had(
    target: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--celery", target]) == 2
    assert words in capsys.readouterr().err


def test_check_exits_2_when_the_module_has_no_such_app(
    project: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    module = project("")
    assert main(["check", "--celery", f"{module}:nothing"]) == 2
    assert "has no Celery app named nothing" in capsys.readouterr().err


def test_check_exits_2_on_a_broken_manifest(
    project: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = project(SCHEDULE + "instrument(app)\n")
    (tmp_path / "monitors.yaml").write_text("version: 2\njobs:\n  - id: nameless\n")
    assert main(["check", "--celery", module, "--manifest", "monitors.yaml"]) == 2
    assert "has no 'name'" in capsys.readouterr().err


def test_check_refuses_keys_together_with_celery(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "some-key", "--celery", "proj:app"])
    assert exited.value.code == 2
    assert "not both" in capsys.readouterr().err
