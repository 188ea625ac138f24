"""What the dev server hands out and keeps: stable tokens and job ids per key, and each
ping as it was received."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

import attrs

from steadycron._report import Report

TOKEN_LENGTH = 22


def dev_token(key: str) -> str:
    """Return the ping token the dev server gives *key*: URL-safe and the same every run."""
    digest = hashlib.sha256(f"steadycron-dev-token\0{key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:TOKEN_LENGTH]


def dev_job_id(key: str) -> str:
    """Return the job id the dev server reports for *key*, stable like the token."""
    return "job_" + hashlib.sha256(f"steadycron-dev-job\0{key}".encode()).hexdigest()[:16]


@attrs.frozen
class ReceivedPing:
    """One ping as the dev server received it.

    ``duration`` is the time in seconds since the start ping of the same run, on an
    outcome ping whose start was seen; otherwise ``None``. ``report`` is the run report
    an agent monitor's outcome ping carried, if any.
    """

    key: str
    state: str
    environment: str | None
    run_id: str | None
    message: str | None
    at: datetime
    duration: float | None = None
    report: Report | None = None

    def to_json(self) -> dict[str, Any]:
        """The ping as plain JSON values, as ``--json`` and ``/api/dev/pings`` show it."""
        return {
            "time": self.at.isoformat(timespec="milliseconds"),
            "key": self.key,
            "state": self.state,
            "environment": self.environment,
            "run_id": self.run_id,
            "message": self.message,
            "duration": self.duration,
            "report": None if self.report is None else report_json(self.report),
        }


def report_json(report: Report) -> dict[str, Any]:
    """The fields a report gave (snake_case names), as ``--json`` shows them."""
    return {name: value for name, value in attrs.asdict(report).items() if value is not None}
