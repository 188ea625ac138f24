"""A Celery beat schedule said the way a monitor manifest says it, and compared with one.

A ``crontab`` becomes a 5-field cron line field by field, in the manifest's order (minute,
hour, day of month, month, day of week: day of week last, never in the day-of-month
place), with its time zone. Where Celery means something a cron line cannot say, the
difference is named: Celery runs only on days matching both day of month and day of week
when both are restricted (cron runs on either), and intervals and solar schedules have no
cron line at all. Imported only by ``steadycron check --celery``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta, timezone, tzinfo
from typing import Any

import attrs

from .cron import CronError, expand_cron
from .manifest import ManifestJob
from .manifest_rules import SECONDS

#: The fields of a cron line, in order: name, lowest and highest value.
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 6))  # fmt: skip
_CELERY_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
_UTC_NAMES = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "z", "zulu", "universal", "uct"})


@attrs.frozen
class Schedule:
    """How a beat entry's schedule reads for a monitor.

    ``cron`` (5 fields) and ``fields`` (the values each field allows) for a crontab,
    ``interval`` (seconds) for a fixed interval, neither for anything else; ``notes``
    say where a monitor cannot expect what Celery does.
    """

    text: str
    timezone: str | None = None
    cron: str | None = None
    fields: tuple[frozenset[int], ...] | None = None
    interval: float | None = None
    notes: tuple[str, ...] = ()


def describe(schedule: Any, app: Any) -> Schedule:
    """Describe the ``celery.schedules`` object *schedule* of an entry of *app*."""
    from celery.schedules import crontab, solar
    from celery.schedules import schedule as interval

    if isinstance(schedule, crontab):
        return _describe_crontab(schedule, app)
    if isinstance(schedule, solar):
        text = f"solar: {schedule.event} at ({schedule.lat}, {schedule.lon})"
        note = "the time of a solar event moves every day; a cron line cannot express it"
        return Schedule(text, notes=(note,))
    if isinstance(schedule, interval):
        seconds = schedule.run_every.total_seconds()
        text = f"every {_number(seconds)} s"
        low, high = SECONDS["interval"]
        if seconds == int(seconds) and low <= seconds <= high:
            note = f"{text} is no cron line; declare it as 'interval: {_number(seconds)}'"
        else:
            note = f"{text} is no cron line, nor a monitor's interval ({low} to {high} whole s)"
        return Schedule(text, interval=seconds, notes=(note,))
    return Schedule(f"{type(schedule).__name__} (check cannot read this kind of schedule)")


def _describe_crontab(schedule: Any, app: Any) -> Schedule:
    fields = tuple(frozenset(getattr(schedule, name)) for name in _CELERY_FIELDS)
    cron = " ".join(
        _field_text(values, low, high)
        for values, (_, low, high) in zip(fields, FIELDS, strict=True)
    )
    zone = _zone(schedule, app)
    notes: tuple[str, ...] = ()
    if _restricted(fields, 2) and _restricted(fields, 4):
        notes = (
            f"Celery runs '{cron}' only on days matching both the day of month and the day "
            "of week; a cron line runs on days matching either, so the monitor expects runs "
            "Celery never makes",
        )
    return Schedule(f"{cron} ({zone})", zone, cron, fields, notes=notes)


def compare(described: Schedule, job: ManifestJob) -> list[str]:
    """What differs between a beat entry's schedule and its manifest job's; empty when
    they agree, or when the manifest gives nothing to compare with."""
    if job.schedule is None and job.interval is None:
        return []
    if described.interval is not None:
        if job.interval is None:
            return [f"Celery runs it {described.text}; the manifest says '{job.schedule}'"]
        if _seconds(job.interval) != described.interval:
            return [f"Celery runs it {described.text}; the manifest says every {job.interval} s"]
        return []
    if described.fields is None or described.cron is None:
        return []
    if job.schedule is None:
        return [f"Celery runs it at '{described.cron}'; the manifest says every {job.interval} s"]
    try:
        declared = expand_cron(str(job.schedule))
    except CronError as exc:
        return [f"the manifest's schedule {job.schedule!r} cannot be read: {exc}"]
    differences = []
    fields = [
        f"{name} {_field_text(mine, low, high)} vs {_field_text(theirs, low, high)}"
        for mine, theirs, (name, low, high) in zip(described.fields, declared, FIELDS, strict=True)
        if mine != theirs
    ]
    if fields:
        differences.append(
            f"Celery runs it at '{described.cron}', the manifest says '{job.schedule}' "
            f"({'; '.join(fields)})"
        )
    zone = "UTC" if job.timezone is None else str(job.timezone)
    if described.timezone is not None and not _same_zone(described.timezone, zone):
        differences.append(f"time zone: Celery uses {described.timezone}, the manifest {zone}")
    return differences


def _field_text(values: frozenset[int], low: int, high: int) -> str:
    """One cron field for *values*: ``*``, ``*/n``, ``a-b/n`` or a list of ranges."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) > 2:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], ordered[-1] + 1, step)):
            if ordered[0] == low and ordered[-1] + step > high:
                return f"*/{step}"
            return f"{ordered[0]}-{ordered[-1]}/{step}"
    return ",".join(_ranges(ordered))


def _ranges(ordered: Sequence[int]) -> list[str]:
    parts: list[str] = []
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return parts


def _restricted(fields: tuple[frozenset[int], ...], index: int) -> bool:
    _, low, high = FIELDS[index]
    return fields[index] != frozenset(range(low, high + 1))


def _zone(schedule: Any, app: Any) -> str:
    """The schedule's own time zone (django-celery-beat's crontabs have one), else the app's."""
    own = vars(schedule).get("tz")
    if isinstance(own, tzinfo):
        return _zone_name(own)
    configured = app.conf.timezone
    if configured:
        return str(configured)
    return "UTC" if app.conf.enable_utc else "the local time of the beat host"


def _zone_name(zone: tzinfo) -> str:
    for attribute in ("key", "zone"):  # zoneinfo, pytz
        name = getattr(zone, attribute, None)
        if isinstance(name, str):
            return name
    return "UTC" if zone == timezone.utc else str(zone)


def _same_zone(first: str, second: str) -> bool:
    return first == second or {first.lower(), second.lower()} <= _UTC_NAMES


def _seconds(value: object) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
