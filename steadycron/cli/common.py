"""What the subcommands share: exit codes, messages on stderr, settings from the options,
and a client that notices which pings arrived."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TypeAlias

    from steadycron import Config

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROG = "steadycron"


def add_settings(parser: argparse.ArgumentParser) -> None:
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


def subparser(
    subparsers: Subparsers,
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


def say(kind: str, text: str) -> None:
    print(f"{PROG}: {kind}: {text}", file=sys.stderr, flush=True)


def warn(text: str) -> None:
    say("warning", text)


HINTS = {
    "AuthenticationError": "pass a valid API key with --api-key or STEADYCRON_API_KEY",
    "MonitorNotFoundError": "compare the key with your monitor manifest, or create the "
    "monitor as a heartbeat job",
    "AmbiguousJobKeyError": "give the monitor a unique id in your manifest",
    "InvalidMonitorKindError": "pings go to heartbeat and agent monitors: declare the job "
    "with 'kind: heartbeat' (or 'kind: agent'), or use the key of such a job",
    "ConfigurationError": "pass --api-key or set STEADYCRON_API_KEY",
}


def report_misconfiguration(exc: Exception) -> None:
    """Say what is wrong and what to change, without a traceback."""
    say("error", str(exc))
    hint = HINTS.get(type(exc).__name__)
    if hint is not None:
        say("hint", hint)


def config_from(args: argparse.Namespace) -> Config:
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


class DeliveryWatch(logging.Handler):
    """Shows on stderr the WARNINGs the SDK logs for pings it discards (and counts them).

    The SDK logs rather than raises delivery trouble; in a shell script nobody configured
    logging, so without this the reason a ping did not arrive would go unseen.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        warn(record.getMessage())


class Monitoring:
    """A client for one command that knows whether each of its pings arrived.

    Use it as a context manager: the watch on the ``steadycron`` logger is in place while
    the block runs, and the client is closed at its end.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        """Raises ValueError or TypeError when a setting is invalid."""
        from steadycron import SteadyCron

        self._client = SteadyCron(config_from(args))
        self._watch = DeliveryWatch()
        self._logger = logging.getLogger("steadycron")

    def __enter__(self) -> Monitoring:
        self._logger.addHandler(self._watch)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._client.close()
        finally:
            self._logger.removeHandler(self._watch)

    @property
    def ping_timeout(self) -> float:
        """The time budget of each ping."""
        return self._client.config.ping_timeout

    def ping(
        self,
        key: str,
        state: str,
        message: str | None = None,
        *,
        run_id: str | None = None,
        report: Mapping[str, object] | None = None,
    ) -> bool:
        """Send one ping; return whether it was delivered.

        Raises:
            ConfigurationError: the key or the API key is wrong.
        """
        from steadycron._exceptions import ConfigurationError
        from steadycron._ping import Ping

        before = self._watch.count
        try:
            ping = Ping.checked(key, state, message, run_id, report)
            delivered = self._client.send(ping).delivered
        except ConfigurationError:
            raise
        except Exception as exc:  # the SDK promises not to raise; the script must not die
            warn(f"ping for {key!r} not delivered: {type(exc).__name__}: {exc}")
            return False
        if not delivered and self._watch.count == before:
            warn(f"ping for {key!r} not delivered")
        return delivered
