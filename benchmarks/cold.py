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


def _import_times(launch: Launch, runs: int) -> dict[str, tuple[float, float]]:
    """Milliseconds ``-X importtime`` charges each module of one cold run (self,
    cumulative), the least of *runs* runs: what is left when the machine is quiet."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(runs):
        argv, env = launch()
        stderr = run([argv[0], "-X", "importtime", *argv[1:]], env).stderr.decode()
        for line in stderr.splitlines():
            fields = line.split("|")
            if len(fields) != 3 or not fields[1].strip().isdigit():
                continue
            name = fields[2].strip()
            own, total = float(fields[0].split(":")[1]) / 1e3, float(fields[1]) / 1e3
            seen = best.get(name, (own, total))
            best[name] = (min(seen[0], own), min(seen[1], total))
    return best


def _import_note(jobs: Mapping[str, Launch], runs: int) -> str:
    sdk = _import_times(jobs[WARM], runs)
    stdlib = _import_times(jobs[BASELINE], runs)
    ours = sum(own for name, (own, _) in sdk.items() if name.startswith("steadycron"))

    def total(times: dict[str, tuple[float, float]], name: str) -> float:
        return times.get(name, (0.0, 0.0))[1]

    return (
        "Imports of a cold process over HTTPS with a warm token cache (`-X importtime`, "
        f"least of {runs} runs): urllib3 {total(sdk, 'urllib3'):.1f} ms in all "
        f"(importlib.metadata {total(sdk, 'importlib.metadata'):.1f} ms of it, which "
        "urllib3.http2 loads at import; http.client with the email parser "
        f"{total(sdk, 'http.client'):.1f} ms; ssl {total(sdk, 'ssl'):.1f} ms), attrs "
        f"{total(sdk, 'attrs'):.1f} ms, typing {total(sdk, 'typing'):.1f} ms, and "
        f"steadycron's own modules {ours:.1f} ms (their own time). The standard-library job "
        f"imports urllib.request in {total(stdlib, 'urllib.request'):.1f} ms and json in "
        f"{total(stdlib, 'json'):.1f} ms, then builds a TLS context (reading the whole "
        "trust store) for each of its three requests."
    )


def measure(bench: Bench) -> Outcome:
    rows: list[Row] = []
    targets: list[Target] = []
    notes: list[str] = []
    for scheme, (api, ping) in SCHEMES.items():
        jobs = launches(bench, api, ping)
        contenders = {name: Contender(_batch(launch), 1) for name, launch in jobs.items()}
        probe = bench.servers.probe(api, ping)
        results = alternate(contenders, bench.scale(15, 1), probe=probe)
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
            notes.append(_import_note(jobs, bench.scale(7, 1)))
    return Outcome(rows, targets, notes)
