"""Runs of coroutines (API.md §3): ``async def`` jobs, ``async with monitor()`` and sync
wrappers that hand back an awaitable.

The bound of a ping holds from the moment the job is called, whatever the application
does with the event loop's default executor; a transport that never blocks needs no
thread; a run cancelled during its start is closed; and all of it works from an
``atexit`` handler.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pytest
from conftest import KEY, TOKEN
from loopback import Answer, LoopbackServer, Received, StandIn, silent_listener, wait_for

import steadycron
from steadycron import Config, SteadyCron
from steadycron.testing import record
from steadycron.transports import InMemoryTransport, NullTransport, Urllib3Transport

PING_TIMEOUT = 0.3
#: How long the application keeps the default executor's every thread busy.
BUSY_SECONDS = 2.0
#: Scheduling noise allowed on top of a run's two ping bounds.
MARGIN = 0.5


def threads_named(name: str) -> int:
    return sum(thread.name == name for thread in threading.enumerate())


def run_with_busy_default_executor(job: Callable[[], Awaitable[object]]) -> float:
    """Seconds *job* took while every thread of the loop's default executor was asleep."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
        busy = [loop.run_in_executor(None, time.sleep, BUSY_SECONDS) for _ in range(2)]
        await asyncio.sleep(0.05)  # both sleeps have begun
        started = time.monotonic()
        await job()
        elapsed = time.monotonic() - started
        await asyncio.gather(*busy)
        return elapsed

    return asyncio.run(main())


def tracked_both_ways(client: SteadyCron) -> Callable[[], Awaitable[None]]:
    """An ``async def`` job and an ``async with`` block, one after the other."""

    @client.job(KEY)
    async def job() -> None:
        await asyncio.sleep(0)

    async def both() -> None:
        await job()
        async with client.monitor(KEY):
            await asyncio.sleep(0)

    return both


# -- the bound, whatever the default executor does -----------------------------------


def test_a_transport_that_never_blocks_needs_no_thread_and_no_executor() -> None:
    client = SteadyCron(
        Config(monitors={KEY: TOKEN}, ping_timeout=PING_TIMEOUT), transport=NullTransport()
    )
    elapsed = run_with_busy_default_executor(tracked_both_ways(client))
    assert elapsed < 2 * PING_TIMEOUT + MARGIN
    assert threads_named("steadycron-async") == 0


@contextmanager
def hung_server() -> Iterator[str]:
    with LoopbackServer(lambda received: Answer(silent=True)) as server:
        yield server.url


@pytest.mark.parametrize("kind", ["healthy", "never answers", "black hole"])
def test_async_runs_keep_their_bound_while_the_default_executor_is_busy(
    server: LoopbackServer, kind: str
) -> None:
    places: dict[str, Callable[[], AbstractContextManager[str]]] = {
        "healthy": lambda: nullcontext(server.url),
        "never answers": hung_server,
        "black hole": silent_listener,
    }
    with places[kind]() as url:
        config = Config(ping_url=url, monitors={KEY: TOKEN}, ping_timeout=PING_TIMEOUT)
        with SteadyCron(config, transport=Urllib3Transport()) as client:
            elapsed = run_with_busy_default_executor(tracked_both_ways(client))
    # Two runs of two pings each, each ping within its own bound.
    assert elapsed < 4 * PING_TIMEOUT + MARGIN
    if kind == "healthy":
        assert server.paths() == [f"/{TOKEN}/start", f"/{TOKEN}"] * 2


def test_sixty_async_jobs_at_once_each_keep_their_bound() -> None:
    with silent_listener() as url:
        config = Config(ping_url=url, monitors={KEY: TOKEN}, ping_timeout=PING_TIMEOUT)
        with SteadyCron(config, transport=Urllib3Transport()) as client:

            @client.job(KEY)
            async def job(n: int) -> int:
                await asyncio.sleep(0.01)
                return n

            async def sixty() -> None:
                assert await asyncio.gather(*(job(n) for n in range(60))) == list(range(60))

            elapsed = run_with_busy_default_executor(sixty)
    assert elapsed < 2 * PING_TIMEOUT + MARGIN


# -- a run is closed once it is opened -----------------------------------------------


def test_a_run_cancelled_during_its_start_ping_is_closed_with_a_fail() -> None:
    standin = StandIn({KEY: TOKEN})

    def slow_start(received: Received) -> Answer:
        answer = standin(received)
        if received.path.endswith("/start"):
            return Answer(answer.status, answer.body, delay=0.5)
        return answer

    body_ran = []
    with LoopbackServer(slow_start) as server:
        config = Config(ping_url=server.url, monitors={KEY: TOKEN}, ping_timeout=2.0)
        with SteadyCron(config, transport=Urllib3Transport()) as client:

            @client.job(KEY)
            async def job() -> None:
                body_ran.append(True)

            async def main() -> None:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(job(), 0.1)

            asyncio.run(main())
            assert wait_for(lambda: len(server.received) == 2, timeout=3)
    assert body_ran == []
    start, fail = server.received
    assert [start.path, fail.path] == [f"/{TOKEN}/start", f"/{TOKEN}/fail"]
    assert start.query["run_id"] == fail.query["run_id"]


def test_async_cancellation_in_the_body_is_a_fail_and_propagates() -> None:
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


# -- from an atexit handler ----------------------------------------------------------

AT_EXIT = """
import asyncio, atexit, steadycron
from steadycron.transports import InMemoryTransport

memory = InMemoryTransport()
steadycron.configure(ping_url={url!r}, monitors={{"{key}": "{token}"}}, ping_timeout=5)
if {in_memory}:
    steadycron.configure(transport=memory)

@steadycron.job("{key}")
async def job():
    print("job ran", flush=True)

async def block():
    async with steadycron.monitor("{key}"):
        print("block ran", flush=True)

def at_exit():
    asyncio.run(job())
    asyncio.run(block())
    print("pings in memory:", len(memory.requests), flush=True)

atexit.register(at_exit)
"""


@pytest.mark.parametrize("in_memory", [False, True], ids=["http", "in memory"])
def test_async_runs_work_from_an_atexit_handler(server: LoopbackServer, in_memory: bool) -> None:
    script = AT_EXIT.format(url=server.url, key=KEY, token=TOKEN, in_memory=in_memory)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "job ran" in result.stdout
    assert "block ran" in result.stdout
    pings = [f"/{TOKEN}/start", f"/{TOKEN}"] * 2
    assert server.paths() == ([] if in_memory else pings)
    assert f"pings in memory: {4 if in_memory else 0}" in result.stdout


# -- coroutine functions and sync wrappers around them -------------------------------


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


@pytest.mark.parametrize("fails", [False, True])
def test_a_sync_wrapper_returning_a_coroutine_keeps_the_run_open_until_it_completes(
    fails: bool,
) -> None:
    async def work() -> str:
        await asyncio.sleep(0.01)
        if fails:
            raise LookupError("no such row")
        return "rows"

    @steadycron.job(KEY)
    def wrapper() -> Awaitable[str]:
        return work()

    with record() as pings:
        pending = wrapper()
        assert pings.states(KEY) == ["start"]  # not reported before its work ran
        if fails:
            with pytest.raises(LookupError, match="no such row"):
                asyncio.run(pending)  # type: ignore[arg-type]
        else:
            assert asyncio.run(pending) == "rows"  # type: ignore[arg-type]
    assert pings.last_run(KEY).states == ["start", "fail" if fails else "success"]


def test_async_with_pings_without_blocking_the_loop() -> None:
    class SlowTransport(InMemoryTransport):
        blocking = True

        def send(self, request: Any, *, timeout: float) -> Any:
            threading.Event().wait(0.2)
            return super().send(request, timeout=timeout)

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
