"""API.md §5: pooled connections are not shared across ``os.fork()``.

A forked child (a prefork worker, a ``multiprocessing`` child) must ping on connections of
its own, must not hang on locks or threads it inherited, and must leave its parent's
pooled connection working.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import Answer, LoopbackServer, Received, StandIn, wait_for

import steadycron
from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.transports import Urllib3Transport

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform cannot fork")

RESOLVE = "/api/monitors/resolve"
SLOW_KEY = "slow-report"
SLOW_TOKEN = "tok_slow_3a1f"
#: A child that has not exited by then is hung: killed, and the test fails.
CHILD_DEADLINE = 15.0


def answer(received: Received) -> Answer:
    """The stand-in, except that pings to the slow monitor are answered after a second."""
    if received.path == f"/{SLOW_TOKEN}":
        return Answer(200, delay=1.0)
    return StandIn({KEY: TOKEN})(received)


@pytest.fixture(scope="module")
def running() -> Iterator[LoopbackServer]:
    with LoopbackServer(answer) as server:
        yield server


@pytest.fixture
def server(running: LoopbackServer) -> LoopbackServer:
    """The API and ping host, fresh for each test."""
    running.received.clear()
    running.connections = 0
    return running


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[SteadyCron]:
    config = Config(
        api_key=API_KEY,
        api_url=server.url,
        ping_url=server.url,
        ping_timeout=3.0,
        monitors={SLOW_KEY: SLOW_TOKEN},
    )
    with SteadyCron(config, transport=Urllib3Transport()) as made:
        yield made


def in_child(work: Callable[[], bool]) -> int:
    """Run *work* in a forked child; its exit status: 0 if it returned True, 1 if False,
    2 if it raised."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads: that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover -- runs in the child, which never returns to pytest
        status = 2
        try:
            status = 0 if work() else 1
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(status)
    return wait_for_exit(pid)


def wait_for_exit(pid: int) -> int:
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not exit within {CHILD_DEADLINE} s")


def ping(client: SteadyCron, key: str = KEY) -> bool:
    return client.send(Ping(key, "success")).delivered


def steadycron_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("steadycron")]


def test_child_pings_on_its_own_connection_and_the_parents_survives(
    client: SteadyCron, server: LoopbackServer
) -> None:
    assert ping(client)  # resolves and pings on one pooled connection, left open
    assert server.connections == 1

    assert in_child(lambda: ping(client)) == 0
    assert ping(client)  # on the parent's pooled connection, still intact

    assert server.paths() == [RESOLVE, f"/{TOKEN}", f"/{TOKEN}", f"/{TOKEN}"]
    # One connection for the parent (reused) and one opened by the child. A child that
    # reused the parent's socket would leave this at 1.
    assert server.connections == 2


def test_child_of_a_client_that_never_pinged_resolves_and_pings(
    client: SteadyCron, server: LoopbackServer
) -> None:
    assert in_child(lambda: ping(client)) == 0
    assert server.paths() == [RESOLVE, f"/{TOKEN}"]
    # The child's memory is its own; the parent finds its answer in the token cache on disk.
    assert ping(client)
    assert server.paths() == [RESOLVE, f"/{TOKEN}", f"/{TOKEN}"]


def test_child_forked_while_a_ping_is_in_flight_does_not_hang(
    client: SteadyCron, server: LoopbackServer
) -> None:
    """Threads that were busy at the fork (a ping waiting for its answer, the workers,
    the deadline watchdog) do not exist in the child; nothing it inherited may block it."""
    assert ping(client)
    assert steadycron_threads(), "the client's threads should be running before the fork"
    delivered: list[bool] = []
    in_flight = threading.Thread(target=lambda: delivered.append(ping(client, SLOW_KEY)))
    in_flight.start()
    assert wait_for(lambda: f"/{SLOW_TOKEN}" in server.paths())

    started = time.monotonic()
    assert in_child(lambda: ping(client)) == 0
    assert time.monotonic() - started < 3.0 + 0.5

    in_flight.join(5)
    assert delivered == [True]
    assert ping(client)
    assert server.paths().count(f"/{TOKEN}") == 3
    assert server.paths().count(RESOLVE) == 1


def test_child_runs_a_tracked_job_of_the_default_client(server: LoopbackServer) -> None:
    steadycron.configure(api_key=API_KEY, api_url=server.url, ping_url=server.url, ping_timeout=3.0)
    ran: list[str] = []

    @steadycron.job(KEY)
    def job() -> None:
        ran.append("ran")

    job()  # the parent's run: resolves, and leaves a pooled connection open

    def child_run() -> bool:
        job()
        return ran == ["ran", "ran"]

    assert in_child(child_run) == 0
    job()
    assert ran == ["ran", "ran"]  # the child's run happened in the child
    assert server.paths() == [RESOLVE] + [f"/{TOKEN}/start", f"/{TOKEN}"] * 3
    run_ids = [received.query["run_id"] for received in server.received[1:]]
    assert len(set(run_ids)) == 3  # three runs, each with its own run id
    assert server.connections == 2
