"""``steadycron dev-server``: its options, its banner, and serving until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import IO, Any

from ..manifest import read_for_command
from .server import DevServer
from .timeline import Timeline

DEFAULT_PORT = 8787

DESCRIPTION = """\
Run a local stand-in for SteadyCron: it resolves monitor keys and receives pings on one
loopback address, and prints a timeline of the pings as they arrive. Point the SDK at it
with the export lines it prints, run your job, and watch.
"""

EXAMPLES = """\
examples:
  steadycron dev-server monitors.yaml
  steadycron dev-server monitors/ --monitor nightly-db-backup
  steadycron dev-server --manifest monitors/billing.yaml --manifest monitors/ops.yaml
  steadycron dev-server --monitor nightly-db-backup --port 0 --json
  steadycron dev-server monitors.yaml --latency 2 --error-rate 0.3 --drop-rate 0.1
  curl -s http://127.0.0.1:8787/api/dev/pings
"""


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifests",
        nargs="*",
        metavar="MANIFEST",
        help="monitor manifest, or a directory of *.yaml/*.yml manifests; its jobs become "
        "the known keys (http and agent jobs resolve with their kind)",
    )
    parser.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="PATH",
        help="a MANIFEST given as an option, like check and lint take it (repeatable)",
    )
    parser.add_argument(
        "--monitor",
        action="append",
        default=[],
        type=_non_empty,
        metavar="KEY",
        help="also know KEY as a heartbeat monitor (repeatable; wins over a manifest)",
    )
    parser.add_argument(
        "--ambiguous",
        action="append",
        default=[],
        type=_non_empty,
        metavar="KEY",
        help="answer 409 (the key matches several jobs) when KEY is resolved (repeatable)",
    )
    parser.add_argument(
        "--api-key",
        type=_non_empty,
        metavar="KEY",
        help="accept only this API key (default: any non-empty key)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per ping on stdout (other output goes to stderr)",
    )
    faults = parser.add_argument_group("fault injection (resolves and pings only)")
    faults.add_argument(
        "--latency",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long before every answer",
    )
    faults.add_argument(
        "--error-rate",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of answers, 0 to 1, that are 503 instead",
    )
    faults.add_argument(
        "--drop-rate",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of connections, 0 to 1, closed without any answer",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; 2 for a bad manifest or an address in use."""
    out, err = sys.stdout, sys.stderr
    monitors: dict[str, str] = {}
    manifests = [*args.manifests, *args.manifest]
    if manifests:
        jobs = read_for_command(manifests, "dev-server", err)
        if jobs is None:
            return 2
        monitors.update({key: job.kind for key, job in jobs.items()})
    monitors.update(dict.fromkeys(args.monitor, "heartbeat"))

    color = not args.json and out.isatty() and "NO_COLOR" not in os.environ
    key_width = min(max((len(key) for key in monitors), default=0), 40)
    timeline = Timeline(
        out, as_json=args.json, color=color, key_width=key_width, notes=err if args.json else out
    )
    server = DevServer(
        monitors,
        ambiguous=args.ambiguous,
        api_key=args.api_key,
        latency=args.latency,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        on_ping=timeline.ping,
        on_note=timeline.note,
        host=args.host,
        port=args.port,
    )
    try:
        server.start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (try another --port, or --port 0 for any free one)" if args.port else ""
        print(
            f"steadycron dev-server: error: cannot listen on {args.host}:{args.port}: "
            f"{reason}{hint}",
            file=err,
        )
        return 2

    banner = err if args.json else out
    previous = _stop_on_sigterm()
    try:
        _print_banner(banner, server, monitors, args)
        thread = server._thread
        while thread is not None and thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    count = len(server.pings)
    print(f"stopped; {count} ping{'' if count == 1 else 's'} received", file=banner, flush=True)
    return 0


def _stop_on_sigterm() -> Any:
    """Make SIGTERM stop the server like Ctrl-C; returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _print_banner(
    stream: IO[str], server: DevServer, monitors: Mapping[str, str], args: argparse.Namespace
) -> None:
    lines = [f"SteadyCron dev server on {server.url}"]
    if monitors:
        lines.append(f"{len(monitors)} monitor{'' if len(monitors) == 1 else 's'}:")
        shown = sorted(monitors.items())
        lines += [f"  {key}  ({kind})" for key, kind in shown[:20]]
        if len(shown) > 20:
            lines.append(f"  ... and {len(shown) - 20} more")
    else:
        lines.append("no monitors yet: every key resolves to 404 (add a MANIFEST or --monitor)")
    if args.ambiguous:
        lines.append(f"answering 409 for: {', '.join(args.ambiguous)}")
    faults = []
    if args.latency:
        faults.append(f"{args.latency:g}s latency")
    if args.error_rate:
        faults.append(f"{args.error_rate:.0%} answered 503")
    if args.drop_rate:
        faults.append(f"{args.drop_rate:.0%} dropped")
    if faults:
        lines.append(f"faults: {', '.join(faults)}")
    lines += ["", "Point the SDK at it (paste into the shell that runs your job):"]
    lines += [f"export STEADYCRON_API_URL={server.url}", f"export STEADYCRON_PING_URL={server.url}"]
    if args.api_key is None:
        lines.append("export STEADYCRON_API_KEY=sc_dev_local   # any non-empty key is accepted")
    lines += ["", "Press Ctrl-C to stop.", ""]
    stream.write("\n".join(lines) + "\n")
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    """Run ``dev-server`` on its own: ``python -m steadycron.cli.devserver [options]``."""
    parser = argparse.ArgumentParser(
        prog="steadycron dev-server",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
