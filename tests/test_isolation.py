"""API.md §5: trouble with one host never starves another, and worker pools keep their cap.

A client talks to two hosts: its API (resolves) and its ping host. Worker threads stuck on
one of them (an answer that drips a byte at a time, a name lookup that hangs) are bounded
per host, so pings to the other keep flowing; however many pings start at once, a client
never runs more worker threads than its cap, and ``close()`` leaves none behind.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from loopback import Answer, LoopbackServer, Received, StandIn, wait_for

from steadycron import Config, SteadyCron
from steadycron._deadline import Deadline
from steadycron._ping import Ping
from steadycron._workers import MAX_THREADS, MAX_THREADS_PER_HOST, Workers
from steadycron.transports import (
    StdlibTransport,
    Transport,
    TransportTimeoutError,
    Urllib3Transport,
)

API_KEY = "sc_ro_isolation_4e1d"
DRIPPING_KEYS = [f"drip-{n}" for n in range(40)]
HEALTHY_KEYS = [f"direct-{n}" for n in range(10)]
TOKENS = {key: f"tok_{key}" for key in DRIPPING_KEYS + HEALTHY_KEYS}
SEND_THREAD = "steadycron-send"


def new_send_threads(before: set[int]) -> list[threading.Thread]:
    """Worker threads started since *before* (idents) that are still alive."""
    return [t for t in threading.enumerate() if t.name == SEND_THREAD and t.ident not in before]


def send_thread_idents() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name == SEND_THREAD and t.ident}


def roomy(server: LoopbackServer) -> LoopbackServer:
    server._server.socket.listen(128)  # dozens of threads connect at once
    return server


@pytest.fixture
def dripping_api() -> Iterator[LoopbackServer]:
    """An API whose resolve answers drip in at 20 bytes a second: many seconds each."""
    standin = StandIn(TOKENS)

    def drip(received: Received) -> Answer:
        answer = standin(received)
        return Answer(answer.status, answer.body, answer.headers, drip_seconds_per_byte=0.05)

    with LoopbackServer(drip) as server:
        server._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        yield roomy(server)


@pytest.mark.parametrize("transport_class", [Urllib3Transport, StdlibTransport])
def test_a_dripping_api_never_starves_pings_to_a_healthy_ping_host(
    dripping_api: LoopbackServer, server: LoopbackServer, transport_class: Callable[[], Transport]
) -> None:
    roomy(server)
    config = Config(
        api_key=API_KEY,
        api_url=dripping_api.url,
        ping_url=server.url,
        ping_timeout=3.0,
        monitors={key: TOKENS[key] for key in HEALTHY_KEYS},
    )
    with SteadyCron(config, transport=transport_class()) as client:
        drips = [
            threading.Thread(target=client.send, args=(Ping(key, "success"),))
            for key in DRIPPING_KEYS
        ]
        for thread in drips:
            thread.start()
        assert wait_for(lambda: len(dripping_api.received) >= MAX_THREADS_PER_HOST)
        time.sleep(0.2)  # every resolve has been handed to a worker, or waits for one

        took: dict[str, float] = {}
        delivered: dict[str, bool] = {}

        def healthy_ping(key: str) -> None:
            started = time.monotonic()
            delivered[key] = client.send(Ping(key, "success")).delivered
            took[key] = time.monotonic() - started

        pingers = [threading.Thread(target=healthy_ping, args=(key,)) for key in HEALTHY_KEYS]
        for thread in pingers:
            thread.start()
        for thread in pingers:
            thread.join(10)
        assert delivered == dict.fromkeys(HEALTHY_KEYS, True)
        assert max(took.values()) < 1.0, took  # not held until the drips' deadline (3 s)
        # The dripping host got at most its share of the workers.
        assert len(dripping_api.received) <= MAX_THREADS_PER_HOST
        for thread in drips:
            thread.join(10)


FIRST_PINGS = """
import json, sys, threading, time
from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.transports import Urllib3Transport

def send_threads():
    return [t for t in threading.enumerate() if t.name == "steadycron-send"]

most = 0
sampling = True
def sample():
    global most
    while sampling:
        most = max(most, len(send_threads()))
        time.sleep(0.002)

sampler = threading.Thread(target=sample)
sampler.start()
config = Config(ping_url=sys.argv[1], monitors={"k": "tok_k"}, ping_timeout=5.0)
client = SteadyCron(config, transport=Urllib3Transport(maxsize=64))
barrier = threading.Barrier(64)
outcomes = []
def first_ping():
    barrier.wait(10)
    outcomes.append(client.send(Ping("k", "success")).delivered)
threads = [threading.Thread(target=first_ping) for _ in range(64)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(20)
sampling = False
sampler.join()
client.close()
end = time.monotonic() + 2
while send_threads() and time.monotonic() < end:
    time.sleep(0.01)
print(json.dumps({"delivered": outcomes.count(True), "most": most, "left": len(send_threads())}))
"""


def test_64_concurrent_first_pings_never_run_more_workers_than_the_cap(
    server: LoopbackServer,
) -> None:
    """In a fresh process, as an application meets it: nothing of the SDK is loaded yet."""
    roomy(server)
    server.respond = lambda received: Answer(200, delay=0.2)  # so that sends overlap
    ran = subprocess.run(
        [sys.executable, "-c", FIRST_PINGS, server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(ran.stdout)
    assert seen["delivered"] == 64, ran.stderr
    assert 1 <= seen["most"] <= MAX_THREADS, seen
    assert seen["left"] == 0, seen


def test_a_pool_never_exceeds_its_cap_and_close_leaves_no_thread() -> None:
    before = send_thread_idents()
    workers = Workers()
    release = threading.Event()
    running = 0
    most = 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1

    callers = [
        threading.Thread(
            target=lambda n=n: workers.call(slow, deadline=Deadline.after(5), host=f"h{n}")
        )
        for n in range(3 * MAX_THREADS)
    ]
    for caller in callers:
        caller.start()
    assert wait_for(lambda: running == MAX_THREADS)
    time.sleep(0.2)
    assert len(new_send_threads(before)) == MAX_THREADS
    release.set()
    for caller in callers:
        caller.join(10)
    assert most == MAX_THREADS
    workers.close()
    assert wait_for(lambda: not new_send_threads(before), timeout=2.0)


def test_one_host_gets_no_more_than_its_share_of_workers() -> None:
    workers = Workers()
    release = threading.Event()
    running: dict[str, int] = {"sick": 0, "healthy": 0}
    lock = threading.Lock()

    def stuck(host: str) -> Callable[[], None]:
        def work() -> None:
            with lock:
                running[host] += 1
            release.wait(5)

        return work

    def call(host: str, seconds: float) -> None:
        # Timing out is what the sick host's calls do.
        with contextlib.suppress(TransportTimeoutError):
            workers.call(stuck(host), deadline=Deadline.after(seconds), host=host)

    sick = [threading.Thread(target=call, args=("sick", 0.5)) for _ in range(MAX_THREADS)]
    for thread in sick:
        thread.start()
    for thread in sick:
        thread.join(5)  # every caller walked away at its deadline; the work is still stuck
    healthy = [threading.Thread(target=call, args=("healthy", 5)) for _ in range(8)]
    for thread in healthy:
        thread.start()
    assert wait_for(lambda: running["healthy"] == 8)
    assert running["sick"] == MAX_THREADS_PER_HOST
    release.set()
    for thread in healthy:
        thread.join(5)
    workers.close()
