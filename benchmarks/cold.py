"""Cold process: ``python job.py`` from start to exit, resolve and two pings included.

The API and the ping host are two listeners (two connections, as in production). The
SDK job is set against the same job written with the standard library alone; both trust
the throwaway CA through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

from pathlib import Path

from .bench import API_KEY, Bench, Outcome
from .processes import child_env, process_batch
from .report import Row, Target, rows_with_ratios
from .timing import Contender, alternate

JOBS = Path(__file__).parent / "jobs"
BASELINE = "baseline: stdlib job, fresh connections"
SDK = "steadycron job"


def measure(bench: Bench) -> Outcome:
    env = child_env(
        {
            "STEADYCRON_API_KEY": API_KEY,
            "STEADYCRON_API_URL": bench.servers.url("https-api"),
            "STEADYCRON_PING_URL": bench.servers.url("https"),
            "SSL_CERT_FILE": str(bench.tls.ca_bundle),
        }
    )
    contenders = {
        BASELINE: Contender(process_batch([bench.python, str(JOBS / "stdlib_job.py")], env), 1),
        SDK: Contender(process_batch([bench.python, str(JOBS / "sdk_job.py")], env), 1),
    }
    probe = bench.servers.probe("https", "https-api")
    results = alternate(contenders, bench.scale(21, 2), probe=probe)
    scenario = "cold process, HTTPS"
    rows = rows_with_ratios(
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
    ratio = results[SDK].median / results[BASELINE].median
    target = Target(f"{scenario}, vs stdlib job", "<= 0.8x", f"{ratio:.2f}x", ratio <= 0.8)
    return Outcome(rows, [target])
