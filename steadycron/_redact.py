"""Scrubbing secrets out of text that came from elsewhere (server messages, error texts)."""

from __future__ import annotations

#: Shorter "secrets" are test placeholders; scrubbing them would mangle ordinary words.
MIN_SECRET_LENGTH = 6


def redact(text: str, *secrets: str | None) -> str:
    """*text* with every occurrence of each secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text
