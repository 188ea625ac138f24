"""``steadycron ping KEY``: one ping from a shell script."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Monitoring,
    add_settings,
    report_misconfiguration,
    subparser,
)

if TYPE_CHECKING:
    from .common import Subparsers

STATES = ("start", "success", "fail")

EPILOG = """\
examples:
  steadycron ping nightly-db-backup
  steadycron ping nightly-db-backup --state start
  steadycron ping nightly-db-backup --state fail --message "disk full"
  steadycron ping nightly-db-backup --strict || echo "ping not delivered"
  steadycron ping nightly-summarizer --state start --run-id "$RUN_ID"
  steadycron ping nightly-summarizer --run-id "$RUN_ID" --report '{"items": 5, "cost_usd": 0.04}'
  steadycron ping nightly-summarizer --run-id "$RUN_ID" --report @report.json

--report gives an agent monitor's run report as a JSON object, inline or @FILE, with the
fields items, output_chars, steps, tool_calls, model, tokens_in, tokens_out, cost_usd,
trace_url and summary (the wire names itemsProduced, tokensIn, costUsd... work too). It
goes with a success or fail ping; an agent monitor answers a success whose run has no
open start with 422, so send the start with the same --run-id first. A heartbeat
monitor's ping does not carry it.

exit status: 0 when the ping was sent or could not be delivered (a warning is printed;
monitoring never breaks a script), 1 when it could not be delivered and --strict is
given, 2 when the key or the settings are wrong (the message says what to fix).
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = subparser(subparsers, "ping", "send one ping to a heartbeat or agent monitor", EPILOG)
    parser.add_argument("key", metavar="KEY", help="monitor key (the job id in the manifest)")
    parser.add_argument("--state", choices=STATES, default="success", help="default: success")
    parser.add_argument("--message", metavar="TEXT", help="message shown with the ping")
    parser.add_argument(
        "--report",
        metavar="JSON|@FILE",
        help="an agent monitor's run report: a JSON object, or @FILE to read one",
    )
    parser.add_argument(
        "--run-id",
        type=_run_id,
        metavar="HEX",
        help="32 lowercase hex digits shared by the pings of one run",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the ping could not be delivered"
    )
    add_settings(parser)
    parser.set_defaults(func=command)


def _run_id(text: str) -> str:
    import re

    if not re.fullmatch(r"[0-9a-f]{32}", text):
        raise argparse.ArgumentTypeError(f"expected 32 lowercase hex digits, got {text!r}")
    return text


def command(args: argparse.Namespace) -> int:
    from steadycron._exceptions import ConfigurationError

    from .reports import report_option

    try:
        report = None if args.report is None else report_option(args.report)
        if report is not None and args.state == "start":
            raise ValueError("--report goes with the outcome (success or fail), not its start")
        with Monitoring(args) as monitoring:
            delivered = monitoring.ping(
                args.key, args.state, args.message, run_id=args.run_id, report=report
            )
    except (ConfigurationError, ValueError, TypeError) as exc:
        report_misconfiguration(exc)
        return EXIT_USAGE
    if not delivered and args.strict:
        return EXIT_FAILED
    return EXIT_OK
