"""Warm runs: a decorated job run again and again in one process, resolution cached.

Each run costs a start and a success ping. The SDK's transports are set beside two
floors that send the same two requests with nothing around them (urllib3's pool and a
kept-alive ``http.client`` connection), and beside the baseline a standard-library-only
client amounts to: ``urllib.request`` with a fresh connection, and for HTTPS a fresh
TLS context, per ping.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
import urllib.request

import urllib3

from steadycron import Config, SteadyCron
from steadycron.transports import StdlibTransport, Transport, Urllib3Transport

from .bench import API_KEY, USER_AGENT, Bench, Outcome
from .report import Row, Target, rows_with_ratios
from .timing import Batch, Contender, alternate

KEY = "warm-job"
RUN_ID = "0123456789abcdef0123456789abcdef"
FLOOR = "floor: urllib3.PoolManager"
SDK_URLLIB3 = "steadycron, Urllib3Transport"
FRESH = "baseline: fresh connection per ping"


def _job() -> None:
    """The job itself does nothing: the run is all monitoring."""


def _sdk(bench: Bench, scheme: str, transport: Transport) -> Batch:
    client = SteadyCron(
        Config(
            api_key=API_KEY,
            api_url=bench.servers.url(f"{scheme}-api"),
            ping_url=bench.servers.url(scheme),
        ),
        transport=transport,
    )
    work = client.job(KEY)(_job)

    def batch(runs: int) -> None:
        for _ in range(runs):
            work()

    return batch


def _ping_urls(bench: Bench, scheme: str) -> tuple[str, str]:
    base = f"{bench.servers.url(scheme)}/{KEY}"
    return f"{base}/start?run_id={RUN_ID}", f"{base}?run_id={RUN_ID}"


def _urllib3_floor(bench: Bench, scheme: str) -> Batch:
    pool = urllib3.PoolManager(retries=False, ca_certs=str(bench.tls.ca_bundle))
    start, success = _ping_urls(bench, scheme)

    def batch(runs: int) -> None:
        for _ in range(runs):
            pool.request("POST", start, headers=USER_AGENT)
            pool.request("POST", success, headers=USER_AGENT)

    return batch


def _http_client_floor(bench: Bench, scheme: str) -> Batch:
    port = bench.servers.ports[scheme]
    connection = (
        http.client.HTTPSConnection(
            "127.0.0.1", port, context=ssl.create_default_context(cafile=bench.tls.ca_bundle)
        )
        if scheme == "https"
        else http.client.HTTPConnection("127.0.0.1", port)
    )
    paths = [urllib.parse.urlsplit(url) for url in _ping_urls(bench, scheme)]
    targets = [f"{path.path}?{path.query}" for path in paths]

    def batch(runs: int) -> None:
        for _ in range(runs):
            for target in targets:
                connection.request("POST", target, headers=USER_AGENT)
                connection.getresponse().read()

    return batch


def fresh_ping(url: str, cafile: str | None) -> None:
    """One ping the way a standard-library-only client sends it."""
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    request = urllib.request.Request(url, data=b"", method="POST", headers=USER_AGENT)
    with urllib.request.urlopen(request, timeout=5, context=context) as answer:
        answer.read()


def _fresh(bench: Bench, scheme: str) -> Batch:
    urls = _ping_urls(bench, scheme)
    cafile = str(bench.tls.ca_bundle)

    def batch(runs: int) -> None:
        for _ in range(runs):
            for url in urls:
                fresh_ping(url, cafile)

    return batch


def _contenders(bench: Bench, scheme: str) -> dict[str, Contender]:
    runs = bench.scale(10, 10)
    cafile = str(bench.tls.ca_bundle)
    fresh_runs = 1
    return {
        FLOOR: Contender(_urllib3_floor(bench, scheme), runs),
        "floor: http.client keep-alive": Contender(_http_client_floor(bench, scheme), runs),
        SDK_URLLIB3: Contender(_sdk(bench, scheme, Urllib3Transport(ca_certs=cafile)), runs),
        "steadycron, StdlibTransport": Contender(
            _sdk(bench, scheme, StdlibTransport(ca_certs=cafile)), 1
        ),
        FRESH: Contender(_fresh(bench, scheme), fresh_runs),
    }


def measure(bench: Bench) -> Outcome:
    rows: list[Row] = []
    targets: list[Target] = []
    for scheme in ("http", "https"):
        scenario = f"warm run, {scheme.upper()}"
        probe = bench.servers.probe(scheme, f"{scheme}-api")
        results = alternate(_contenders(bench, scheme), bench.scale(150, 3), probe=probe)
        rows += rows_with_ratios(
            [
                Row(
                    scenario,
                    name,
                    result.median * 1e6,
                    "µs/run",
                    reference=None if name == FLOOR else FLOOR,
                    connections=result.probed_per_iteration,
                )
                for name, result in results.items()
            ]
        )
        sdk, floor = results[SDK_URLLIB3], results[FLOOR]
        ratio = sdk.median / floor.median
        targets.append(
            Target(
                f"{scenario}, Urllib3Transport vs floor", "<= 1.3x", f"{ratio:.2f}x", ratio <= 1.3
            )
        )
        if scheme == "https":
            speedup = results[FRESH].median / sdk.median
            targets.append(
                Target(
                    f"{scenario}, Urllib3Transport vs fresh connections",
                    ">= 30x faster",
                    f"{speedup:.1f}x faster",
                    speedup >= 30,
                )
            )
        else:
            per_run = sdk.probed_per_iteration
            targets.append(
                Target(
                    f"{scenario}, Urllib3Transport connections",
                    "< 0.01 per run",
                    f"{per_run:.4f} per run",
                    per_run < 0.01,
                )
            )
    return Outcome(rows, targets)
