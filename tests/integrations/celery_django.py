"""Django settings for beat with django-celery-beat's ``DatabaseScheduler`` on SQLite.

``python -m integrations.celery_django`` creates the tables and the periodic tasks the
tests expect, each defined in the database only (none in ``beat_schedule``).
"""

from __future__ import annotations

import json
import os

SECRET_KEY = "tests-only"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CELERY_TEST_DJANGO_DB", ":memory:"),
    }
}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"


def _seed() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="celery-db-entry",
        task="integrations.celery_app.note",
        args=json.dumps(["celery-db-entry"]),
        interval=every_second,
    )
    PeriodicTask.objects.create(
        name="an entry keyed in its headers",
        task="integrations.celery_app.note",
        args=json.dumps(["celery-db-header"]),
        headers=json.dumps({"steadycron_key": "celery-db-header"}),
        interval=every_second,
    )


if __name__ == "__main__":
    _seed()
