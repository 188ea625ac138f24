"""Fitting a ping message into the 1024-byte body the server accepts.

Exception messages keep their head (the type and first words say what broke); captured
command output keeps its tail (the end of a log explains a failure). A cut message carries
``...`` on the side that was cut, and never splits a UTF-8 sequence.
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 1024
MARKER = "..."
_ROOM = MAX_MESSAGE_BYTES - len(MARKER)


def _utf8(text: str) -> bytes:
    # Lone surrogates cannot be sent as UTF-8; they become "?" rather than an error.
    return text.encode("utf-8", "replace")


def clip_head(text: str) -> str:
    """Return *text* if it fits, else its longest head that fits followed by ``...``."""
    data = _utf8(text)
    if len(data) <= MAX_MESSAGE_BYTES:
        return data.decode("utf-8")
    return data[:_ROOM].decode("utf-8", "ignore") + MARKER


def clip_tail(text: str) -> str:
    """Return *text* if it fits, else ``...`` followed by its longest tail that fits."""
    data = _utf8(text)
    if len(data) <= MAX_MESSAGE_BYTES:
        return data.decode("utf-8")
    return MARKER + data[-_ROOM:].decode("utf-8", "ignore")
