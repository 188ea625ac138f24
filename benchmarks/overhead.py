"""Decorator overhead: a tracked run with ``NullTransport`` minus a bare call.

What is left is the SDK's own work for a run (run id, settings, token lookup, two
ping requests built and "sent"), for an explicit client and for the module-level
default client, whose settings re-read the environment at every run by contract.

Beside it, what a ``tenacity.Retrying`` shaped like the pinger's costs around one
successful attempt: the reason the pinger makes its first attempt before tenacity.
"""

from __future__ import annotations

from collections.abc import Callable

import steadycron
from steadycron import Config, SteadyCron
from steadycron.transports import NullTransport

from .bench import API_KEY, Bench, Outcome
from .report import Row, Target
from .timing import Batch, Contender, alternate

BARE = "bare call"
CONTENDERS = {
    "@client.job, NullTransport": "client",
    "@steadycron.job, NullTransport": "default",
}
TENACITY = "tenacity around one attempt"
LIMIT_US = 20.0


def _noop() -> None:
    """The job: nothing, so the SDK's share is all there is."""


def _calls(function: Callable[[], None]) -> Batch:
    def batch(calls: int) -> None:
        for _ in range(calls):
            function()

    return batch


def _retrying(function: Callable[[], None]) -> Callable[[], None]:
    """*function* called through a Retrying built like the pinger's (retry on errors and
    some results, jittered exponential wait, a custom stop)."""
    import tenacity

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(OSError) | tenacity.retry_if_result(bool),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1.0) + tenacity.wait_random(0, 0.05),
        stop=lambda state: state.attempt_number >= 10,
        retry_error_callback=lambda state: None,
    )
    return lambda: retrying(function)


def measure(bench: Bench) -> Outcome:
    client = SteadyCron(Config(api_key=API_KEY), transport=NullTransport())
    steadycron.configure(api_key=API_KEY, transport=NullTransport())
    decorated = {
        "client": client.job("overhead-job")(_noop),
        "default": steadycron.job("overhead-job")(_noop),
    }
    calls = bench.scale(1000, 200)
    contenders = {BARE: Contender(_calls(_noop), calls, warmup=100)}
    for name, which in CONTENDERS.items():
        contenders[name] = Contender(_calls(decorated[which]), calls, warmup=100)
    contenders[TENACITY] = Contender(_calls(_retrying(_noop)), calls, warmup=100)
    try:
        results = alternate(contenders, bench.scale(60, 2))
    finally:
        steadycron.configure(api_key=None, transport=None)
        client.close()
    bare = results[BARE].median
    scenario = "decorator overhead"
    rows = [Row(scenario, BARE, bare * 1e9, "ns/call")]
    tenacity_ns = (results[TENACITY].median - bare) * 1e9
    rows.append(Row(scenario, f"{TENACITY} (minus bare call)", tenacity_ns, "ns/call"))
    targets = []
    for name in CONTENDERS:
        overhead_us = (results[name].median - bare) * 1e6
        rows.append(Row(scenario, f"{name} (minus bare call)", overhead_us * 1e3, "ns/call"))
        targets.append(
            Target(
                f"{scenario}, {name}",
                f"<= {LIMIT_US:.0f} µs/run",
                f"{overhead_us:.1f} µs/run",
                overhead_us <= LIMIT_US,
            )
        )
    return Outcome(rows, targets)
