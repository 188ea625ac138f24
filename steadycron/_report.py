"""Run reports of agent monitors: what a run produced and what it cost (API.md §9).

A run's report is written by the job's own code, possibly from several of its threads:
counts and cost add up across calls, text fields replace. Every value is checked where it
is given, so a wrong type fails at the line that passed it rather than at the outcome
ping, and nothing that could not travel is ever kept.

Cost adds up as :class:`~decimal.Decimal` (``0.1 + 0.2`` stays ``0.3``) and leaves as a
JSON number; the :class:`Report` value shows it as a float.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from ._message import clip_head
from ._protocol import REPORT_FIELDS_BY_WIRE_NAME, REPORT_WIRE_NAMES
from ._redact import redact

log = logging.getLogger("steadycron")

COUNT_FIELDS = frozenset(
    {"items", "output_chars", "steps", "tool_calls", "tokens_in", "tokens_out"}
)
TEXT_FIELDS = frozenset({"model", "trace_url", "summary"})
COST_FIELD = "cost_usd"
#: Every field, in the order of the contract (the JSON body keeps it).
FIELDS = tuple(REPORT_WIRE_NAMES)

#: Checked report values: counts as int, cost as Decimal, text as str; unset fields absent.
Values = dict[str, Any]


@attrs.frozen(kw_only=True)
class Report:
    """A run report as SteadyCron receives it; None where nothing was reported.

    The test kit's recorded runs expose one as ``run.report``.
    """

    items: int | None = None
    output_chars: int | None = None
    steps: int | None = None
    tool_calls: int | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    trace_url: str | None = None
    summary: str | None = None


def report_of(values: Mapping[str, Any]) -> Report:
    """The :class:`Report` that checked *values* (or values read off the wire) make."""
    cost = values.get(COST_FIELD)
    known = {name: value for name, value in values.items() if name in REPORT_WIRE_NAMES}
    return Report(**{**known, COST_FIELD: None if cost is None else float(cost)})


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(
            f"report field {name} must be a non-negative int, not {type(value).__name__} "
            f"({_short(value)})"
        )
    number = operator.index(value)  # type: ignore[arg-type]
    if number < 0:
        raise ValueError(f"report field {name} must be >= 0, not {number}")
    return int(number)


def _cost(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(
            f"report field cost_usd must be a number of US dollars (float or Decimal), "
            f"not {type(value).__name__} ({_short(value)})"
        )
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    if not finite:
        raise ValueError(f"report field cost_usd must be a finite number, not {value!r}")
    # repr() is the shortest text that reads back as the same float: 0.0042 stays 0.0042.
    cost = value if isinstance(value, Decimal) else Decimal(repr(value))
    if cost < 0:
        raise ValueError(f"report field cost_usd must be >= 0, not {value!r}")
    return cost if cost else Decimal(0)  # -0.0 is no cost either


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"report field {name} must be a str, not {type(value).__name__}")
    return value


def _unknown_field(name: object) -> TypeError:
    import difflib

    hint = REPORT_FIELDS_BY_WIRE_NAME.get(name) if isinstance(name, str) else None
    if hint is None and isinstance(name, str):
        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = close[0] if close else None
    suggestion = f"; did you mean {hint!r}?" if hint else ""
    return TypeError(
        f"unknown report field {name!r}{suggestion} (the fields are {', '.join(FIELDS)})"
    )


def check_report(fields: Mapping[str, object]) -> Values:
    """Check report fields given by a caller; None means "not given" and is left out.

    Raises:
        TypeError: an unknown field name or a value of the wrong type.
        ValueError: a negative count or cost, or a cost that is not finite.
    """
    if not isinstance(fields, Mapping):
        raise TypeError(
            f"a report must be a mapping of field -> value, not {type(fields).__name__}"
        )
    checked: Values = {}
    for name, value in fields.items():
        if name not in REPORT_WIRE_NAMES:
            raise _unknown_field(name)
        if value is None:
            continue
        if name in COUNT_FIELDS:
            checked[name] = _count(name, value)
        elif name == COST_FIELD:
            checked[name] = _cost(value)
        else:
            checked[name] = _text(name, value)
    return checked


def merge(values: Values, more: Mapping[str, Any]) -> None:
    """Fold checked *more* into *values*: counts and cost add up, text replaces."""
    for name, value in more.items():
        if name in TEXT_FIELDS or name not in values:
            values[name] = value
        else:
            values[name] += value


def outcome_values(
    values: Mapping[str, Any], *, summary: str | None = None, secrets: Iterable[str | None] = ()
) -> Values:
    """What an outcome ping carries: *summary* (an error text, a ping's message) in place
    of the reported one, every text scrubbed of *secrets* and cut to 1024 bytes."""
    carried = dict(values)
    if summary:
        carried["summary"] = summary
    hidden = tuple(secrets)
    for name in TEXT_FIELDS & carried.keys():
        carried[name] = clip_head(redact(carried[name], *hidden))
    return carried


class _Guard:
    """The one lock every run's report is written under.

    Writes are rare and brief, while a lock of its own would cost every run, reporting or
    not, the making of it. A forked child gets a fresh one (a thread of the parent may
    have held it).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.watched = False

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()


_guard = _Guard()


def _lock() -> threading.Lock:
    if not _guard.watched:
        from ._forksafe import reset_after_fork

        reset_after_fork(_guard)
        _guard.watched = True
    return _guard.lock


def add_report(values: Values, fields: Mapping[str, object]) -> None:
    """Check *fields* (raising at once when wrong), then fold them into a run's *values*."""
    checked = check_report(fields)
    with _lock():
        merge(values, checked)


def add_usage(values: Values, response: object) -> None:
    """Fold the token counts of *response*'s usage block into a run's *values*, and its
    model name when none was reported yet; what cannot be read is left out."""
    counts, model = read_usage(response)
    with _lock():
        merge(values, counts)
        if model is not None and "model" not in values:
            values["model"] = model


def snapshot(values: Values) -> Values | None:
    """A copy of a run's *values* for its outcome ping; None when nothing was reported
    (most runs)."""
    if not values:
        return None
    with _lock():
        return dict(values)


class Reporting:
    """What a run offers its job: the report its outcome ping carries to an ``agent``
    monitor. Safe to call from any thread or task of the run."""

    __slots__ = ()
    _report: Values

    def report(
        self,
        *,
        items: int | None = None,
        output_chars: int | None = None,
        steps: int | None = None,
        tool_calls: int | None = None,
        model: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        cost_usd: float | Decimal | None = None,
        trace_url: str | None = None,
        summary: str | None = None,
    ) -> None:
        """Add to the run's report: counts and cost add up across calls, text replaces.

        Counts are non-negative ints, ``cost_usd`` a non-negative number of dollars
        (float or Decimal), the rest str; None leaves a field as it is.

        Raises:
            TypeError, ValueError: a value of the wrong type, negative, or not finite.
        """
        add_report(
            self._report,
            {
                "items": items,
                "output_chars": output_chars,
                "steps": steps,
                "tool_calls": tool_calls,
                "model": model,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "cost_usd": cost_usd,
                "trace_url": trace_url,
                "summary": summary,
            },
        )

    def record_usage(self, response: object) -> None:
        """Add the token counts of a model response to the report (and its model name,
        when none was reported yet).

        Reads ``response.usage`` or ``response["usage"]``: OpenAI's ``prompt_tokens`` /
        ``completion_tokens`` or ``input_tokens`` / ``output_tokens``, Anthropic's
        ``input_tokens`` / ``output_tokens`` (its prompt-cache reads and writes count as
        tokens in). No vendor library is needed; what cannot be read is skipped (DEBUG
        log), never raised.
        """
        add_usage(self._report, response)


# -- usage blocks of model responses ----------------------------------------------------

#: Where each count may be found: OpenAI's two APIs and Anthropic's. The first readable
#: name wins, so a block that has both spellings is not counted twice.
_USAGE_NAMES = {
    "tokens_in": ("input_tokens", "prompt_tokens"),
    "tokens_out": ("output_tokens", "completion_tokens"),
}
#: Anthropic counts prompt-cache reads and writes apart from ``input_tokens``; OpenAI's
#: ``prompt_tokens`` already includes cached tokens. Both are tokens the model read.
_CACHED_INPUT_NAMES = ("cache_creation_input_tokens", "cache_read_input_tokens")


def _member(obj: object, name: str) -> object:
    """``obj[name]`` for a mapping, else ``obj.name``; None when it cannot be read."""
    try:
        if isinstance(obj, Mapping):
            return obj.get(name)
        value = getattr(obj, name, None)
        if value is None and hasattr(type(obj), "__getitem__") and not isinstance(obj, str):
            value = obj[name]  # type: ignore[index]
        return value
    except Exception:  # a property or lookup that raises is just something we cannot read
        return None


def _readable_count(value: object) -> int | None:
    try:
        return _count("", value)
    except (TypeError, ValueError):
        return None


def read_usage(response: object) -> tuple[Values, str | None]:
    """The token counts of *response*'s usage block, and the model name it gives.

    The block is ``response.usage`` or ``response["usage"]`` (or *response* itself when
    it is a usage block): OpenAI's ``prompt_tokens``/``completion_tokens`` or
    ``input_tokens``/``output_tokens``, Anthropic's ``input_tokens``/``output_tokens``
    plus its cache counts. Read by duck typing: no vendor library is imported. What is
    missing or not a count is left out and logged at DEBUG; nothing here raises.
    """
    usage = _member(response, "usage")
    if usage is None and any(
        _member(response, name) is not None for names in _USAGE_NAMES.values() for name in names
    ):
        usage = response
    model = _member(response, "model")
    model = model if isinstance(model, str) and model else None
    if usage is None:
        log.debug("record_usage: %s has no usage block; nothing recorded", type(response).__name__)
        return {}, model
    counts: Values = {}
    for field, names in _USAGE_NAMES.items():
        for name in names:
            count = _readable_count(_member(usage, name))
            if count is not None:
                counts[field] = count
                break
        else:
            log.debug("record_usage: no readable %s in %s", field, type(usage).__name__)
    if "tokens_in" in counts:
        for name in _CACHED_INPUT_NAMES:
            counts["tokens_in"] += _readable_count(_member(usage, name)) or 0
    return counts, model
