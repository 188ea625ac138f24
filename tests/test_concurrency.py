"""Processes and threads at once: the concurrency half of the reliability contract (§5).

- ``multiprocessing`` children (fork and forkserver) of a parent that already pinged ping
  over connections of their own, and the parent keeps pinging.
- Many threads first-using a few keys at once cause one resolve request per key.
- Overlapping and nested runs of one function (threads, asyncio tasks) keep their own
  run ids; outcomes never cross.
- A job that raises while SteadyCron is unreachable hands its own exception back, late by
  no more than the ping bounds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import Answer, LoopbackServer, Received, StandIn, closed_port_url, silent_listener

import steadycron
from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.testing import Recorder, record
from steadycron.transports import StdlibTransport, Urllib3Transport

RESOLVE = "/api/monitors/resolve"
#: A child that has not finished by then is hung.
CHILD_SECONDS = 30.0


def roomy(server: LoopbackServer) -> LoopbackServer:
    """socketserver listens with a backlog of 5; dozens of threads connect at once here."""
    server._server.socket.listen(128)
    return server


def runs_by_id(received: list[Received]) -> dict[str, list[str]]:
    """States of the pings of each tracked run, in order of arrival."""
    runs: dict[str, list[str]] = {}
    for request in received:
        if request.path.startswith(f"/{TOKEN}") and "run_id" in request.query:
            state = request.path.removeprefix(f"/{TOKEN}").lstrip("/") or "success"
            runs.setdefault(request.query["run_id"], []).append(state)
    return runs


# -- multiprocessing ---------------------------------------------------------------


@steadycron.job(KEY)
def child_job(label: str) -> str:
    return f"done {label}"


def ping_from_child(label: str, url: str | None) -> None:
    """In a child: one tracked run through the decorated job, one tracked ``with`` run
    and a manual ping whose message ties the ``with`` run to *label*. Raises on trouble,
    which gives the child a non-zero exit code."""
    if url is not None:  # a forkserver child starts from scratch
        steadycron.configure(api_key=API_KEY, api_url=url, ping_url=url, ping_timeout=5.0)
    assert child_job(label) == f"done {label}"
    with steadycron.monitor(KEY) as run:
        pass
    client = steadycron.default_client()
    delivered = client.send(Ping(KEY, "success", f"{label} {run.run_id}")).delivered
    assert delivered, f"{label}: the manual ping was not delivered"


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_children_of_a_parent_that_pinged_ping_on_their_own_connections(
    server: LoopbackServer, method: str
) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    roomy(server)
    steadycron.configure(api_key=API_KEY, api_url=server.url, ping_url=server.url, ping_timeout=5)
    # The parent pings first: a pooled keep-alive connection is open, send threads run.
    assert child_job("parent before") == "done parent before"
    with steadycron.monitor(KEY):
        pass
    connections_before = server.connections

    context = multiprocessing.get_context(method)
    url = None if method == "fork" else server.url
    labels = [f"child-{n}" for n in range(3)]
    children = [
        context.Process(target=ping_from_child, args=(label, url))  # type: ignore[attr-defined]
        for label in labels
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(CHILD_SECONDS)
    assert [child.exitcode for child in children] == [0] * len(children)

    # The parent's pooled connection still works after its children used theirs.
    assert child_job("parent after") == "done parent after"
    assert steadycron.default_client().send(Ping(KEY, "success", "parent after")).delivered

    messages = [r.body.decode() for r in server.received if r.body]
    tied = dict(message.split(" ", 1) for message in messages if message.startswith("child-"))
    assert sorted(tied) == labels
    runs = runs_by_id(server.received)
    assert all(runs[run_id] == ["start", "success"] for run_id in tied.values())
    # Every tracked run, parent's and children's, paired: 2 before + 2 per child + 1 after.
    assert len(runs) == 3 + 2 * len(labels)
    assert all(states == ["start", "success"] for states in runs.values())
    # Each child connected for itself rather than writing on the parent's socket.
    assert server.connections >= connections_before + len(labels)
    assert "parent after" in messages


# -- one resolve per key -----------------------------------------------------------


def test_64_threads_first_using_8_keys_cause_exactly_8_resolves() -> None:
    keys = [f"fan-out-{n}" for n in range(8)]
    tokens = {key: f"tok_fan_{n}" for n, key in enumerate(keys)}
    standin = StandIn(tokens)

    def slow_resolves(received: Received) -> Answer:
        answer = standin(received)
        return (
            Answer(answer.status, answer.body, answer.headers, delay=0.3)
            if (received.path == RESOLVE)
            else answer
        )

    barrier = threading.Barrier(64)
    failures: list[BaseException] = []

    with LoopbackServer(slow_resolves) as server:
        roomy(server)
        config = Config(api_key=API_KEY, api_url=server.url, ping_url=server.url, ping_timeout=5)
        with SteadyCron(config, transport=Urllib3Transport()) as client:

            def first_use(n: int) -> None:
                try:
                    barrier.wait(timeout=10)
                    assert client.send(Ping(keys[n % 8], "success")).delivered
                except BaseException as exc:  # reported below
                    failures.append(exc)

            threads = [threading.Thread(target=first_use, args=(n,)) for n in range(64)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)

    assert not failures
    resolves = [r.query["key"] for r in server.received if r.path == RESOLVE]
    assert sorted(resolves) == sorted(keys)
    pinged = Counter(r.path for r in server.received if r.path != RESOLVE)
    assert pinged == {f"/{token}": 8 for token in tokens.values()}


# -- overlapping and nested runs ---------------------------------------------------


class Planned(Exception):
    """Raised by the runs that are meant to fail; its message names the call."""


def fail_messages(pings: Recorder) -> list[str]:
    return [p.message or "" for p in pings.pings if p.state == "fail"]


def check_runs(pings: Recorder, calls: int, failed: set[str], *, named_by_run: bool) -> None:
    """Every call is one run of exactly a start and its own outcome; the failed calls (by
    name, or by run id when *named_by_run*) are exactly the runs whose outcome is fail."""
    runs = pings.runs(KEY)
    assert len(runs) == calls
    assert all(run.states in (["start", "success"], ["start", "fail"]) for run in runs)
    fail_messages = {run.message for run in runs if run.outcome == "fail"}
    assert fail_messages == {f"Planned: {name}" for name in failed}
    if named_by_run:
        for run in runs:
            if run.outcome == "fail":
                assert run.message == f"Planned: {run.run_id}"


def test_overlapping_and_nested_runs_in_threads_never_cross() -> None:
    steadycron.capture_errors = True
    barrier = threading.Barrier(12)

    @steadycron.job(KEY)
    def work(name: str, depth: int, fail: bool) -> str:
        if depth:
            with suppress(Planned):
                work(f"{name}.{depth}", depth - 1, fail=depth % 2 == 1)
        else:
            barrier.wait(timeout=10)  # every innermost run of every thread overlaps
        if fail:
            raise Planned(name)
        return name

    failed: set[str] = set()
    results: dict[int, object] = {}

    def thread(n: int) -> None:
        try:
            results[n] = work(f"t{n}", 3, fail=n % 3 == 0)
        except Planned as exc:
            results[n] = exc

    with record() as pings:
        threads = [threading.Thread(target=thread, args=(n,)) for n in range(12)]
        for each in threads:
            each.start()
        for each in threads:
            each.join(20)
    for n in range(12):
        # Depth 3 calls depth 2 (fails: 3 is odd), which calls depth 1 (succeeds), which
        # calls depth 0 (fails: 1 is odd); the outermost fails for every third thread.
        failed |= {f"t{n}.3", f"t{n}.3.2.1"}
        if n % 3 == 0:
            failed.add(f"t{n}")
            assert isinstance(results[n], Planned)
        else:
            assert results[n] == f"t{n}"
    check_runs(pings, 12 * 4, failed, named_by_run=False)


def test_overlapping_and_nested_runs_in_asyncio_tasks_never_cross() -> None:
    steadycron.capture_errors = True

    @steadycron.job(KEY)
    async def work(name: str, depth: int, fail: bool) -> str:
        await asyncio.sleep(0.01 * (depth + 1))
        if depth:
            async with steadycron.monitor(KEY):
                await asyncio.sleep(0.01)
            with suppress(Planned):
                await work(f"{name}.{depth}", depth - 1, fail=depth == 1)
        if fail:
            raise Planned(name)
        return name

    async def main() -> list[object]:
        tasks = [work(f"task{n}", 2, fail=n % 2 == 1) for n in range(10)]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    with record() as pings:
        results = asyncio.run(main())
    failed = {f"task{n}.2.1" for n in range(10)} | {f"task{n}" for n in range(1, 10, 2)}
    assert [r if isinstance(r, str) else type(r) for r in results] == [
        f"task{n}" if n % 2 == 0 else Planned for n in range(10)
    ]
    # Per task: 3 decorated runs (depths 2, 1, 0) and 2 ``async with`` runs (depths 2, 1).
    check_runs(pings, 10 * 5, failed, named_by_run=False)


def test_one_monitor_object_shared_by_threads_keeps_each_run_apart() -> None:
    steadycron.capture_errors = True
    shared = steadycron.monitor(KEY)
    barrier = threading.Barrier(8)
    entered: list[str] = []
    lock = threading.Lock()

    def thread(n: int) -> None:
        with suppress(Planned), shared as run:
            with lock:
                entered.append(run.run_id)
                place = len(entered)
            barrier.wait(timeout=10)
            time.sleep(0.005 * place)  # first in, first out: no run leaves last-in-first-out
            if n % 2:
                raise Planned(run.run_id)

    with record() as pings:
        threads = [threading.Thread(target=thread, args=(n,)) for n in range(8)]
        for each in threads:
            each.start()
        for each in threads:
            each.join(20)
    failed = {message.removeprefix("Planned: ") for message in fail_messages(pings)}
    assert len(failed) == 4
    check_runs(pings, 8, failed, named_by_run=True)


def test_one_monitor_object_shared_by_tasks_keeps_each_run_apart() -> None:
    steadycron.capture_errors = True
    shared = steadycron.monitor(KEY)
    entered: list[str] = []

    async def task(n: int) -> str:
        async with shared as run:
            entered.append(run.run_id)
            place = len(entered)
            while len(entered) < 8:  # every run is open before any closes
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.005 * place)
            if n % 2:
                raise Planned(run.run_id)
            return run.run_id

    async def main() -> list[object]:
        return list(await asyncio.gather(*(task(n) for n in range(8)), return_exceptions=True))

    with record() as pings:
        results = asyncio.run(main())
    failed = {str(r) for r in results if isinstance(r, Planned)}
    assert len(failed) == 4
    check_runs(pings, 8, failed, named_by_run=True)


def test_a_run_left_in_another_task_or_thread_than_it_was_entered_still_ends() -> None:
    """As an async fixture does: set up in one task, torn down in another."""
    shared = steadycron.monitor(KEY)

    async def main() -> None:
        await asyncio.create_task(shared.__aenter__())
        await asyncio.create_task(shared.__aexit__(None, None, None))

    with record() as pings:
        asyncio.run(main())
        opened = threading.Thread(target=shared.__enter__)
        opened.start()
        opened.join(10)
        shared.__exit__(Planned, Planned("x"), None)
    assert [run.states for run in pings.runs(KEY)] == [["start", "success"], ["start", "fail"]]


# -- a failing job while SteadyCron is down ----------------------------------------

PING_TIMEOUT = 0.3
JOB_SECONDS = 0.2
#: Scheduling noise allowed on top of the job and its two pings.
MARGIN = 0.5


@contextmanager
def hung_server() -> Iterator[str]:
    with LoopbackServer(lambda received: Answer(silent=True)) as server:
        yield server.url


def unreachable(kind: str) -> AbstractContextManager[str]:
    if kind == "refused":
        return nullcontext(closed_port_url())
    if kind == "black hole":
        return silent_listener()
    return hung_server()


@pytest.mark.parametrize("transport", [Urllib3Transport, StdlibTransport])
@pytest.mark.parametrize("direct_token", [True, False], ids=["direct token", "resolved"])
@pytest.mark.parametrize("kind", ["refused", "black hole", "never answers"])
def test_a_job_failing_while_steadycron_is_down_raises_its_own_error_in_time(
    kind: str, direct_token: bool, transport: type[Urllib3Transport | StdlibTransport]
) -> None:
    error = OSError("backup target is full")

    with unreachable(kind) as url:
        config = Config(
            api_key=API_KEY,
            api_url=url,
            ping_url=url,
            ping_timeout=PING_TIMEOUT,
            monitors={KEY: TOKEN} if direct_token else {},
        )
        with SteadyCron(config, transport=transport()) as client:

            @client.job(KEY)
            def backup() -> None:
                time.sleep(JOB_SECONDS)
                raise error

            started = time.monotonic()
            with pytest.raises(OSError, match="backup target is full") as caught:
                backup()
            elapsed = time.monotonic() - started

    assert caught.value is error
    assert error.__context__ is None
    assert error.__cause__ is None
    assert caught.traceback[-1].name == "backup"
    assert elapsed < JOB_SECONDS + 2 * PING_TIMEOUT + MARGIN


def test_an_async_job_failing_while_steadycron_is_down_raises_its_own_error_in_time() -> None:
    error = LookupError("no such row")
    with silent_listener() as url:
        steadycron.configure(api_key=API_KEY, api_url=url, ping_url=url, ping_timeout=PING_TIMEOUT)

        @steadycron.job(KEY)
        async def backup() -> None:
            await asyncio.sleep(JOB_SECONDS)
            raise error

        started = time.monotonic()
        with pytest.raises(LookupError, match="no such row") as caught:
            asyncio.run(backup())
        elapsed = time.monotonic() - started
    assert caught.value is error
    assert error.__context__ is None
    assert elapsed < JOB_SECONDS + 2 * PING_TIMEOUT + MARGIN
