"""Run semantics (API.md §3) and manual pings (§4), seen through the test kit."""

from __future__ import annotations

import inspect
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import Answer, LoopbackServer, Received, StandIn, wait_for

import steadycron
from steadycron import Config, MonitorNotFoundError, SteadyCron
from steadycron.testing import Recorder, record
from steadycron.transports import InMemoryTransport, Urllib3Transport


def test_a_successful_run_pings_start_then_success_with_one_run_id(
    steadycron_recorder: Recorder,
) -> None:
    @steadycron.job(KEY)
    def backup(x: int) -> int:
        return x * 2

    assert backup(21) == 42
    run = steadycron_recorder.last_run(KEY)
    assert run.states == ["start", "success"]
    assert len(run.run_id) == 32
    assert int(run.run_id, 16) >= 0
    assert run.run_id == run.run_id.lower()


def test_a_failing_run_pings_fail_and_reraises_the_same_exception() -> None:
    error = ValueError("disk full")

    @steadycron.job(KEY)
    def backup() -> None:
        raise error

    with record() as pings, pytest.raises(ValueError, match="disk full") as caught:
        backup()
    assert caught.value is error
    assert error.__context__ is None
    assert error.__cause__ is None
    assert pings.states(KEY) == ["start", "fail"]
    assert pings.last_run(KEY).message is None  # capture_errors is off by default


def test_the_traceback_still_points_at_the_job() -> None:
    @steadycron.job(KEY)
    def backup() -> None:
        raise RuntimeError("here")

    with record(), pytest.raises(RuntimeError) as caught:
        backup()
    assert caught.traceback[-1].name == "backup"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("disk full"), "ValueError: disk full"),
        (KeyError("k"), "KeyError: 'k'"),
        (RuntimeError(), "RuntimeError"),
    ],
)
def test_capture_errors_formats_the_fail_message(error: Exception, message: str) -> None:
    steadycron.capture_errors = True

    @steadycron.job(KEY)
    def backup() -> None:
        raise error

    with record() as pings, pytest.raises(type(error)):
        backup()
    assert pings.last_run(KEY).message == message


def test_a_long_fail_message_keeps_its_head_within_1024_bytes() -> None:
    steadycron.capture_errors = True

    @steadycron.job(KEY)
    def backup() -> None:
        raise ValueError("é" * 2000)

    with record() as pings, pytest.raises(ValueError, match="éé"):
        backup()
    message = pings.last_run(KEY).message or ""
    assert message.startswith("ValueError: éé")
    assert message.endswith("...")
    assert len(message.encode()) <= 1024


@pytest.mark.parametrize(
    ("escape", "outcome"),
    [
        (KeyboardInterrupt(), "fail"),
        (SystemExit(0), "success"),
        (SystemExit(None), "success"),
        (SystemExit(1), "fail"),
        (SystemExit("bye"), "fail"),
        (GeneratorExit(), "fail"),
    ],
)
def test_base_exceptions_are_reported_and_reraised(escape: BaseException, outcome: str) -> None:
    @steadycron.job(KEY)
    def backup() -> None:
        raise escape

    with record() as pings, pytest.raises(type(escape)) as caught:
        backup()
    assert caught.value is escape
    assert pings.last_run(KEY).outcome == outcome


def test_job_keeps_metadata_and_resolves_only_when_called() -> None:
    transport = InMemoryTransport({KEY: TOKEN})
    steadycron.configure(transport=transport, api_key=API_KEY)

    @steadycron.job("not-yet-declared")
    def nightly(a: int, *, b: str = "x") -> str:
        """Back up the database."""
        return f"{a}{b}"

    assert nightly.__name__ == "nightly"
    assert nightly.__doc__ == "Back up the database."
    assert inspect.signature(nightly) == inspect.signature(nightly.__wrapped__)  # type: ignore[attr-defined]
    assert transport.requests == []
    with pytest.raises(MonitorNotFoundError, match="not-yet-declared"):
        nightly(1)


def test_a_misconfigured_key_stops_the_job_from_running() -> None:
    steadycron.configure(transport=InMemoryTransport(), api_key=API_KEY)
    ran = []

    @steadycron.job("typo-key")
    def backup() -> None:
        ran.append(True)

    with pytest.raises(MonitorNotFoundError):
        backup()
    assert ran == []


def test_decorator_uses_settings_made_after_decoration() -> None:
    @steadycron.job(KEY)
    def backup() -> None:
        pass

    transport = InMemoryTransport()
    steadycron.configure(transport=transport, monitors={KEY: TOKEN}, environment="production")
    backup()
    assert len(transport.requests) == 2
    assert all("env=production" in r.url for r in transport.requests)


@pytest.mark.parametrize("bad", ["", None, 42, b"key"])
def test_bad_keys_are_refused_at_once(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="key"):
        steadycron.job(bad)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError), match="key"):
        steadycron.monitor(bad)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError), match="key"):
        steadycron.Monitor(bad)  # type: ignore[arg-type]


def test_generator_functions_are_refused_at_decoration() -> None:
    def rows() -> object:
        yield 1

    async def arows() -> object:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        steadycron.job(KEY)(rows)
    with pytest.raises(TypeError, match="generator"):
        steadycron.job(KEY)(arows)


def test_overlapping_runs_in_threads_never_share_a_run_id() -> None:
    barrier = threading.Barrier(8)

    @steadycron.job(KEY)
    def backup(n: int) -> int:
        barrier.wait(timeout=5)
        return n

    with record() as pings:
        threads = [threading.Thread(target=backup, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    runs = pings.runs(KEY)
    assert len(runs) == 8
    assert all(run.states == ["start", "success"] for run in runs)


def test_monitor_context_manager_yields_the_run_and_nests() -> None:
    with record() as pings:
        with steadycron.monitor(KEY) as outer, steadycron.monitor("inner-key") as inner:
            assert outer.key == KEY
            assert inner.key == "inner-key"
            assert outer.run_id != inner.run_id
        context = steadycron.monitor(KEY)
        with context as first:
            pass
        with context as second:
            pass
    assert first.run_id != second.run_id
    assert pings.states(KEY) == ["start", "success"] * 3
    assert pings.last_run("inner-key").run_id == inner.run_id


def test_manual_pings_and_their_states() -> None:
    monitor = steadycron.Monitor(KEY)
    with record() as pings:
        monitor.ping()
        monitor.ping(state="start")
        monitor.ping(state="fail", message="disk full", run_id="a" * 32)
        steadycron.ping(KEY, "success")
    assert pings.states(KEY) == ["success", "start", "fail", "success"]
    assert pings.pings[2].message == "disk full"
    assert pings.pings[2].run_id == "a" * 32
    assert [run.run_id for run in pings.runs(KEY)] == ["a" * 32]


def test_monitor_start_pairs_start_and_outcome_without_handling_run_ids() -> None:
    monitor = steadycron.Monitor(KEY)
    with record() as pings:
        run = monitor.start()
        assert isinstance(run, steadycron.ManualRun)
        assert pings.states(KEY) == ["start"]
        run.fail("disk full")
        with pytest.raises(RuntimeError, match="already ended with 'fail'"):
            run.success()
        with pytest.raises(TypeError, match="message"):
            monitor.start().success(message=b"x")  # type: ignore[arg-type]
    first = pings.runs(KEY)[0]
    assert first.run_id == run.run_id
    assert len(run.run_id) == 32
    assert first.states == ["start", "fail"]
    assert first.message == "disk full"


def test_an_unknown_state_raises_before_any_request() -> None:
    transport = InMemoryTransport({KEY: TOKEN})
    steadycron.configure(transport=transport, api_key=API_KEY)
    with pytest.raises(ValueError, match="state"):
        steadycron.Monitor(KEY).ping(state="done")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message"):
        steadycron.Monitor(KEY).ping(message=b"x")  # type: ignore[arg-type]
    assert transport.requests == []


def test_client_monitor_is_the_same_as_monitor_with_client() -> None:
    transport = InMemoryTransport({KEY: TOKEN})
    with SteadyCron(Config(api_key=API_KEY), transport=transport) as client:
        client.Monitor(KEY).ping()
        steadycron.Monitor(KEY, client=client).ping(state="start")
        client.ping(KEY, state="fail", message=None)
    assert [r.url.rsplit("/", 1)[-1] for r in transport.requests[1:]] == [TOKEN, "start", "fail"]


def test_a_closed_client_refuses_to_ping() -> None:
    client = SteadyCron(Config(monitors={KEY: TOKEN}), transport=InMemoryTransport())
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.ping(KEY)


def test_client_owns_and_closes_a_transport_passed_in() -> None:
    class Tracking(InMemoryTransport):
        closed = False

        def close(self) -> None:
            self.closed = True

    transport = Tracking()
    with SteadyCron(Config(), transport=transport):
        pass
    assert transport.closed


def test_tenants_share_no_tokens_or_pings() -> None:
    a_transport = InMemoryTransport({KEY: "tok-a"})
    b_transport = InMemoryTransport({KEY: "tok-b"})
    a = SteadyCron(Config(api_key="sc_a", environment="a"), transport=a_transport)
    b = SteadyCron(Config(api_key="sc_b", environment="b"), transport=b_transport)
    a.job(KEY)(lambda: None)()
    b.job(KEY)(lambda: None)()
    assert a.resolve(KEY) == "tok-a"
    assert b.resolve(KEY) == "tok-b"
    assert all("tok-a" in r.url for r in a_transport.requests[1:])
    assert all("tok-b" in r.url for r in b_transport.requests[1:])
    assert all("env=b" in r.url for r in b_transport.requests[1:])


# -- a run is closed once it is opened, and only by the process that opened it ---------


@pytest.fixture
def slow_start() -> Iterator[LoopbackServer]:
    """A stand-in that takes half a second to answer start pings."""
    standin = StandIn({KEY: TOKEN})

    def respond(received: Received) -> Answer:
        answer = standin(received)
        if received.path.endswith("/start"):
            return Answer(answer.status, answer.body, delay=0.5)
        return answer

    with LoopbackServer(respond) as server:
        yield server


def test_an_interrupt_during_the_start_ping_is_followed_by_a_fail(
    slow_start: LoopbackServer,
) -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    config = Config(ping_url=slow_start.url, monitors={KEY: TOKEN}, ping_timeout=2.0)
    ran = []
    with SteadyCron(config, transport=Urllib3Transport()) as client:

        @client.job(KEY)
        def backup() -> None:
            ran.append(True)

        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.15)  # Ctrl-C while the start is in flight
        try:
            with pytest.raises(KeyboardInterrupt):
                backup()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert wait_for(lambda: len(slow_start.received) == 2, timeout=3)
    assert ran == []
    start, fail = slow_start.received
    assert [start.path, fail.path] == [f"/{TOKEN}/start", f"/{TOKEN}/fail"]
    assert start.query["run_id"] == fail.query["run_id"]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_inside_a_job_sends_nothing_for_the_parents_run(
    server: LoopbackServer,
) -> None:
    parent = os.getpid()
    config = Config(ping_url=server.url, monitors={KEY: TOKEN}, ping_timeout=2.0)
    with SteadyCron(config, transport=Urllib3Transport()) as client:

        @client.job(KEY)
        def spawn() -> int:
            child = os.fork()
            if child == 0:
                sys.exit(0)  # the child leaves through the job's frames
            return os.waitpid(child, 0)[1]

        try:
            status = spawn()
        finally:
            if os.getpid() != parent:
                os._exit(0)  # the child ends here, whatever happened above
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.paths() == [f"/{TOKEN}/start", f"/{TOKEN}"]
    assert len({received.query["run_id"] for received in server.received}) == 1
