"""``steadycron demo``: monitored jobs against a local stand-in, pings shown as they arrive.

Everything runs in this process: the stand-in serves on a free loopback port, the module
level API is pointed at it exactly as a user would point it at SteadyCron, and the jobs
below are ordinary decorated functions. Nothing is left running afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import IO

import steadycron

from .devserver import DevServer, Timeline

#: The breaker's cool-down in the demo (1 s rather than 10 s, so nobody waits).
DEMO_COOLDOWN = 1.0
KEYS = ("nightly-db-backup", "hourly-report", "warm-search-index")


@steadycron.job("nightly-db-backup")
def backup_database() -> str:
    time.sleep(0.3)
    return "3 tables, 41 MB"


@steadycron.job("hourly-report")
def build_report() -> None:
    time.sleep(0.1)
    raise OSError("disk full on /var/reports")


@steadycron.job("warm-search-index")
async def warm_search_index() -> int:
    import asyncio

    await asyncio.sleep(0.2)
    return 1200


def _say(out: IO[str], text: str) -> None:
    out.write(f"\n{text}\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step behaved as the contract says."""
    out = sys.stdout
    color = out.isatty() and "NO_COLOR" not in os.environ
    timeline = Timeline(out, color=color, key_width=max(map(len, KEYS)))
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("               steadycron warning: %(message)s"))
    logger = logging.getLogger("steadycron")
    logger.addHandler(handler)
    server = DevServer(
        dict.fromkeys(KEYS, "heartbeat"), on_ping=timeline.ping, on_note=timeline.note
    )
    try:
        with server:
            steadycron.configure(
                api_key="sc_ro_demo",
                api_url=server.url,
                ping_url=server.url,
                environment="demo",
                capture_errors=True,
                ping_timeout=args.ping_timeout,
            )
            _say(out, f"SteadyCron stand-in listening on {server.url}")
            return _steps(out, server)
    finally:
        logger.removeHandler(handler)
        steadycron.default_client().close()


def _steps(out: IO[str], server: DevServer) -> int:
    _say(out, "1. A job that succeeds: a start ping, then success with the run's duration.")
    result = backup_database()
    _say(out, f"   backup_database() returned {result!r}")

    _say(out, "2. A job that fails: the fail ping carries the error, which is re-raised.")
    try:
        build_report()
    except OSError as exc:
        _say(out, f"   build_report() raised {type(exc).__name__}: {exc} -- unchanged")
    else:
        return 1

    _say(out, "3. An async job: the pings never block the event loop.")
    import asyncio

    indexed = asyncio.run(warm_search_index())
    _say(out, f"   warm_search_index() returned {indexed}")

    _say(
        out,
        "4. SteadyCron unreachable: every connection is dropped, the job still runs.\n"
        "   The start ping spends its budget; then the circuit breaker holds back the\n"
        "   host's pings for a cool-down (10 s, shortened to 1 s in this demo).",
    )
    from steadycron._breaker import Breaker

    steadycron.default_client()._pinger.breaker = Breaker(first_cooldown=DEMO_COOLDOWN)
    server.drop_rate = 1.0
    started = time.monotonic()
    result = backup_database()
    took = time.monotonic() - started
    server.drop_rate = 0.0
    _say(out, f"   backup_database() returned {result!r} in {took:.1f} s (pings discarded)")

    _say(out, "5. Back online: after the cool-down one ping probes, and runs are delivered.")
    time.sleep(DEMO_COOLDOWN * 1.2)  # the cool-down, give or take its jitter
    backup_database()
    delivered = [ping.state for ping in server.pings]
    _say(out, f"Done: {len(delivered)} pings received by the stand-in; nothing left running.")
    return 0 if delivered.count("success") == 3 and delivered.count("fail") == 1 else 1


HELP = "run monitored jobs against a local stand-in and watch the pings arrive"


def main(argv: list[str] | None = None) -> int:
    """``steadycron demo [--ping-timeout SECONDS]``."""
    parser = argparse.ArgumentParser(
        prog="steadycron demo",
        description=__doc__,
        epilog="examples:\n  steadycron demo\n  steadycron demo --ping-timeout 0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=1.0,
        help="seconds one ping may take, retries included (default: 1.0)",
    )
    return run(parser.parse_args(argv))
