"""The test kit knows a manifest's keys, takes a marker per test, and restores settings.

The pytest side is tested with real pytest runs of small test files (``pytester``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import API_KEY, KEY, TOKEN

import steadycron
from steadycron import Config, InvalidMonitorKindError, MonitorNotFoundError, SteadyCron
from steadycron._protocol import read_resolution, resolve_headers, resolve_url
from steadycron.testing import record
from steadycron.transports import InMemoryTransport, Request

MANIFEST = """\
version: 2
jobs:
  - id: nightly-db-backup
    name: Nightly DB backup
    kind: heartbeat
    schedule: "15 3 * * *"
  - name: Queue drain tick
    kind: heartbeat
    interval: 300
  - id: warm-search-index
    name: Warm search index
    schedule: "*/30 * * * *"
"""

JOBS = """
import steadycron

@steadycron.job("nightly-db-backup")
def backup(fail=False):
    if fail:
        raise OSError("disk full")

@steadycron.job("nightly-db-bakup")   # the typo a manifest catches
def misspelt_backup():
    pass
"""


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


# -- record() -------------------------------------------------------------------------------


def test_keys_may_map_to_kinds_and_an_http_job_is_refused_as_for_real() -> None:
    kinds = {KEY: "heartbeat", "warm-search-index": "http", "fleet-agent": "agent"}
    with record(keys=kinds) as pings:
        steadycron.ping(KEY)
        with pytest.raises(InvalidMonitorKindError) as refused:
            steadycron.ping("warm-search-index")
        with pytest.raises(MonitorNotFoundError):
            steadycron.ping("not-in-the-manifest")
        transport = steadycron.default_client().transport
        url = resolve_url(steadycron.api_url, "fleet-agent")
        agent = transport.send(Request("GET", url, resolve_headers(API_KEY)), timeout=1)

    assert refused.value.kind == "http"
    assert read_resolution(agent.body).kind == "agent"
    assert [ping.key for ping in pings.pings] == [KEY]


@pytest.mark.parametrize(
    ("keys", "error", "problem"),
    [
        (KEY, TypeError, "not the string"),
        ({KEY: "cron"}, ValueError, "the kind must be one of"),
    ],
)
def test_keys_that_cannot_be_meant_are_refused(
    keys: object, error: type[Exception], problem: str
) -> None:
    transport = InMemoryTransport()
    steadycron.configure(transport=transport)

    with pytest.raises(error, match=problem), record(keys=keys):  # type: ignore[arg-type]
        pass

    assert steadycron.default_client().transport is transport


def test_module_settings_changed_inside_record_are_restored() -> None:
    steadycron.environment = "production"
    steadycron.monitors = {"other": TOKEN}
    monitors = steadycron.monitors

    with record() as pings:
        steadycron.environment = "staging"
        steadycron.capture_errors = True
        steadycron.configure(ping_timeout=1.5, api_key=API_KEY)
        steadycron.monitors[KEY] = TOKEN
        steadycron.ping(KEY)

    assert pings.pings[0].environment == "staging"
    assert steadycron.environment == "production"
    assert steadycron.capture_errors is False
    assert steadycron.ping_timeout == 5.0
    assert steadycron.api_key is None
    assert dict(steadycron.monitors) == {"other": TOKEN}
    assert steadycron.monitors is monitors


def test_settings_are_restored_when_the_block_raises() -> None:
    def failing_test() -> None:
        with record():
            steadycron.environment = "staging"
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk"):
        failing_test()

    assert steadycron.environment is None


def test_record_on_an_instance_leaves_module_settings_alone() -> None:
    client = SteadyCron(Config(api_key=API_KEY), transport=InMemoryTransport({KEY: TOKEN}))

    with record(client):
        steadycron.environment = "staging"

    assert steadycron.environment == "staging"


def test_the_runtime_and_the_kit_import_no_tool() -> None:
    code = (
        "import sys, steadycron, steadycron.testing; "
        "print(sorted(m for m in sys.modules if m.startswith('steadycron.cli') or m == 'yaml'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the fixture with a manifest ------------------------------------------------------------


def test_with_a_manifest_a_misspelt_key_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", monitors=MANIFEST)
    pytester.makepyfile(jobs=JOBS)
    pytester.makepyfile(
        test_jobs="""
        import pytest
        import steadycron
        from jobs import backup, misspelt_backup

        def test_declared_key(steadycron_recorder):
            backup()
            assert steadycron_recorder.states("nightly-db-backup") == ["start", "success"]

        def test_key_made_from_the_name(steadycron_recorder):
            steadycron.ping("queue-drain-tick")

        def test_http_job_is_refused(steadycron_recorder):
            with pytest.raises(steadycron.InvalidMonitorKindError):
                steadycron.ping("warm-search-index")

        def test_misspelt_key(steadycron_recorder):
            misspelt_backup()
        """
    )

    result = run_pytest(pytester, "--steadycron-manifest", "monitors.yaml")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "steadycron: steadycron_recorder knows the 3 keys of *monitors.yaml",
            "*test_misspelt_key*",
            "*MonitorNotFoundError*nightly-db-bakup*",
        ]
    )


def test_without_a_manifest_any_key_resolves(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(jobs=JOBS)
    pytester.makepyfile(
        test_jobs="""
        from jobs import misspelt_backup

        def test_misspelt_key(steadycron_recorder):
            misspelt_backup()
            assert steadycron_recorder.states("nightly-db-bakup") == ["start", "success"]
        """
    )

    run_pytest(pytester).assert_outcomes(passed=1)


def test_manifest_options_repeat_and_take_directories(pytester: pytest.Pytester) -> None:
    pytester.mkdir("monitors")
    (pytester.path / "monitors" / "billing.yaml").write_text(MANIFEST)
    (pytester.path / "ops.yml").write_text(
        "version: 2\njobs:\n  - {id: ops-sweep, name: Ops sweep, kind: heartbeat, interval: 60}\n"
    )
    pytester.makepyfile(
        test_keys="""
        import steadycron

        def test_both_manifests(steadycron_recorder):
            steadycron.ping("nightly-db-backup")
            steadycron.ping("ops-sweep")
            assert len(steadycron_recorder.pings) == 2
        """
    )

    result = run_pytest(
        pytester, "--steadycron-manifest", "monitors", "--steadycron-manifest", "ops.yml"
    )

    result.assert_outcomes(passed=1)


def test_the_ini_option_is_read_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.mkdir("ci")
    (pytester.path / "ci" / "monitors.yaml").write_text(MANIFEST)
    (pytester.path / "other.yaml").write_text(
        "version: 2\njobs:\n  - {id: other, name: Other, kind: heartbeat, interval: 60}\n"
    )
    pytester.makeini("[pytest]\nsteadycron_manifest = ci/monitors.yaml\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_keys.py").write_text(
        textwrap.dedent(
            """
            import os
            import pytest
            import steadycron

            EXPECTED = os.environ["EXPECTED_KEY"]

            def test_only_the_configured_manifest(steadycron_recorder):
                steadycron.ping(EXPECTED)
                with pytest.raises(steadycron.MonitorNotFoundError):
                    steadycron.ping("never-declared")
            """
        )
    )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPECTED_KEY", "nightly-db-backup")
        patch.chdir(pytester.path / "tests")
        from_ini = run_pytest(pytester)
        patch.setenv("EXPECTED_KEY", "other")
        from_option = run_pytest(pytester, "--steadycron-manifest", "../other.yaml")

    from_ini.assert_outcomes(passed=1)
    from_option.assert_outcomes(passed=1)  # the option replaces the ini's manifests


def test_a_broken_manifest_stops_the_run_naming_file_and_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", monitors=MANIFEST.replace('"15 3 * * *"', "every tuesday"))
    pytester.makepyfile(test_nothing="def test_nothing(): pass")

    result = run_pytest(pytester, "--steadycron-manifest", "monitors.yaml")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*steadycron: cannot use the monitor manifest:",
            "*error: *monitors.yaml:6: job 'Nightly DB backup': schedule 'every tuesday'*",
        ]
    )


def test_manifest_warnings_show_in_the_header(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml", monitors=MANIFEST.replace("interval: 300", "interval: 300\n    shedule: x")
    )
    pytester.makepyfile(test_nothing="def test_nothing(): pass")

    result = run_pytest(pytester, "--steadycron-manifest", "monitors.yaml")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["steadycron: warning: *monitors.yaml:10: unknown field 'shedule'*did you mean 'schedule'?"]
    )


# -- the marker, and restoring settings ----------------------------------------------------


def test_the_marker_sets_keys_and_settings_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", monitors=MANIFEST)
    pytester.makepyfile(jobs=JOBS)
    pytester.makepyfile(
        test_marked="""
        import pytest
        import steadycron
        from jobs import backup, misspelt_backup

        @pytest.mark.steadycron(capture_errors=True, environment="staging")
        def test_settings(steadycron_recorder):
            with pytest.raises(OSError):
                backup(fail=True)
            run = steadycron_recorder.last_run("nightly-db-backup")
            assert run.message == "OSError: disk full"
            assert {ping.environment for ping in run.pings} == {"staging"}

        def test_settings_are_back():
            assert steadycron.capture_errors is False
            assert steadycron.environment is None

        @pytest.mark.steadycron(keys=["nightly-db-bakup"])
        def test_keys_replace_the_manifest(steadycron_recorder):
            misspelt_backup()
            with pytest.raises(steadycron.MonitorNotFoundError):
                backup()

        @pytest.mark.steadycron(keys=["warm-search-index"])
        def test_keys_keep_their_manifest_kind(steadycron_recorder):
            with pytest.raises(steadycron.InvalidMonitorKindError):
                steadycron.ping("warm-search-index")

        @pytest.mark.steadycron(keys=None)
        def test_keys_none_lets_any_key_resolve(steadycron_recorder):
            steadycron.ping("anything-at-all")

        @pytest.mark.steadycron(keys=["only-this"])
        def test_a_marked_test_records_without_asking_for_the_fixture():
            steadycron.ping("only-this")
            with pytest.raises(steadycron.MonitorNotFoundError):
                steadycron.ping("nightly-db-backup")
        """
    )

    result = run_pytest(pytester, "--steadycron-manifest", "monitors.yaml", "-p", "no:randomly")

    result.assert_outcomes(passed=6)


def test_settings_changed_in_a_failing_test_are_restored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_restore="""
        import steadycron

        def test_changes_settings_then_fails(steadycron_recorder):
            steadycron.environment = "staging"
            steadycron.configure(capture_errors=True, ping_timeout=0.5)
            steadycron.monitors["nightly"] = "tok"
            assert False, "boom"

        def test_sees_the_settings_of_before():
            assert steadycron.environment is None
            assert steadycron.capture_errors is False
            assert steadycron.ping_timeout == 5.0
            assert dict(steadycron.monitors) == {}
        """
    )

    result = run_pytest(pytester)

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: boom*"])


WRONG_MARKERS = {
    "steadycron(capture_error=True)": "unknown argument 'capture_error'; did you mean",
    "steadycron(['nightly'])": "takes keyword arguments only",
    "steadycron(keys='nightly')": "takes a list of keys, not 'nightly'",
    "steadycron(transport=None)": "unknown argument 'transport'",
    "steadycron(ping_timeout=-1)": "ping_timeout",
}


def test_a_wrong_marker_errors_the_test_with_what_to_fix(pytester: pytest.Pytester) -> None:
    tests = "".join(
        f"@pytest.mark.{marker}\ndef test_marked_{number}():\n    pass\n\n"
        for number, marker in enumerate(WRONG_MARKERS)
    )
    pytester.makepyfile(
        test_marker="import pytest\nimport steadycron\n\n"
        + tests
        + "def test_settings_untouched():\n    assert steadycron.ping_timeout == 5.0\n"
    )

    result = run_pytest(pytester, "-p", "no:randomly")

    result.assert_outcomes(passed=1, errors=len(WRONG_MARKERS))
    for number, problem in enumerate(WRONG_MARKERS.values()):
        result.stdout.fnmatch_lines([f"*ERROR at setup of test_marked_{number}*", f"*{problem}*"])
