"""What each field of a monitor manifest may hold, and what is wrong with one that does not.

The official tool ignores properties it does not know, so a misspelt ``shedule:`` would
quietly leave a job without a schedule: unknown fields are warnings with the closest known
name. Values SteadyCron would refuse, and required fields left out, are errors. Every
problem carries the line of the field it is about (the job's line when the field is absent).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from .cron import CronError, check_cron

if TYPE_CHECKING:
    import yaml

MANIFEST_VERSION = 2
KINDS = ("http", "heartbeat", "agent")
DEFAULT_KIND = "http"
#: Kinds that are pinged, so SteadyCron must know when to expect them.
PINGED_KINDS = ("heartbeat",)

TOP_LEVEL_FIELDS = ("version", "namespace", "channels", "tags", "variables", "jobs")
JOB_FIELDS = (
    "id",
    "name",
    "kind",
    "schedule",
    "interval",
    "timezone",
    "grace",
    "stuck_run_detection",
    "max_run_duration_seconds",
    "paused",
    "description",
    "tags",
    "rules",
    "url",
)
#: Whole seconds: field -> (lowest, highest) allowed.
SECONDS = {
    "interval": (10, 86400),
    "grace": (0, 86400),
    "max_run_duration_seconds": (60, 86400),
}
FLAGS = ("stuck_run_detection", "paused")
TEXTS = ("description", "url")


@attrs.frozen
class Problem:
    """One thing wrong with a manifest: an ``"error"`` makes it unusable, a ``"warning"`` not."""

    severity: str
    message: str
    path: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None or self.path is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


@attrs.define
class Problems:
    """The problems found in one file, in the order found."""

    path: str
    found: list[Problem] = attrs.Factory(list)

    def error(self, message: str, line: int | None) -> None:
        self.found.append(Problem("error", message, self.path, line))

    def warning(self, message: str, line: int | None) -> None:
        self.found.append(Problem("warning", message, self.path, line))


def value_node(mapping: yaml.Node | None, key: str) -> yaml.Node | None:
    """Find the node under *key* of a mapping node (the last one wins, as in the values)."""
    found = None
    for key_node, node in getattr(mapping, "value", None) or []:
        if getattr(key_node, "value", None) == key:
            found = node
    return found


def key_lines(mapping: yaml.Node | None) -> dict[str, int]:
    """The line of each key of a mapping node."""
    return {
        str(key_node.value): line_of(key_node) or 0
        for key_node, _ in getattr(mapping, "value", None) or []
        if isinstance(getattr(key_node, "value", None), str)
    }


def line_of(node: yaml.Node | None) -> int | None:
    return None if node is None else int(node.start_mark.line) + 1


def check_top_level(
    document: Mapping[object, object], node: yaml.Node | None, problems: Problems
) -> None:
    """The manifest's version, and the top-level fields it does not know."""
    lines = key_lines(node)
    version = document.get("version")
    if "version" not in document:
        problems.error(
            f"missing 'version' (write 'version: {MANIFEST_VERSION}' at the top)", line_of(node)
        )
    elif version != MANIFEST_VERSION or isinstance(version, bool):
        problems.error(
            f"'version' must be {MANIFEST_VERSION}, not {version!r}", lines.get("version")
        )
    _warn_unknown(document, TOP_LEVEL_FIELDS, "at the top level", lines, problems)


def check_job(
    entry: Mapping[object, object], label: str, node: yaml.Node | None, problems: Problems
) -> None:
    """Everything about one job but its name, id and kind (the reader checks those)."""
    lines = key_lines(node)
    job_line = line_of(node)

    def line(field: str) -> int | None:
        return lines.get(field, job_line)

    kind = entry.get("kind") or DEFAULT_KIND
    has_schedule, has_interval = "schedule" in entry, "interval" in entry
    if kind in PINGED_KINDS and not (has_schedule or has_interval):
        problems.error(
            f"{label}: a {kind} job needs a 'schedule' (cron) or an 'interval' (seconds)",
            job_line,
        )
    if has_schedule and has_interval:
        problems.error(f"{label}: give either 'schedule' or 'interval', not both", job_line)

    schedule = entry.get("schedule")
    if has_schedule:
        problem = _schedule_problem(schedule)
        if problem is not None:
            problems.error(f"{label}: schedule {schedule!r}: {problem}", line("schedule"))
    for field, (low, high) in SECONDS.items():
        value = entry.get(field)
        if field in entry and not _whole_number_within(value, low, high):
            problems.error(
                f"{label}: {field!r} must be a whole number of seconds from {low} to {high}, "
                f"not {value!r}",
                line(field),
            )
    timezone = entry.get("timezone")
    if "timezone" in entry and not _known_timezone(timezone):
        problems.error(
            f"{label}: 'timezone' must name an IANA time zone such as 'Europe/Berlin', "
            f"not {timezone!r}",
            line("timezone"),
        )
    for field in FLAGS:
        if field in entry and not isinstance(entry[field], bool):
            problems.error(
                f"{label}: {field!r} must be true or false, not {entry[field]!r}", line(field)
            )
    for field in TEXTS:
        if field in entry and not isinstance(entry[field], str):
            problems.error(
                f"{label}: {field!r} must be a string, not {entry[field]!r}", line(field)
            )
    _warn_unknown(entry, JOB_FIELDS, f"in {label}", lines, problems)


def _schedule_problem(schedule: object) -> str | None:
    if not isinstance(schedule, str):
        return "must be a cron expression in quotes, such as '15 3 * * *'"
    try:
        check_cron(schedule)
    except CronError as exc:
        return str(exc)
    return None


def _whole_number_within(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _known_timezone(name: object) -> bool:
    """Whether *name* is a time zone; any non-empty name passes where no zone data exists."""
    import zoneinfo

    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return not _have_zone_data()
    return True


def _have_zone_data() -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo("America/Chicago")
    except zoneinfo.ZoneInfoNotFoundError:
        return False
    return True


def _warn_unknown(
    mapping: Mapping[object, object],
    known: tuple[str, ...],
    where: str,
    lines: Mapping[str, int],
    problems: Problems,
) -> None:
    for field in mapping:
        if field in known:
            continue
        message = f"unknown field {field!r} {where} is ignored"
        close = difflib.get_close_matches(str(field), known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
        problems.warning(message, lines.get(str(field)))
