"""``steadycron run KEY -- COMMAND``: run a command as a monitored job."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import (
    EXIT_USAGE,
    PROG,
    Monitoring,
    add_settings,
    report_misconfiguration,
    say,
    subparser,
    warn,
)

if TYPE_CHECKING:
    from .common import Subparsers
    from .process import Outcome, SignalForwarder

EPILOG = """\
examples:
  steadycron run nightly-db-backup -- /usr/local/bin/backup.sh --full
  steadycron run nightly-db-backup --capture -- pg_dump -f /backups/db.sql app
  steadycron run report --environment staging -- sh -c 'make report && make upload'

  crontab:
  15 3 * * * steadycron run nightly-db-backup --capture -- /usr/local/bin/backup.sh

A start ping is sent, the command runs (without a shell, unless you invoke one) with its
output passed through unchanged, then a success ping (exit code 0) or a fail ping saying
how it ended. SIGINT and SIGTERM sent to steadycron reach the command, and the run is a
fail "terminated by SIGTERM" however the command then ends.

Kubernetes (a CronJob's container command): on SIGTERM the pod has its grace period
(terminationGracePeriodSeconds, 30 s by default) before everything is killed. Give the
same value with --grace-period (or STEADYCRON_GRACE_PERIOD): if the command is still
running when only the fail ping's time (--timeout) and one second are left, the fail
ping is sent then, and the command keeps the rest of the grace period.

The command finds in STEADYCRON_REPORT_FILE a path where it may write an agent monitor's
run report, a JSON object such as {"items": 5, "tokens_in": 1200, "cost_usd": 0.04}
(fields: items, output_chars, steps, tool_calls, model, tokens_in, tokens_out, cost_usd,
trace_url, summary; the wire names itemsProduced, tokensIn, costUsd... work too). The
outcome ping carries it; on a fail, the summary says how the command ended. A file that
is not valid is a warning naming it, and the run is reported all the same.

exit status: the command's own (128+N when killed by signal N, 127 when it could not be
started). When SteadyCron is unreachable or the key is wrong the command still runs and
the problem is printed on stderr; with --strict a wrong key or setting exits 2 before
anything runs.
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = subparser(subparsers, "run", "run a command and report how it ended", EPILOG)
    parser.usage = f"{PROG} run KEY [options] -- COMMAND [ARGS ...]"
    parser.add_argument("key", metavar="KEY", help="monitor key (the job id in the manifest)")
    parser.add_argument(
        "--capture",
        action="store_true",
        help="put the end of the command's output into the fail message",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 without running the command when the key or a setting is wrong",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        metavar="SECONDS",
        help="time the command has after SIGTERM before it is killed, as the pod's "
        "terminationGracePeriodSeconds [STEADYCRON_GRACE_PERIOD] (default 30)",
    )
    add_settings(parser)
    parser.set_defaults(func=command, command=None, usage_error=parser.error)


def command(args: argparse.Namespace) -> int:
    import os
    import uuid

    from steadycron._exceptions import ConfigurationError
    from steadycron.cli.process import forwarding_signals
    from steadycron.cli.termination import TerminationWatch, grace_period, report_wait

    from .reports import REPORT_FILE_VARIABLE, read_report_file, report_file

    if not args.command:
        args.usage_error("give the command after '--': steadycron run KEY -- COMMAND [ARGS ...]")
    run_id = uuid.uuid4().hex

    with forwarding_signals() as forwarder, report_file() as report_path:
        env = {**os.environ, REPORT_FILE_VARIABLE: report_path}
        try:
            monitoring = Monitoring(args)
            grace = grace_period(args.grace_period)
        except (ValueError, TypeError) as exc:
            return _run_unmonitored(args, forwarder, env, exc)
        with monitoring:
            try:
                monitoring.ping(args.key, "start", run_id=run_id)
            except ConfigurationError as exc:
                return _run_unmonitored(args, forwarder, env, exc)

            def overdue(number: int) -> None:
                message = f"{terminated(number)}; command still running near the end of its "
                message += f"{grace:g} s grace period"
                report = read_report_file(report_path)
                monitoring.ping(args.key, "fail", message, run_id=run_id, report=report)

            watch = TerminationWatch(report_wait(grace, monitoring.ping_timeout), overdue)
            forwarder.on_signal = watch.signalled
            outcome = _run_command(args, forwarder, env)
            if watch.finished():
                return outcome.exit_code

            report = read_report_file(report_path)
            if watch.signal is not None and outcome.start_error is None:
                message = fail_message(outcome, terminated(watch.signal))
                monitoring.ping(args.key, "fail", message, run_id=run_id, report=report)
            elif outcome.succeeded:
                monitoring.ping(args.key, "success", run_id=run_id, report=report)
            else:
                message = fail_message(outcome)
                monitoring.ping(args.key, "fail", message, run_id=run_id, report=report)
    return outcome.exit_code


def terminated(number: int) -> str:
    from steadycron.cli.process import signal_name

    return f"terminated by {signal_name(number)}"


def _run_unmonitored(
    args: argparse.Namespace, forwarder: SignalForwarder, env: dict[str, str], problem: Exception
) -> int:
    """Misconfigured: run the command anyway (its exit code unchanged) unless --strict."""
    report_misconfiguration(problem)
    if args.strict:
        return EXIT_USAGE
    warn("running the command without monitoring")
    return _run_command(args, forwarder, env).exit_code


def _run_command(
    args: argparse.Namespace, forwarder: SignalForwarder, env: dict[str, str]
) -> Outcome:
    from steadycron.cli.process import run_command

    outcome = run_command(args.command, forwarder, capture=args.capture, env=env)
    if outcome.start_error is not None:
        say("error", outcome.describe())
    return outcome


def fail_message(outcome: Outcome, reason: str | None = None) -> str:
    """Why the run failed and how the command ended, followed by the end of its output
    when it was captured."""
    from steadycron._message import MARKER, MAX_MESSAGE_BYTES, clip_tail

    summary = outcome.describe() if reason is None else f"{reason}; {outcome.describe()}"
    output = outcome.tail.decode("utf-8", "replace").rstrip()
    if not output:
        return summary
    heading = f"{summary}; output ends with:\n"
    room = MAX_MESSAGE_BYTES - len(heading.encode("utf-8"))
    tail = clip_tail(output).encode("utf-8")
    if len(tail) > room:
        # clip_tail fits a whole message body; the heading needs its share of it too.
        kept = tail[len(tail) - room + len(MARKER) :]
        return heading + MARKER + kept.decode("utf-8", "ignore")
    return heading + tail.decode("utf-8")
