"""Cold process: ``python job.py`` from start to exit, resolve and two pings included.

The API and the ping host are two listeners (two connections, as in production). The
SDK job runs twice: as a first run, with an empty token cache (it resolves, and keeps the
token on disk), and as every later run, with the token cache warm. Both are set against
the same job written with the standard library alone, which opens a fresh connection per
request as the 0.1.1 SDK did. Everything trusts the throwaway CA through
``SSL_CERT_FILE``. On loopback a round trip costs nothing: what is measured here is CPU
(see ``roundtrips`` for the network).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .bench import API_KEY, Bench, Outcome
from .processes import child_env, python_command, run
from .report import Row, Target, rows_with_ratios
from .timing import Contender, alternate

JOBS = Path(__file__).parent / "jobs"
BASELINE = "baseline: stdlib job, fresh connections"
FIRST_RUN = "steadycron job, empty token cache (first run)"
WARM = "steadycron job, warm token cache (later runs)"
SCHEMES = {"HTTP": ("http-api", "http"), "HTTPS": ("https-api", "https")}

#: A way to start one cold process: its command line and environment, made per run.
Launch = Callable[[], tuple[Sequence[str], Mapping[str, str]]]


def launches(bench: Bench, api: str, ping: str) -> dict[str, Launch]:
    """The three cold jobs against listeners *api* and *ping*; the warm one's cache is
    filled here."""
    env = child_env(
        {
            "STEADYCRON_API_KEY": API_KEY,
            "STEADYCRON_API_URL": bench.servers.url(api),
            "STEADYCRON_PING_URL": bench.servers.url(ping),
            "SSL_CERT_FILE": str(bench.tls.ca_bundle),
        }
    )
    stdlib_job = [*python_command(bench.python), str(JOBS / "stdlib_job.py")]
    sdk_job = [*python_command(bench.python), str(JOBS / "sdk_job.py")]
    warm = {**env, "STEADYCRON_TOKEN_CACHE": str(bench.workdir / f"token-cache-{api}")}
    run(sdk_job, warm)
    empty_folders = (bench.workdir / f"token-cache-{api}-{n}" for n in itertools.count())

    def first_run() -> tuple[Sequence[str], Mapping[str, str]]:
        return sdk_job, {**env, "STEADYCRON_TOKEN_CACHE": str(next(empty_folders))}

    return {
        BASELINE: lambda: (stdlib_job, env),
        FIRST_RUN: first_run,
        WARM: lambda: (sdk_job, warm),
    }


def _batch(launch: Launch) -> Callable[[int], None]:
    def batch(iterations: int) -> None:
        for _ in range(iterations):
            run(*launch())

    return batch


def measure(bench: Bench) -> Outcome:
    rows: list[Row] = []
    targets: list[Target] = []
    for scheme, (api, ping) in SCHEMES.items():
        contenders = {
            name: Contender(_batch(launch), 1)
            for name, launch in launches(bench, api, ping).items()
        }
        probe = bench.servers.probe(api, ping)
        results = alternate(contenders, bench.scale(15, 2), probe=probe)
        scenario = f"cold process, {scheme}"
        rows += rows_with_ratios(
            [
                Row(
                    scenario,
                    name,
                    result.median * 1e3,
                    "ms",
                    reference=None if name == BASELINE else BASELINE,
                    connections=result.probed_per_iteration,
                )
                for name, result in results.items()
            ]
        )
        if scheme == "HTTPS":
            ratio = results[FIRST_RUN].median / results[BASELINE].median
            name = f"{scenario}, first run, vs stdlib job"
            targets.append(Target(name, "<= 0.8x", f"{ratio:.2f}x", ratio <= 0.8))
    return Outcome(rows, targets)
