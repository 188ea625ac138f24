"""Side-by-side timing: contenders take turns, so machine noise lands on all of them.

Each round runs every contender once, in an order rotated from round to round; the
figure reported is the median over rounds. Turns are kept short (many rounds of a few
iterations) so that a burst of load from elsewhere on the machine hits every contender
rather than whichever happened to be running. A probe (the server's connection counter)
is read around each turn so connections are attributed to the contender that opened
them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import attrs

#: Runs a contender *n* times; returns nothing (the caller times it).
Batch = Callable[[int], None]


@attrs.frozen
class Contender:
    """A way of doing the work, and how many iterations make one timed turn."""

    batch: Batch
    iterations: int
    warmup: int = 1


@attrs.define
class Measured:
    """Seconds per iteration in each round, and what the probe counted along the way."""

    per_iteration: list[float] = attrs.Factory(list)
    iterations: int = 0
    probed: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.per_iteration)

    @property
    def probed_per_iteration(self) -> float:
        return self.probed / self.iterations if self.iterations else 0.0


def alternate(
    contenders: Mapping[str, Contender],
    rounds: int,
    *,
    probe: Callable[[], int] = lambda: 0,
) -> dict[str, Measured]:
    """Time every contender for *rounds* rounds, taking turns; warm-up runs are probed
    (a pool's first connection counts) but not timed."""
    results = {name: Measured() for name in contenders}
    for name, contender in contenders.items():
        before = probe()
        contender.batch(contender.warmup)
        results[name].probed += probe() - before
        results[name].iterations += contender.warmup
    names = list(contenders)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            contender, result = contenders[name], results[name]
            before = probe()
            started = time.perf_counter()
            contender.batch(contender.iterations)
            elapsed = time.perf_counter() - started
            result.probed += probe() - before
            result.iterations += contender.iterations
            result.per_iteration.append(elapsed / contender.iterations)
    return results
