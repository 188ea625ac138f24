"""steadycron.testing: the recorder, its restore, and the pytest fixture."""

from __future__ import annotations

import datetime

import pytest
from conftest import API_KEY, KEY, TOKEN

import steadycron
from steadycron import Config, MonitorNotFoundError, SteadyCron
from steadycron.testing import Recorder, record
from steadycron.transports import InMemoryTransport


def test_records_structured_pings_grouped_into_runs() -> None:
    steadycron.environment = "staging"
    steadycron.capture_errors = True

    @steadycron.job(KEY)
    def backup(fail: bool) -> None:
        if fail:
            raise OSError("disk full on /var")

    with record() as pings:
        backup(False)
        with pytest.raises(OSError, match="disk full"):
            backup(True)
        steadycron.Monitor(KEY).ping(state="start")
    assert pings.states(KEY) == ["start", "success", "start", "fail", "start"]
    runs = pings.runs(KEY)
    assert [run.outcome for run in runs] == ["success", "fail"]
    last = pings.last_run(KEY)
    assert last.states == ["start", "fail"]
    assert "disk full" in (last.message or "")
    first = pings.pings[0]
    assert first.key == KEY
    assert first.environment == "staging"
    assert first.run_id == runs[0].run_id
    assert first.at.tzinfo is datetime.timezone.utc
    assert pings.pings[-1].run_id is None


def test_any_key_resolves_without_an_api_key() -> None:
    assert steadycron.api_key is None
    with record() as pings:
        steadycron.ping("any-key-at-all")
    assert pings.states("any-key-at-all") == ["success"]


def test_keys_limit_what_resolves_so_a_typo_fails() -> None:
    with record(keys=[KEY]) as pings:
        steadycron.ping(KEY)
        with pytest.raises(MonitorNotFoundError, match="nightly-db-bakup"):
            steadycron.ping("nightly-db-bakup")
    assert pings.states(KEY) == ["success"]


def test_direct_tokens_are_recorded_under_their_key() -> None:
    steadycron.monitors = {KEY: TOKEN}
    with record() as pings:
        steadycron.ping(KEY, "fail", "boom")
    assert pings.pings[0].key == KEY
    assert pings.pings[0].message == "boom"


def test_last_run_names_the_keys_seen_when_the_key_has_none() -> None:
    with record() as pings:
        steadycron.job("other")(lambda: None)()
    with pytest.raises(AssertionError, match="'other'"):
        pings.last_run(KEY)


def test_record_on_an_instance_restores_its_transport_and_cache() -> None:
    transport = InMemoryTransport({KEY: TOKEN})
    client = SteadyCron(Config(api_key=API_KEY), transport=transport)
    client.ping(KEY)
    with record(client) as pings:
        client.ping(KEY)
    assert pings.states(KEY) == ["success"]
    assert client.transport is transport
    client.ping(KEY)
    urls = [r.url for r in transport.requests]
    assert urls[-1].endswith(TOKEN)  # not a token minted while recording
    assert len(urls) == 4  # resolve, ping, resolve again (cache cleared), ping


def test_record_restores_after_an_exception() -> None:
    transport = InMemoryTransport()
    steadycron.configure(transport=transport)
    with pytest.raises(RuntimeError), record():
        raise RuntimeError("test failed")
    assert steadycron.default_client().transport is transport


def test_the_fixture_records_and_restores_even_when_the_test_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import steadycron
        from steadycron.transports import InMemoryTransport

        ORIGINAL = InMemoryTransport({"nightly": "tok"})
        steadycron.configure(transport=ORIGINAL, api_key="sc_x")

        @steadycron.job("nightly")
        def backup():
            return 1

        def test_records(steadycron_recorder):
            backup()
            assert steadycron_recorder.states("nightly") == ["start", "success"]

        def test_fails(steadycron_recorder):
            backup()
            assert False, "boom"

        def test_restored_after_failure():
            assert steadycron.default_client().transport is ORIGINAL
            backup()
            assert len(ORIGINAL.requests) == 3
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: boom*"])


def test_recorder_repr_and_clear(steadycron_recorder: Recorder) -> None:
    steadycron.ping(KEY)
    assert "1 pings" in repr(steadycron_recorder)
    steadycron_recorder.clear()
    assert steadycron_recorder.pings == []
