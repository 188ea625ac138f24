"""The ``steadycron`` command: monitor shell scripts and crontab lines, check keys in CI.

Monitoring must never break the script it watches, so ``ping`` and ``run`` report
delivery trouble on stderr and carry on; only misconfiguration (which a human has to
fix) is an error, and ``--strict`` makes the rest fatal where a pipeline wants that.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from steadycron._version import __version__

from . import check, lint, ping, run
from .common import EXIT_INTERRUPTED, EXIT_USAGE, PROG

_MAIN_EPILOG = """\
examples:
  steadycron ping nightly-db-backup
  steadycron run nightly-db-backup --capture -- /usr/local/bin/backup.sh --full
  steadycron check --manifest monitors/
  steadycron lint src/ --manifest monitors/
  steadycron dev-server monitors/

Settings come from STEADYCRON_API_KEY, STEADYCRON_API_URL, STEADYCRON_PING_URL and
STEADYCRON_ENVIRONMENT; the options of each subcommand override them.
Run 'steadycron COMMAND --help' for the options of a subcommand.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``steadycron`` command line and return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in _DEFERRED:
        import importlib

        module = importlib.import_module(_DEFERRED[arguments[0]][0])
        return int(module.main(arguments[1:]))
    parser = build_parser()
    args = _parse(parser, arguments)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Heartbeat monitoring for scheduled jobs, from the shell.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    ping.add_parser(subparsers)
    run.add_parser(subparsers)
    check.add_parser(subparsers)
    lint.add_parser(subparsers)
    for name, (_, help) in _DEFERRED.items():
        subparsers.add_parser(name, help=help, add_help=False)  # listed in --help only
    return parser


#: Subcommands whose modules (a server, asyncio) load only when they run: every
#: ``steadycron run`` in a crontab would otherwise pay for those imports. Each module's
#: own ``main(argv)`` parses its arguments, ``--help`` included.
_DEFERRED = {
    "dev-server": (
        "steadycron.cli.devserver",
        "run a local stand-in for SteadyCron and watch the pings arrive",
    ),
    "demo": (
        "steadycron.cli.demo",
        "run monitored jobs against a local stand-in and watch the pings arrive",
    ),
}


def _parse(parser: argparse.ArgumentParser, arguments: list[str]) -> argparse.Namespace:
    """Parse *arguments*, giving ``run`` everything after its ``--`` untouched.

    argparse alone would read options meant for the command (``run KEY -- ls -l``), and
    its handling of ``--`` differs between Python versions.
    """
    if "--" in arguments:
        split = arguments.index("--")
        args = _parse_known(parser, arguments[:split], separated=True)
        if getattr(args, "func", None) is run.command:
            args.command = arguments[split + 1 :]
            return args
    return _parse_known(parser, arguments, separated=False)


def _parse_known(
    parser: argparse.ArgumentParser, arguments: list[str], *, separated: bool
) -> argparse.Namespace:
    """Parse like ``parse_args``; ``run`` reports its own stray arguments, with its usage.

    ``run KEY backup.sh --full`` (the ``--`` forgotten) is the usual slip: it gets the
    command line it meant, not argparse's "unrecognized arguments".
    """
    args, extras = parser.parse_known_args(arguments)
    if not extras:
        return args
    if getattr(args, "func", None) is not run.command:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not separated and not extras[0].startswith("-"):
        ours = _without(arguments, extras)
        meant = shlex.join([PROG, *ours, "--", *extras])
        args.usage_error(f"the command goes after '--': {meant}")
    args.usage_error(f"unrecognized arguments: {' '.join(extras)}")
    raise AssertionError("usage_error exits")  # pragma: no cover


def _without(arguments: list[str], extras: list[str]) -> list[str]:
    """*arguments* less *extras*, which argparse lists in the order they appear."""
    kept, pending = [], list(extras)
    for argument in arguments:
        if pending and argument == pending[0]:
            pending.pop(0)
        else:
            kept.append(argument)
    return kept
