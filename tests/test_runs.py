"""Run semantics (API.md §3) and manual pings (§4), seen through the test kit."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
from conftest import API_KEY, KEY, TOKEN

import steadycron
from steadycron import Config, MonitorNotFoundError, SteadyCron
from steadycron.testing import Recorder, record
from steadycron.transports import InMemoryTransport


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


def test_async_job_is_a_coroutine_function_and_pings_when_it_runs() -> None:
    events: list[str] = []

    @steadycron.job(KEY)
    async def backup() -> str:
        events.append("ran")
        return "done"

    assert inspect.iscoroutinefunction(backup)
    with record() as pings:
        coroutine = backup()
        assert pings.pings == []  # nothing before the coroutine runs
        assert asyncio.run(coroutine) == "done"
    assert pings.states(KEY) == ["start", "success"]
    assert events == ["ran"]


def test_async_cancellation_is_a_fail_and_propagates() -> None:
    @steadycron.job(KEY)
    async def backup() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(backup())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with record() as pings:
        asyncio.run(main())
    assert pings.last_run(KEY).outcome == "fail"


def test_async_with_pings_without_blocking_the_loop() -> None:
    class SlowTransport(InMemoryTransport):
        blocking = True

        def send(self, request: object, *, timeout: float) -> object:  # type: ignore[override]
            threading.Event().wait(0.2)
            return super().send(request, timeout=timeout)  # type: ignore[arg-type]

    transport = SlowTransport()
    steadycron.configure(transport=transport, monitors={KEY: TOKEN})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(ticker())
        async with steadycron.monitor(KEY) as run:
            assert run.key == KEY
        task.cancel()

    asyncio.run(main())
    assert len(transport.requests) == 2
    assert ticks >= 10  # the loop kept running while both pings waited 0.2 s each


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


def test_concurrent_async_runs_keep_their_own_run_ids() -> None:
    @steadycron.job(KEY)
    async def backup(delay: float) -> float:
        await asyncio.sleep(delay)
        return delay

    async def main() -> list[float]:
        return list(await asyncio.gather(*(backup(d / 100) for d in range(6))))

    with record() as pings:
        assert asyncio.run(main()) == [d / 100 for d in range(6)]
    runs = pings.runs(KEY)
    assert len(runs) == 6
    assert all(run.states == ["start", "success"] for run in runs)
