"""Fitting text from elsewhere (server messages, error texts, users' keys) into our own
messages and logs: secrets blanked out, and cut to a length a log can hold."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

#: Shorter "secrets" are test placeholders; scrubbing them would mangle ordinary words.
MIN_SECRET_LENGTH = 6
#: Server text quoted in an error or a log is cut to this many characters.
MAX_QUOTED_CHARS = 300
#: A monitor key (or other name a user gave) quoted in a message is cut to this.
MAX_SHOWN_CHARS = 120
CUT = "..."


def redact(text: str, *secrets: str | None) -> str:
    """*text* with every occurrence of each secret (as is, or percent-encoded as in a
    URL) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
            quoted = urllib.parse.quote(secret, safe="")
            if quoted != secret:
                text = text.replace(quoted, "***")
    return text


def quote_text(text: str, secrets: Iterable[str | None], limit: int = MAX_QUOTED_CHARS) -> str:
    """Text fit to quote: scrubbed of *secrets*, then cut to *limit* characters.

    Scrubbing comes first so that a secret straddling the cut cannot survive half-blanked;
    a head of the text that can still hold the longest secret is all that is searched, so
    a megabyte of server text costs no more than a short one.
    """
    present = [secret for secret in secrets if secret]
    longest = max((len(urllib.parse.quote(s, safe="")) for s in present), default=0)
    text = redact(text[: limit + longest], *present)
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


def shown(name: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(name)``, cut to *limit* characters: a key a user gave, as messages quote it."""
    if len(name) > limit:
        return repr(name[:limit]) + CUT
    return repr(name)
