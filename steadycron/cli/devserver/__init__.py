"""``steadycron dev-server``: a local stand-in for SteadyCron (``server``), the timeline it
prints (``timeline``), and its command line (``command``)."""

from __future__ import annotations

from .command import add_arguments, main
from .records import ReceivedPing, dev_job_id, dev_token
from .server import DevServer
from .timeline import Timeline, format_duration, format_ping

__all__ = [
    "DevServer",
    "ReceivedPing",
    "Timeline",
    "add_arguments",
    "dev_job_id",
    "dev_token",
    "format_duration",
    "format_ping",
    "main",
]
