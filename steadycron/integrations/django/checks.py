"""Django system checks for ``settings.STEADYCRON`` (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from .settings import SETTING, configured, problems


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A misspelt setting or an invalid value is an error with a hint saying what to write."""
    found: list[checks.CheckMessage] = []
    for problem in problems(configured()):
        kind = checks.Error if problem.error else checks.Warning
        where = f"settings.{SETTING}"
        found.append(kind(problem.message, hint=problem.hint, obj=where, id=problem.id))
    return found


checks.register(check_settings, "steadycron")
