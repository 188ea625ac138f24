"""The dev server's timeline: each ping as a readable line, or as one JSON object."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import IO

from steadycron._message import clip_head
from steadycron._report import Report

from .records import ReceivedPing

UTC = timezone.utc


_COLORS = {"start": "36", "success": "32", "fail": "31", "dim": "2"}
#: A one-line message up to this long is shown on the ping line, in quotes.
MESSAGE_WIDTH = 100
#: Longer messages go under the ping line, indented past its time column.
MESSAGE_INDENT = " " * 14


def format_duration(seconds: float) -> str:
    """Format a run's duration for a human: 85ms, 4.2s, 3m05s, 1h02m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_cost(dollars: float) -> str:
    """A cost as plain decimal dollars, however small: $0.0042, $12.5, $0.0000001."""
    from decimal import Decimal

    return f"${Decimal(repr(dollars)).normalize():f}"


#: The report fields a timeline line shows, in order (the summary goes where a message would).
_REPORT_PARTS = ("items", "output_chars", "steps", "tool_calls", "tokens_in", "tokens_out")


def format_report(report: Report) -> list[str]:
    """The timeline's words for a run report: counts, cost and model (not the summary)."""
    parts = [
        f"{name}={value}" for name in _REPORT_PARTS if (value := getattr(report, name)) is not None
    ]
    if report.cost_usd is not None:
        parts.append(f"cost={format_cost(report.cost_usd)}")
    if report.model:
        parts.append(f"model={report.model}")
    return parts


def format_ping(ping: ReceivedPing, *, key_width: int = 0, color: bool = False) -> str:
    """One timeline entry: local time, key, state, environment, run, duration, what an
    agent run reported, and the message (an agent run's summary).

    A short one-line message ends the line, in quotes; any other message follows in full
    on the lines below it, indented.
    """

    def paint(text: str, style: str) -> str:
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if color else text

    parts = [
        paint(ping.at.astimezone().strftime("%H:%M:%S.%f")[:-3], "dim"),
        ping.key.ljust(key_width),
        paint(ping.state.ljust(7), ping.state) if ping.state in _COLORS else ping.state,
    ]
    if ping.environment:
        parts.append(f"env={ping.environment}")
    if ping.run_id:
        parts.append(f"run={ping.run_id[:8]}")
    if ping.duration is not None:
        parts.append(f"took {format_duration(ping.duration)}")
    message = ping.message
    if ping.report is not None:
        parts += format_report(ping.report)
        message = message or ping.report.summary
    message = (message or "").lstrip("\r\n").rstrip()
    if message and "\n" not in message and "\r" not in message and len(message) <= MESSAGE_WIDTH:
        parts.append(f'"{message.strip()}"')
        message = ""
    line = "  ".join(parts).rstrip()
    return line + "".join(
        "\n" + (MESSAGE_INDENT + text).rstrip() for text in _message_lines(message)
    )


def _message_lines(message: str) -> list[str]:
    """A message too long or too many lines for the ping line, as the lines shown under it.

    Shown whole up to the 1024 bytes a ping may carry: the captured output of a failed
    ``steadycron run --capture`` is what explains the failure.
    """
    return clip_head(message).splitlines() if message else []


class Timeline:
    """Prints pings as they arrive: readable lines, or one JSON object per ping."""

    def __init__(
        self,
        stream: IO[str],
        *,
        as_json: bool = False,
        color: bool = False,
        key_width: int = 0,
        notes: IO[str] | None = None,
    ) -> None:
        self._stream = stream
        self._notes = stream if notes is None else notes
        self._as_json = as_json
        self._color = color
        self._key_width = key_width
        self._lock = threading.Lock()

    def ping(self, ping: ReceivedPing) -> None:
        if self._as_json:
            line = json.dumps(ping.to_json())
        else:
            line = format_ping(ping, key_width=self._key_width, color=self._color)
        self._write(self._stream, line)

    def note(self, text: str) -> None:
        time = datetime.now(UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]
        line = f"{time}  {text}"
        if self._color:
            line = f"\x1b[{_COLORS['dim']}m{line}\x1b[0m"
        self._write(self._notes, line)

    def _write(self, stream: IO[str], line: str) -> None:
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed pipe must not cost the job its answer
