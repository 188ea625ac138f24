"""A project's own test, using steadycron's pytest fixture."""

from django.core.management import call_command

from steadycron.testing import Recorder


def test_the_nightly_report_is_monitored(steadycron_recorder: Recorder) -> None:
    call_command("nightly_report")
    call_command("import_rows")
    assert steadycron_recorder.states("nightly-report") == ["start", "success"]
    assert steadycron_recorder.last_run("hourly-import").outcome == "success"
    assert steadycron_recorder.pings[0].environment == "test"
