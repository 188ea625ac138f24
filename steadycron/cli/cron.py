"""Checking a job's ``schedule``: a 5-field cron expression, as SteadyCron reads it.

Each field is a comma-separated list of ``*``, a value, or a range ``a-b``, any of them
with a step (``*/15``, ``1-30/2``, ``5/10``). Months and days of the week may be named
(``jan``..``dec``, ``sun``..``sat``, any case); day of week 7 is Sunday, like 0. The
``@daily`` family is no 5-field expression, so it is refused with the fields it stands for.
"""

from __future__ import annotations

import attrs

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@attrs.frozen
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = attrs.Factory(dict)

    @property
    def span(self) -> str:
        return f"{self.low}-{self.high}"


FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    _Field("day of week", 0, 7, {name: number for number, name in enumerate(_DAYS)}),
)
FIELD_ORDER = "minute hour day-of-month month day-of-week"

#: What the ``@`` shorthands of crontab mean, to suggest in their place.
SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A schedule is no valid 5-field cron expression; the message says which part."""


def check_cron(expression: str) -> None:
    """Raise :class:`CronError` saying what is wrong with *expression*, if anything."""
    shorthand = SHORTHANDS.get(expression.strip().lower())
    if shorthand is not None:
        raise CronError(f"write {shorthand!r} instead of {expression.strip()!r}")
    fields = expression.split()
    if len(fields) != len(FIELDS):
        raise CronError(
            f"a cron expression has 5 fields ({FIELD_ORDER}, e.g. '15 3 * * *'), "
            f"this has {len(fields)}"
        )
    for field, text in zip(FIELDS, fields, strict=True):
        for item in text.split(","):
            _check_item(field, item)


def expand_cron(expression: str) -> tuple[frozenset[int], ...]:
    """The values each field of *expression* allows, day of week 7 read as 0 (Sunday), to
    compare schedules written differently (``*/15`` and ``0,15,30,45``).

    Raises:
        CronError: as :func:`check_cron`.
    """
    check_cron(expression)
    return tuple(
        _expand(field, text) for field, text in zip(FIELDS, expression.split(), strict=True)
    )


def _expand(field: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = field.low, field.high
        else:
            start, dash, end = base.partition("-")
            first = _value(field, start)
            last = _value(field, end) if dash else field.high if step else first
        values.update(range(first, last + 1, int(step or 1)))
    if field is FIELDS[-1]:
        values = {0 if value == 7 else value for value in values}
    return frozenset(values)


def _check_item(field: _Field, item: str) -> None:
    base, slash, step = item.partition("/")
    if not base:
        raise CronError(
            f"{field.name}: {item!r} has nothing before the '/'"
            if item
            else f"{field.name}: an empty entry (a stray ',')"
        )
    if slash:
        width = field.high - field.low + 1
        if not _is_number(step) or not 1 <= int(step) <= width:
            raise CronError(f"{field.name}: step {step!r} must be a whole number from 1 to {width}")
    if base == "*":
        return
    first, dash, last = base.partition("-")
    low = _value(field, first)
    if dash:
        high = _value(field, last)
        if low > high:
            raise CronError(f"{field.name}: range {base!r} runs backwards")


def _value(field: _Field, text: str) -> int:
    if _is_number(text):
        number = int(text)
        if not field.low <= number <= field.high:
            raise CronError(f"{field.name} {text} is out of range {field.span}")
        return number
    named = field.names.get(text.lower())
    if named is not None:
        return named
    expected = f"a number {field.span}"
    if field.names:
        expected += f" or a name ({', '.join(field.names)})"
    raise CronError(f"{field.name}: {text!r} is not {expected}")


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
