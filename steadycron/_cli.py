"""The ``steadycron`` command: monitor shell scripts and crontab lines, check keys in CI.

Monitoring must never break the script it watches, so ``ping`` and ``run`` report
delivery trouble on stderr and carry on; only misconfiguration (which a human has to
fix) is an error, and ``--strict`` makes the rest fatal where a pipeline wants that.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from steadycron import _lint
from steadycron._version import __version__

if TYPE_CHECKING:
    from steadycron import Config, SteadyCron
    from steadycron._wrap import Outcome, SignalForwarder

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROG = "steadycron"
STATES = ("start", "success", "fail")

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

_PING_EPILOG = """\
examples:
  steadycron ping nightly-db-backup
  steadycron ping nightly-db-backup --state start
  steadycron ping nightly-db-backup --state fail --message "disk full"
  steadycron ping nightly-db-backup --strict || echo "ping not delivered"

exit status: 0 when the ping was sent or could not be delivered (a warning is printed;
monitoring never breaks a script), 1 when it could not be delivered and --strict is
given, 2 when the key or the settings are wrong (the message says what to fix).
"""

_RUN_EPILOG = """\
examples:
  steadycron run nightly-db-backup -- /usr/local/bin/backup.sh --full
  steadycron run nightly-db-backup --capture -- pg_dump -f /backups/db.sql app
  steadycron run report --environment staging -- sh -c 'make report && make upload'

  crontab:
  15 3 * * * steadycron run nightly-db-backup --capture -- /usr/local/bin/backup.sh

A start ping is sent, the command runs (without a shell, unless you invoke one) with its
output passed through unchanged, then a success ping (exit code 0) or a fail ping saying
how it ended. SIGINT and SIGTERM sent to steadycron reach the command.

exit status: the command's own (128+N when killed by signal N, 127 when it could not be
started). When SteadyCron is unreachable or the key is wrong the command still runs and
the problem is printed on stderr; with --strict a wrong key or setting exits 2 before
anything runs.
"""

_CHECK_EPILOG = """\
examples:
  steadycron check nightly-db-backup queue-drain-tick
  steadycron check --manifest monitors/
  STEADYCRON_API_KEY=sc_ro_... steadycron check --manifest monitors/billing.yaml

Each key is resolved with the configured API key and reported as one of: ok, not found,
ambiguous, wrong kind, auth failure, unreachable. With --manifest every heartbeat job of
the manifests is checked.

exit status: 0 when every key is ok, 1 when any is not, 2 on a usage or manifest error.
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
    _add_ping(subparsers)
    _add_run(subparsers)
    _add_check(subparsers)
    _lint.add_parser(subparsers)
    for name, (_, help) in _DEFERRED.items():
        subparsers.add_parser(name, help=help, add_help=False)  # listed in --help only
    return parser


#: Subcommands whose modules (a server, asyncio) load only when they run: every
#: ``steadycron run`` in a crontab would otherwise pay for those imports. Each module's
#: own ``main(argv)`` parses its arguments, ``--help`` included.
_DEFERRED = {
    "dev-server": (
        "steadycron._devserver",
        "run a local stand-in for SteadyCron and watch the pings arrive",
    ),
    "demo": (
        "steadycron._demo",
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
        args = parser.parse_args(arguments[:split])
        if getattr(args, "func", None) is _run:
            args.command = arguments[split + 1 :]
            return args
    return parser.parse_args(arguments)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override the environment)")
    group.add_argument("--api-key", metavar="KEY", help="API key [STEADYCRON_API_KEY]")
    group.add_argument("--api-url", metavar="URL", help="API base URL [STEADYCRON_API_URL]")
    group.add_argument("--ping-url", metavar="URL", help="ping base URL [STEADYCRON_PING_URL]")
    group.add_argument(
        "--environment", metavar="NAME", help="environment tag [STEADYCRON_ENVIRONMENT]"
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="time budget of each request, retries included (default 5)",
    )


def _subparser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    epilog: str,
) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# -- settings and the client -------------------------------------------------------------


def _say(kind: str, text: str) -> None:
    print(f"{PROG}: {kind}: {text}", file=sys.stderr, flush=True)


def _warn(text: str) -> None:
    _say("warning", text)


_HINTS = {
    "AuthenticationError": "pass a valid API key with --api-key or STEADYCRON_API_KEY",
    "MonitorNotFoundError": "compare the key with your monitor manifest, or create the "
    "monitor as a heartbeat job",
    "AmbiguousJobKeyError": "give the monitor a unique id in your manifest",
    "InvalidMonitorKindError": "pings go to heartbeat monitors: declare the job with "
    "'kind: heartbeat', or use the key of a heartbeat job",
    "ConfigurationError": "pass --api-key or set STEADYCRON_API_KEY",
}


def _report_misconfiguration(exc: Exception) -> None:
    """Say what is wrong and what to change, without a traceback."""
    _say("error", str(exc))
    hint = _HINTS.get(type(exc).__name__)
    if hint is not None:
        _say("hint", hint)


def _config(args: argparse.Namespace) -> Config:
    """Settings from the environment, overridden by the options given.

    Raises:
        ValueError, TypeError: a setting is invalid (a malformed URL, a bad timeout).
    """
    from steadycron import Config

    given = {
        "api_key": args.api_key,
        "api_url": args.api_url,
        "ping_url": args.ping_url,
        "environment": args.environment,
        "ping_timeout": args.timeout,
    }
    return Config.from_env(**{name: value for name, value in given.items() if value is not None})


class _DeliveryWatch(logging.Handler):
    """Shows on stderr the WARNINGs the SDK logs for pings it discards (and counts them).

    The SDK logs rather than raises delivery trouble; in a shell script nobody configured
    logging, so without this the reason a ping did not arrive would go unseen.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        _warn(record.getMessage())


class _Monitoring:
    """A client for one command that knows whether each of its pings arrived.

    Use it as a context manager: the watch on the ``steadycron`` logger is in place while
    the block runs, and the client is closed at its end.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        """Raises ValueError or TypeError when a setting is invalid."""
        from steadycron import SteadyCron

        self._client = SteadyCron(_config(args))
        self._watch = _DeliveryWatch()
        self._logger = logging.getLogger("steadycron")

    def __enter__(self) -> _Monitoring:
        self._logger.addHandler(self._watch)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._client.close()
        finally:
            self._logger.removeHandler(self._watch)

    def ping(
        self, key: str, state: str, message: str | None = None, *, run_id: str | None = None
    ) -> bool:
        """Send one ping; return whether it was delivered.

        Raises:
            ConfigurationError: the key or the API key is wrong.
        """
        from steadycron._exceptions import ConfigurationError
        from steadycron._ping import Ping

        before = self._watch.count
        try:
            delivered = self._client.send(Ping.checked(key, state, message, run_id)).delivered
        except ConfigurationError:
            raise
        except Exception as exc:  # the SDK promises not to raise; the script must not die
            _warn(f"ping for {key!r} not delivered: {type(exc).__name__}: {exc}")
            return False
        if not delivered and self._watch.count == before:
            _warn(f"ping for {key!r} not delivered")
        return delivered


# -- ping ----------------------------------------------------------------------------------


def _add_ping(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _subparser(subparsers, "ping", "send one ping to a heartbeat monitor", _PING_EPILOG)
    parser.add_argument("key", metavar="KEY", help="monitor key (the job id in the manifest)")
    parser.add_argument("--state", choices=STATES, default="success", help="default: success")
    parser.add_argument("--message", metavar="TEXT", help="message shown with the ping")
    parser.add_argument(
        "--run-id",
        type=_run_id,
        metavar="HEX",
        help="32 lowercase hex digits shared by the pings of one run",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the ping could not be delivered"
    )
    _add_settings(parser)
    parser.set_defaults(func=_ping)


def _run_id(text: str) -> str:
    import re

    if not re.fullmatch(r"[0-9a-f]{32}", text):
        raise argparse.ArgumentTypeError(f"expected 32 lowercase hex digits, got {text!r}")
    return text


def _ping(args: argparse.Namespace) -> int:
    from steadycron._exceptions import ConfigurationError

    try:
        with _Monitoring(args) as monitoring:
            delivered = monitoring.ping(args.key, args.state, args.message, run_id=args.run_id)
    except (ConfigurationError, ValueError, TypeError) as exc:
        _report_misconfiguration(exc)
        return EXIT_USAGE
    if not delivered and args.strict:
        return EXIT_FAILED
    return EXIT_OK


# -- run -----------------------------------------------------------------------------------


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _subparser(subparsers, "run", "run a command and report how it ended", _RUN_EPILOG)
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
    _add_settings(parser)
    parser.set_defaults(func=_run, command=None, usage_error=parser.error)


def _run(args: argparse.Namespace) -> int:
    import uuid

    from steadycron._exceptions import ConfigurationError
    from steadycron._wrap import forwarding_signals

    if not args.command:
        args.usage_error("give the command after '--': steadycron run KEY -- COMMAND [ARGS ...]")
    run_id = uuid.uuid4().hex

    with forwarding_signals() as forwarder:
        try:
            monitoring = _Monitoring(args)
        except (ValueError, TypeError) as exc:
            return _run_unmonitored(args, forwarder, exc)
        with monitoring:
            try:
                monitoring.ping(args.key, "start", run_id=run_id)
            except ConfigurationError as exc:
                return _run_unmonitored(args, forwarder, exc)

            outcome = _run_command(args, forwarder)

            if outcome.succeeded:
                monitoring.ping(args.key, "success", run_id=run_id)
            else:
                monitoring.ping(args.key, "fail", _fail_message(outcome), run_id=run_id)
    return outcome.exit_code


def _run_unmonitored(
    args: argparse.Namespace, forwarder: SignalForwarder, problem: Exception
) -> int:
    """Misconfigured: run the command anyway (its exit code unchanged) unless --strict."""
    _report_misconfiguration(problem)
    if args.strict:
        return EXIT_USAGE
    _warn("running the command without monitoring")
    return _run_command(args, forwarder).exit_code


def _run_command(args: argparse.Namespace, forwarder: SignalForwarder) -> Outcome:
    from steadycron._wrap import run_command

    outcome = run_command(args.command, forwarder, capture=args.capture)
    if outcome.start_error is not None:
        _say("error", outcome.describe())
    return outcome


def _fail_message(outcome: Outcome) -> str:
    """How the command ended, followed by the end of its output when it was captured."""
    from steadycron._message import MARKER, MAX_MESSAGE_BYTES, clip_tail

    summary = outcome.describe()
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


# -- check ---------------------------------------------------------------------------------


def _add_check(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _subparser(
        subparsers, "check", "check that monitor keys resolve to heartbeat monitors", _CHECK_EPILOG
    )
    parser.add_argument("keys", nargs="*", metavar="KEY", help="monitor keys to check")
    parser.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="PATH",
        help="check every heartbeat job of this manifest file or directory (repeatable)",
    )
    _add_settings(parser)
    parser.set_defaults(func=_check, usage_error=parser.error)


def _check(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from steadycron import SteadyCron
    from steadycron._manifest import ManifestError, load_manifests

    keys = list(args.keys)
    if args.manifest:
        try:
            jobs = load_manifests(args.manifest)
        except ManifestError as exc:
            _say("error", f"cannot read the manifest: {exc}")
            return EXIT_USAGE
        keys += [key for key, job in jobs.items() if job.kind == "heartbeat"]
        if not keys:
            _say("error", "the manifests declare no heartbeat job")
            return EXIT_USAGE
    if not keys:
        args.usage_error("give monitor keys or --manifest PATH")
    keys = list(dict.fromkeys(keys))

    try:
        config = _config(args)
    except (ValueError, TypeError) as exc:
        _report_misconfiguration(exc)
        return EXIT_USAGE
    if config.api_key is None:
        _say("error", "checking keys needs an API key")
        _say("hint", _HINTS["ConfigurationError"])
        return EXIT_USAGE

    with SteadyCron(config) as client, ThreadPoolExecutor(min(8, len(keys))) as pool:
        verdicts = list(pool.map(lambda key: _verdict(client, key), keys))

    width = max(len(status) for status, _ in verdicts)
    for key, (status, reason) in zip(keys, verdicts, strict=True):
        line = f"{status:<{width}}  {key}"
        print(f"{line}  ({reason})" if reason else line, flush=True)
    return EXIT_OK if all(status == "ok" for status, _ in verdicts) else EXIT_FAILED


def _verdict(client: SteadyCron, key: str) -> tuple[str, str]:
    """Resolve *key* and name the outcome in the words ``check`` prints."""
    from steadycron._exceptions import (
        AmbiguousJobKeyError,
        AuthenticationError,
        ConfigurationError,
        InvalidMonitorKindError,
        MonitorNotFoundError,
        ResolutionUnavailableError,
    )

    try:
        client.resolve(key)
    except MonitorNotFoundError as exc:
        return "not found", _server_said("no monitor has this key", exc.server_message)
    except AmbiguousJobKeyError as exc:
        return "ambiguous", _server_said("the key matches several jobs", exc.server_message)
    except InvalidMonitorKindError as exc:
        what = f"kind {exc.kind!r}, not 'heartbeat'" if exc.kind else "not a heartbeat job"
        return "wrong kind", _server_said(what, exc.server_message)
    except AuthenticationError as exc:
        return "auth failure", _server_said("the API key was refused", exc.server_message)
    except ResolutionUnavailableError as exc:
        return "unreachable", str(exc)
    except ConfigurationError as exc:
        return "misconfigured", str(exc)
    return "ok", ""


def _server_said(reason: str, server_message: str | None) -> str:
    return f"{reason}; server said: {server_message}" if server_message else reason
