"""The Celery app that the tests' real worker and beat processes run.

Configured from the environment the tests set: ``CELERY_TEST_BROKER`` (the test Redis),
``CELERY_TEST_SCHEDULE`` (which beat schedule), ``CELERY_TEST_READY_DIR`` (a worker
touches ``<hostname>`` there when it is ready) and the usual ``STEADYCRON_*`` variables
pointing at a loopback stand-in. Tasks note each attempt in Redis (``ran:<name>``) so the
tests can count attempts beside the pings.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery, signals

import steadycron
from steadycron.integrations.celery import instrument

BROKER = os.environ.get("CELERY_TEST_BROKER", "memory://")
EVERY = 1.0


def _entry(task: str, *args: object, **options: object) -> dict[str, Any]:
    return {"task": task, "schedule": EVERY, "args": args, "options": options}


SCHEDULES: dict[str, dict[str, dict[str, Any]]] = {
    "": {},
    "outcomes": {
        "celery-succeeds": _entry("integrations.celery_app.note", "celery-succeeds"),
        "celery-fails": _entry("integrations.celery_app.explode"),
        "celery-flaky": _entry("integrations.celery_app.flaky", "celery-flaky"),
        "celery-doomed": _entry("integrations.celery_app.doomed"),
        "celery-soft-limit": _entry("integrations.celery_app.overrun"),
        "celery-undeclared": _entry("integrations.celery_app.note", "celery-undeclared"),
        "excluded-entry": _entry("integrations.celery_app.note", "excluded-entry"),
        "mapped-entry": _entry("integrations.celery_app.note", "mapped-entry"),
        "option-entry": _entry(
            "integrations.celery_app.note", "option-entry", steadycron_key="celery-from-option"
        ),
    },
    "redbeat": {"celery-redbeat-entry": _entry("integrations.celery_app.note", "redbeat")},
}

app = Celery("steadycron_tests", broker=BROKER)
app.conf.update(
    broker_connection_retry_on_startup=True,
    beat_schedule=SCHEDULES[os.environ.get("CELERY_TEST_SCHEDULE", "")],
    timezone="UTC",
    worker_prefetch_multiplier=1,
    redbeat_redis_url=BROKER,
)
steadycron.capture_errors = True
instrument(app, keys={"mapped-entry": "celery-mapped"}, exclude=["excluded-entry"])

if os.environ.get("DJANGO_SETTINGS_MODULE"):  # beat with django-celery-beat's scheduler
    import django

    django.setup()


def _task(**options: Any) -> Callable[[Callable[..., None]], Any]:
    """``app.task``, typed for mypy (Celery ships no type information)."""
    decorate: Callable[[Callable[..., None]], Any] = app.task(**options)
    return decorate


def _redis() -> redis.Redis:
    return redis.Redis.from_url(BROKER)


def _note(name: str, value: str) -> None:
    _redis().rpush(f"ran:{name}", value)


def _ready(sender: Any = None, **_: Any) -> None:
    folder = os.environ.get("CELERY_TEST_READY_DIR")
    if folder:
        (Path(folder) / sender.hostname).touch()


signals.worker_ready.connect(_ready, weak=False)


@_task(bind=True)
def note(self: Any, name: str) -> None:
    _note(name, self.request.hostname)


@_task()
def explode() -> None:
    raise OSError("disk full")


@_task(bind=True, max_retries=2, default_retry_delay=0.1)
def flaky(self: Any, name: str) -> None:
    """Fails its first two attempts, then succeeds."""
    _note(name, f"{self.request.id}:{self.request.retries}:{self.request.hostname}")
    if self.request.retries < 2:
        raise self.retry(exc=OSError("not yet"))


@_task(bind=True, max_retries=1, default_retry_delay=0.1)
def doomed(self: Any) -> None:
    """Fails every attempt: one retry, then it fails for good."""
    _note("celery-doomed", str(self.request.retries))
    raise self.retry(exc=OSError("still broken"))


@_task(soft_time_limit=0.5)
def overrun() -> None:
    time.sleep(5)


@_task(steadycron_key="celery-declared")
def sleeper(seconds: float) -> None:
    _note("celery-declared", "started")
    time.sleep(seconds)


@_task(steadycron_key="celery-hard-limit", time_limit=1)
def stuck() -> None:
    time.sleep(10)


@_task(steadycron_key="celery-redelivered", acks_late=True, reject_on_worker_lost=True)
def dies_once(flag: str) -> None:
    """Kills its own worker process on the first delivery; the message comes back."""
    if _redis().set(flag, "1", nx=True):
        os.kill(os.getpid(), signal.SIGKILL)
