"""``settings.STEADYCRON``: read, checked, and applied to the default client.

The dict holds the settings of ``steadycron.configure()`` plus ``commands`` (management
command name -> monitor key). Settings it leaves out keep their environment variables
and defaults. An invalid dict is not applied: the system checks say what is wrong.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from ..._config import SETTING_NAMES, Config, check_key

SETTING = "STEADYCRON"
COMMANDS = "commands"
KNOWN = (*SETTING_NAMES, COMMANDS)

#: What each setting accepts, for the hints of the system checks.
ACCEPTS = {
    "api_key": "a read-only API key (str), or None to read STEADYCRON_API_KEY",
    "api_url": "an http(s) URL without credentials, query or fragment",
    "ping_url": "an http(s) URL without credentials, query or fragment",
    "environment": "a str such as 'production', or None",
    "capture_errors": "True or False",
    "ping_timeout": "a number of seconds, more than 0 and at most 3600",
    "resolve_cache_ttl": "a number of seconds, 0 or more (0 turns caching off)",
    "monitors": "a dict of monitor key -> ping token",
    "token_cache": "a folder path, or 'off'",
    COMMANDS: "a dict of management command name -> monitor key, "
    "e.g. {'clearsessions': 'nightly-clearsessions'}",
}

log = logging.getLogger("steadycron")


@attrs.frozen
class Problem:
    """One thing wrong with ``settings.STEADYCRON``."""

    id: str
    message: str
    hint: str
    error: bool = True


def configured() -> object:
    """``settings.STEADYCRON`` as it is now, or None when the project has none."""
    from django.conf import settings

    return getattr(settings, SETTING, None)


def problems(value: object) -> list[Problem]:
    """Everything wrong with *value* as a ``STEADYCRON`` setting."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [
            Problem(
                "steadycron.E001",
                f"settings.{SETTING} must be a dict, not {type(value).__name__}",
                f"{SETTING} = {{'environment': 'production', 'commands': {{...}}}}",
            )
        ]
    found = []
    for name, setting in value.items():
        if name not in KNOWN:
            close = difflib.get_close_matches(str(name), KNOWN, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            found.append(
                Problem(
                    "steadycron.E002",
                    f"settings.{SETTING} has an unknown setting {name!r}",
                    f"{guess}Known settings: {', '.join(KNOWN)}.",
                )
            )
        elif name == COMMANDS:
            found += _command_problems(setting)
        else:
            try:
                Config(**{name: setting})
            except (TypeError, ValueError) as exc:
                found.append(
                    Problem(
                        "steadycron.E003",
                        f"settings.{SETTING}[{name!r}] is invalid: {exc}",
                        f"{name} accepts {ACCEPTS.get(name, 'what steadycron.configure() does')}.",
                    )
                )
    return found


def _command_problems(commands: object) -> list[Problem]:
    hint = f"{COMMANDS} accepts {ACCEPTS[COMMANDS]}."
    if not isinstance(commands, Mapping):
        message = f"settings.{SETTING}[{COMMANDS!r}] must be a dict, not {type(commands).__name__}"
        return [Problem("steadycron.E004", message, hint)]
    found = []
    for name, key in commands.items():
        try:
            if not isinstance(name, str) or not name:
                raise TypeError(f"command names are non-empty str, not {name!r}")
            check_key(key)
        except (TypeError, ValueError) as exc:
            message = f"settings.{SETTING}[{COMMANDS!r}] is invalid: {exc}"
            found.append(Problem("steadycron.E004", message, hint))
    if found:
        return found
    from django.core.management import get_commands

    available = get_commands()
    for name in commands:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            guess = f"Did you mean {close[0]!r}? " if close else ""
            found.append(
                Problem(
                    "steadycron.W001",
                    f"settings.{SETTING}[{COMMANDS!r}] names {name!r}, "
                    "which is not a management command of this project",
                    f"{guess}Its runs cannot be monitored until an installed app provides it.",
                    error=False,
                )
            )
    return found


def commands() -> Mapping[str, str]:
    """The monitored commands (name -> key); empty while the setting is invalid."""
    try:
        value = configured()
    except Exception:  # settings not configured: a command run outside a project
        return {}
    if not isinstance(value, Mapping):
        return {}
    named = value.get(COMMANDS)
    return named if isinstance(named, Mapping) else {}


_applied: set[str] = set()


def apply_settings() -> None:
    """Configure the default client from ``settings.STEADYCRON``, when it is valid.

    Settings applied before and left out now go back to their environment variables
    and defaults, so a test's ``override_settings`` leaves nothing behind.
    """
    import steadycron

    global _applied
    value = configured()
    errors = [problem for problem in problems(value) if problem.error]
    if errors:
        log.error(
            "settings.%s is not applied: %s (manage.py check lists every problem)",
            SETTING,
            errors[0].message,
        )
        return
    mapping: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    given = {name: setting for name, setting in mapping.items() if name != COMMANDS}
    steadycron.configure(**dict.fromkeys(_applied - set(given)), **given)
    _applied = set(given)
