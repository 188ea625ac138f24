"""Concurrency: eight threads running jobs on one client, over HTTP and HTTPS.

The pooled transport keeps one connection per thread; the unpooled one pays a
connection (and over HTTPS a TLS handshake) per ping. On loopback HTTP a connection is
cheap, so there the comparison is mostly of the Python each request costs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import urllib3

from steadycron import Config, SteadyCron
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

from .bench import API_KEY, USER_AGENT, Bench, Outcome
from .report import Row, Target, rows_with_ratios
from .timing import Batch, Contender, alternate

THREADS = 8
POOLED = "steadycron, Urllib3Transport"
UNPOOLED = "steadycron, StdlibTransport"
FLOOR = "floor: urllib3.PoolManager"
RUN_ID = "0123456789abcdef0123456789abcdef"


def _job() -> None:
    """The job itself does nothing: the run is all monitoring."""


def _threaded(run: Callable[[], None]) -> Batch:
    """A batch that splits its runs over THREADS threads started together."""

    def batch(runs: int) -> None:
        share, extra = divmod(runs, THREADS)
        start = threading.Barrier(THREADS)

        def worker(count: int) -> None:
            start.wait()
            for _ in range(count):
                run()

        threads = [
            threading.Thread(target=worker, args=(share + (index < extra),))
            for index in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return batch


def _jobs(bench: Bench, scheme: str, transport: Transport) -> Batch:
    config = Config(
        api_key=API_KEY,
        api_url=bench.servers.url(f"{scheme}-api"),
        ping_url=bench.servers.url(scheme),
    )
    return _threaded(SteadyCron(config, transport=transport).job("threads-job")(_job))


def _raw_urllib3(bench: Bench, scheme: str) -> Batch:
    """The same two requests per run on a bare urllib3 pool: what pooling alone gives."""
    pool = urllib3.PoolManager(maxsize=10, retries=False, ca_certs=str(bench.tls.ca_bundle))
    url = f"{bench.servers.url(scheme)}/threads-job?run_id={RUN_ID}"

    def run() -> None:
        pool.request("POST", f"{url}/start", headers=USER_AGENT)
        pool.request("POST", url, headers=USER_AGENT)

    return _threaded(run)


def measure(bench: Bench) -> Outcome:
    rows: list[Row] = []
    targets: list[Target] = []
    cafile = str(bench.tls.ca_bundle)
    for scheme in ("http", "https"):
        jobs = bench.scale(200, 40)
        unpooled_jobs = jobs if scheme == "http" else bench.scale(40, 8)
        contenders = {
            UNPOOLED: Contender(
                _jobs(bench, scheme, StdlibTransport(ca_certs=cafile)),
                unpooled_jobs,
                warmup=THREADS,
            ),
            POOLED: Contender(
                _jobs(bench, scheme, Urllib3Transport(ca_certs=cafile)),
                jobs,
                warmup=THREADS,
            ),
            FLOOR: Contender(_raw_urllib3(bench, scheme), jobs, warmup=THREADS),
        }
        probe = bench.servers.probe(scheme, f"{scheme}-api")
        results = alternate(contenders, bench.scale(15, 1), probe=probe)
        scenario = f"{THREADS} threads, {scheme.upper()}"
        rows += rows_with_ratios(
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
        if scheme == "http":
            speedup = results[UNPOOLED].median / results[POOLED].median
            targets.append(
                Target(
                    f"{scenario}, Urllib3Transport vs StdlibTransport",
                    ">= 1.5x jobs/s",
                    f"{speedup:.2f}x",
                    speedup >= 1.5,
                )
            )
    return Outcome(rows, targets)
