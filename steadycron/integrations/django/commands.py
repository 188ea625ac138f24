"""Management commands as monitored runs: by name from settings, or by ``MonitoredCommand``.

Every command goes through ``BaseCommand.execute``, whether it was started by
``manage.py``, ``django-admin`` or ``call_command``; wrapping it once is what lets a
third-party command be monitored without editing it. A command is known by its
module's name, which is the name Django runs it by.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand

from .._core import Pings
from .settings import commands

_pings = Pings()
_WRAPPED = "_steadycron_wrapped"
_RUNNING = "_steadycron_running"


def command_name(command: BaseCommand) -> str:
    """The name a command is run by: the last part of its module's name."""
    return type(command).__module__.rpartition(".")[2]


def key_for(command: BaseCommand) -> str | None:
    """The monitor key of *command*: named in settings, else its ``steadycron_key``."""
    key = commands().get(command_name(command))
    if key is None:
        key = getattr(command, "steadycron_key", None)
    return key if isinstance(key, str) and key else None


def run_monitored(command: BaseCommand, execute: Callable[[], Any]) -> Any:
    """Run *execute* as one run of the command's key (once, however often it is wrapped)."""
    if getattr(command, _RUNNING, False):
        return execute()
    try:
        key = key_for(command)
    except Exception:  # a broken setting must not stop the command
        key = None
    if key is None:
        return execute()
    setattr(command, _RUNNING, True)
    try:
        with _pings.run(key):
            return execute()
    finally:
        setattr(command, _RUNNING, False)


def monitor_commands() -> None:
    """Wrap ``BaseCommand.execute`` so every command named in settings is monitored."""
    original = BaseCommand.execute
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def execute(self: BaseCommand, *args: Any, **options: Any) -> Any:
        return run_monitored(self, lambda: original(self, *args, **options))

    setattr(execute, _WRAPPED, True)
    BaseCommand.execute = execute


class MonitoredCommand(BaseCommand):  # type: ignore[misc]
    """A management command whose every run is monitored under ``steadycron_key``.

    A key given for the command in ``settings.STEADYCRON["commands"]`` takes precedence,
    so a deployment can rename it without editing the command.
    """

    #: The monitor key of this command's runs.
    steadycron_key: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if key_for(self) is None:
            raise ImproperlyConfigured(
                f"{type(self).__module__}.{type(self).__qualname__} is a MonitoredCommand "
                "without a key: set steadycron_key = 'your-monitor-key' on the class"
            )

    def execute(self, *args: Any, **options: Any) -> Any:
        return run_monitored(self, lambda: super(MonitoredCommand, self).execute(*args, **options))
