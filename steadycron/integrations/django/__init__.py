"""Django: management commands monitored by name, settings from ``settings.STEADYCRON``.

::

    INSTALLED_APPS = [..., "steadycron.integrations.django"]

    STEADYCRON = {
        "environment": "production",             # any setting of steadycron.configure()
        "commands": {"clearsessions": "nightly-clearsessions"},   # command -> monitor key
    }

With the app installed, the default client is configured from ``STEADYCRON`` when Django
starts (and again when a test overrides the setting), the settings are checked by
Django's system check framework (``manage.py check``), and every command named in
``commands`` is a monitored run whenever it runs: ``manage.py``, ``django-admin`` or
``call_command``, a project's own commands and third-party ones alike, unedited.
Commands are known by the name they are run by (their module's name). A command's
``CommandError`` or any other exception is a ``fail``; ``SystemExit`` follows the run
rules (code 0 or None is a success). A key that cannot be pinged is logged once and the
command runs.

A project's own command can also say its key itself::

    from steadycron.integrations.django import MonitoredCommand

    class Command(MonitoredCommand):
        steadycron_key = "nightly-report"

        def handle(self, *args, **options): ...
"""

from __future__ import annotations

from .commands import MonitoredCommand

__all__ = ["MonitoredCommand"]
