"""The app Django loads from ``INSTALLED_APPS``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class SteadyCronConfig(AppConfig):  # type: ignore[misc]
    """Configures the default client from ``settings.STEADYCRON`` and monitors commands."""

    name = "steadycron.integrations.django"
    label = "steadycron"
    verbose_name = "SteadyCron"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import checks  # noqa: F401  (registers the system checks)
        from .commands import monitor_commands
        from .settings import apply_settings

        apply_settings()
        monitor_commands()
        setting_changed.connect(_setting_changed, dispatch_uid="steadycron-settings")


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "STEADYCRON":
        from .settings import apply_settings

        apply_settings()
