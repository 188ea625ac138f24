"""Concurrency: eight threads running jobs on one client, over HTTP.

The pooled transport should keep one connection per thread and let the threads overlap
their waits; the unpooled one pays a connection per ping.
"""

from __future__ import annotations

import threading

from steadycron import Config, SteadyCron
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

from .bench import API_KEY, Bench, Outcome
from .report import Row, Target, rows_with_ratios
from .timing import Batch, Contender, alternate

THREADS = 8
POOLED = "steadycron, Urllib3Transport"
UNPOOLED = "steadycron, StdlibTransport"


def _job() -> None:
    """The job itself does nothing: the run is all monitoring."""


def _threaded_jobs(bench: Bench, transport: Transport) -> Batch:
    config = Config(
        api_key=API_KEY, api_url=bench.servers.url("http-api"), ping_url=bench.servers.url("http")
    )
    client = SteadyCron(config, transport=transport)
    work = client.job("threads-job")(_job)

    def batch(jobs: int) -> None:
        share, extra = divmod(jobs, THREADS)
        start = threading.Barrier(THREADS)

        def worker(runs: int) -> None:
            start.wait()
            for _ in range(runs):
                work()

        threads = [
            threading.Thread(target=worker, args=(share + (index < extra),))
            for index in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return batch


def measure(bench: Bench) -> Outcome:
    jobs = bench.scale(800, 40)
    contenders = {
        UNPOOLED: Contender(_threaded_jobs(bench, StdlibTransport()), jobs, warmup=THREADS),
        POOLED: Contender(_threaded_jobs(bench, Urllib3Transport()), jobs, warmup=THREADS),
    }
    probe = bench.servers.probe("http", "http-api")
    results = alternate(contenders, bench.scale(7, 1), probe=probe)
    scenario = f"{THREADS} threads, HTTP"
    rows = rows_with_ratios(
        [
            Row(
                scenario,
                name,
                1 / result.median,
                "jobs/s",
                reference=None if name == UNPOOLED else UNPOOLED,
                connections=result.probed_per_iteration,
            )
            for name, result in results.items()
        ]
    )
    speedup = results[UNPOOLED].median / results[POOLED].median
    target = Target(
        f"{scenario}, Urllib3Transport vs StdlibTransport",
        ">= 1.5x jobs/s",
        f"{speedup:.2f}x",
        speedup >= 1.5,
    )
    return Outcome(rows, [target])
