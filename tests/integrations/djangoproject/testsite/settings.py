"""A small Django project on SQLite whose management commands steadycron monitors."""

import os

SECRET_KEY = "test-only-not-a-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "steadycron.integrations.django",
    "reports",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TESTSITE_DB", ":memory:"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

STEADYCRON = {
    "environment": "test",
    "capture_errors": True,
    "commands": {
        "clearsessions": "nightly-clearsessions",
        "import_rows": "hourly-import",
        "exit_with": "exit-with",
    },
}
