"""``steadycron check``: do monitor keys resolve to monitors the SDK can ping?"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    HINTS,
    add_settings,
    config_from,
    report_misconfiguration,
    say,
    subparser,
)

if TYPE_CHECKING:
    from steadycron import SteadyCron

    from .common import Subparsers

EPILOG = """\
examples:
  steadycron check nightly-db-backup queue-drain-tick
  steadycron check --manifest monitors/
  STEADYCRON_API_KEY=sc_ro_... steadycron check --manifest monitors/billing.yaml
  steadycron check --celery proj.celery:app --manifest monitors/

Each key is resolved with the configured API key and reported as one of: ok, not found,
ambiguous, wrong kind, auth failure, unreachable. With --manifest every heartbeat and
agent job of the manifests is checked.

With --celery, nothing is resolved: the app is imported (as 'celery -A' does), each entry
of its beat_schedule is listed with the key it is monitored under, and with --manifest
each key is checked against the manifests (declared, a heartbeat or agent job, the same
schedule and time zone); declared jobs no entry uses are warned about.

exit status: 0 when every key is ok, 1 when any is not, 2 on a usage or manifest error.
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers,
        "check",
        "check that monitor keys resolve to monitors that take pings (heartbeat, agent)",
        EPILOG,
    )
    parser.add_argument("keys", nargs="*", metavar="KEY", help="monitor keys to check")
    parser.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="PATH",
        help="check every heartbeat and agent job of this manifest file or directory (repeatable)",
    )
    parser.add_argument(
        "--celery",
        metavar="MODULE:APP",
        help="list the beat entries of this Celery app and their keys, and check them "
        "against the manifests",
    )
    add_settings(parser)
    parser.set_defaults(func=command, usage_error=parser.error)


def command(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from steadycron import SteadyCron
    from steadycron._protocol import PINGABLE_KINDS
    from steadycron.cli.manifest import read_for_command

    if args.celery is not None:
        if args.keys:
            args.usage_error("give monitor keys or --celery MODULE:APP, not both")
        from .celery_check import run

        return run(args.celery, args.manifest)
    keys = list(args.keys)
    if args.manifest:
        jobs = read_for_command(args.manifest, "check")
        if jobs is None:
            return EXIT_USAGE
        keys += [key for key, job in jobs.items() if job.kind in PINGABLE_KINDS]
        if not keys:
            say("error", "the manifests declare no heartbeat or agent job")
            return EXIT_USAGE
    if not keys:
        args.usage_error("give monitor keys or --manifest PATH")
    keys = list(dict.fromkeys(keys))

    try:
        config = config_from(args)
    except (ValueError, TypeError) as exc:
        report_misconfiguration(exc)
        return EXIT_USAGE
    if config.api_key is None:
        say("error", "checking keys needs an API key")
        say("hint", HINTS["ConfigurationError"])
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
        what = (
            f"kind {exc.kind!r}: pings go to heartbeat and agent monitors"
            if exc.kind
            else "not a monitor that takes pings"
        )
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
