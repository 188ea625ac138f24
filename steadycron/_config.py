"""Settings: the validated ``Config`` record and the one place that reads the environment.

A value that could never be sent is refused where it is given (API.md §1), with a message
that names the setting (or the ``STEADYCRON_*`` variable it came from) and says what to
fix: an API key that cannot travel in a header, a URL with credentials, a query, a
fragment or an impossible port, a ``ping_timeout`` beyond an hour. Messages never repeat
an API key, and show a URL only with its credentials blanked out.
"""

from __future__ import annotations

import math
import os
import re
import types
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._redact import shown

DEFAULT_API_URL = "https://api.steadycron.com"
DEFAULT_PING_URL = "https://ping.steadycron.com"
DEFAULT_PING_TIMEOUT = 5.0
DEFAULT_RESOLVE_CACHE_TTL = 3600.0
#: A ping that may take longer than an hour is a mistake (1e10 s overflows the clocks).
MAX_PING_TIMEOUT = 3600.0
#: ``token_cache`` value that keeps resolved tokens in memory only.
TOKEN_CACHE_OFF = "off"  # noqa: S105 -- a setting value, not a password

#: Settings with an environment fallback, and the variable that supplies it.
ENV_VARS = {
    "api_key": "STEADYCRON_API_KEY",
    "api_url": "STEADYCRON_API_URL",
    "ping_url": "STEADYCRON_PING_URL",
    "environment": "STEADYCRON_ENVIRONMENT",
    "token_cache": "STEADYCRON_TOKEN_CACHE",
}

#: What a good value looks like, for the messages that refuse a bad one.
EXAMPLES = {
    "api_key": "sc_ro_...",
    "api_url": DEFAULT_API_URL,
    "ping_url": DEFAULT_PING_URL,
    "environment": "production",
    "token_cache": "/var/cache/steadycron",
}


def is_sendable(text: str) -> bool:
    """Whether *text* can travel as UTF-8 (a lone surrogate cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_sendable(name: str, text: str) -> str:
    """Refuse text that cannot be put on the wire, naming the setting it was meant for."""
    if not is_sendable(text):
        raise ValueError(f"{name} contains a lone surrogate, which cannot be sent: {shown(text)}")
    return text


def optional_text(name: str, value: object) -> str | None:
    """A str setting or argument where None and "" both mean "not set"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
    return check_sendable(name, value)


def _unsendable_in_header(text: str) -> str | None:
    """What makes *text* unfit for an HTTP header value, in words, or None if it fits."""
    if text.isascii() and text.isprintable() and " " not in text:
        return None  # the common case, decided without a loop
    if not is_sendable(text):
        return "a lone surrogate, which cannot be sent"
    for position, char in enumerate(text):
        if ord(char) > 0xFF:
            what = "a character outside latin-1, which an HTTP header cannot carry"
        elif char.isspace():
            what = "a newline" if char in "\r\n" else "whitespace"
        elif not char.isprintable():
            what = "a control character"
        else:
            continue
        return f"{what} (at position {position} of {len(text)})"
    return None


def _api_key(value: object, label: str = "api_key") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{label} must be a str or None, not {type(value).__name__}")
    problem = _unsendable_in_header(value)
    if problem is not None:
        # The key itself is never shown: only where it goes wrong.
        raise ValueError(
            f"{label} contains {problem}; an API key is one word of printable latin-1 "
            f"characters like {EXAMPLES['api_key']!r} (a key read from a file or a "
            "secret store often ends in a newline: strip it)"
        )
    return value


#: Everything between "//" and the last "@": a password may hold "/", "?" or "#" too.
_CREDENTIALS = re.compile(r"(//).*@")


def _displayed_url(text: str) -> str:
    """*text* fit for a message: credentials blanked out, cut to a sane length."""
    return shown(_CREDENTIALS.sub(r"\1***@", text))


def _url(value: object, label: str, example: str) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{label} must be an http(s) URL str like {example!r}, not {type(value).__name__}"
        )
    like = f"like {example!r}; got {_displayed_url(value)}"
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError(f"{label} must not contain whitespace or control characters, {like}")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:  # a port that is no number below 65536, or a broken [IPv6] host
        raise ValueError(
            f"{label} must have a valid host and port (a number from 1 to 65535), {like}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{label} must be an http:// or https:// URL with a host, {like}")
    if "@" in parts.netloc:
        raise ValueError(
            f"{label} must not carry credentials (user:password@): SteadyCron needs only "
            f"the API key, set on its own, {like}"
        )
    if port == 0:
        raise ValueError(f"{label} must have a port from 1 to 65535, {like}")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(f"{label} must not carry a query or fragment (? or #), {like}")
    return check_sendable(label, value).rstrip("/")


def _number(value: object, label: str, *, allow_zero: bool, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{label} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    bad = math.isnan(number) or number < 0 or (number == 0 and not allow_zero)
    if bad or (not allow_zero and math.isinf(number)):
        need = "a number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{label} must be {need} (seconds); got {value!r}")
    if number > maximum:
        raise ValueError(f"{label} must be at most {maximum:g} seconds; got {value!r}")
    return number


def _monitors(value: object, label: str = "monitors") -> Mapping[str, str]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{label} must be a mapping of key -> ping token, not {type(value).__name__}"
        )
    for key, token in value.items():
        check_key(key)
        if not isinstance(token, str) or not token:
            raise TypeError(
                f"{label}[{shown(key)}] must be a non-empty str ping token, "
                f"not {type(token).__name__}"
            )
        check_sendable(f"{label}[{shown(key)}]", token)
    return types.MappingProxyType(dict(value))


def check_key(key: object) -> str:
    """Refuse anything but a non-empty str as a monitor key."""
    if not isinstance(key, str):
        raise TypeError(f"a monitor key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("a monitor key must not be empty")
    return check_sendable("a monitor key", key)


def _bool(value: object, label: str = "capture_errors") -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{label} must be True or False, not {value!r}")
    return value


def _redacted_monitors(monitors: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key!r}: '***'" for key in monitors) + "}"


def _api_url(value: object, label: str = "api_url") -> str:
    return _url(value, label, EXAMPLES["api_url"])


def _ping_url(value: object, label: str = "ping_url") -> str:
    return _url(value, label, EXAMPLES["ping_url"])


def _environment(value: object, label: str = "environment") -> str | None:
    return optional_text(label, value)


def _ping_timeout(value: object, label: str = "ping_timeout") -> float:
    return _number(value, label, allow_zero=False, maximum=MAX_PING_TIMEOUT)


def _resolve_cache_ttl(value: object, label: str = "resolve_cache_ttl") -> float:
    return _number(value, label, allow_zero=True)


def default_token_cache() -> str:
    """The user's cache folder for tokens: ``$XDG_CACHE_HOME/steadycron``, else
    ``~/.cache/steadycron`` (left unexpanded when there is no home to expand it to)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # the XDG spec says to ignore a relative one
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "steadycron")


def _token_cache(value: object, label: str = "token_cache") -> str:
    if value is None or value == "":
        return default_token_cache()
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{label} must be a folder path (str or os.PathLike) or 'off', "
            f"not {type(value).__name__}"
        )
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{label} must be a str path, not bytes")
    if path.lower() == TOKEN_CACHE_OFF:
        return TOKEN_CACHE_OFF
    if "\0" in path:
        raise ValueError(
            f"{label} must not contain a NUL character, like "
            f"{EXAMPLES['token_cache']!r} or 'off'; got {shown(path)}"
        )
    return path


#: Each setting's check, given the value and the name to blame (the setting by default,
#: or the environment variable the value was read from).
CHECKS: dict[str, Callable[[object, str], Any]] = {
    "api_key": _api_key,
    "api_url": _api_url,
    "ping_url": _ping_url,
    "environment": _environment,
    "capture_errors": _bool,
    "ping_timeout": _ping_timeout,
    "resolve_cache_ttl": _resolve_cache_ttl,
    "monitors": _monitors,
    "token_cache": _token_cache,
}


@attrs.frozen(kw_only=True, repr=False)
class Config:
    """Everything a client needs to know, validated once when built.

    Build variants with ``attrs.evolve(config, environment="staging")``. A ``Config``
    never reads the environment unless built with :meth:`from_env`. Its ``repr`` hides
    the API key and ping tokens.
    """

    api_key: str | None = attrs.field(default=None, converter=_api_key)
    api_url: str = attrs.field(default=DEFAULT_API_URL, converter=_api_url)
    ping_url: str = attrs.field(default=DEFAULT_PING_URL, converter=_ping_url)
    environment: str | None = attrs.field(default=None, converter=_environment)
    capture_errors: bool = attrs.field(default=False, converter=_bool)
    ping_timeout: float = attrs.field(default=DEFAULT_PING_TIMEOUT, converter=_ping_timeout)
    resolve_cache_ttl: float = attrs.field(
        default=DEFAULT_RESOLVE_CACHE_TTL, converter=_resolve_cache_ttl
    )
    monitors: Mapping[str, str] = attrs.field(factory=dict, converter=_monitors)
    token_cache: str = attrs.field(
        default=attrs.Factory(default_token_cache), converter=_token_cache
    )

    def __repr__(self) -> str:
        return (
            f"Config(api_key={'***' if self.api_key else None}, api_url={self.api_url!r}, "
            f"ping_url={self.ping_url!r}, environment={self.environment!r}, "
            f"capture_errors={self.capture_errors!r}, ping_timeout={self.ping_timeout!r}, "
            f"resolve_cache_ttl={self.resolve_cache_ttl!r}, "
            f"monitors={_redacted_monitors(self.monitors)}, token_cache={self.token_cache!r})"
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> Config:
        """Build a Config from ``STEADYCRON_*`` variables, with *overrides* on top.

        An override of None (or an empty variable) means "not set": the next source wins.
        An invalid variable raises ValueError/TypeError naming exactly that variable.
        """
        unknown = set(overrides) - set(attrs.fields_dict(cls))
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {name: value for name, value in overrides.items() if value is not None}
        for name, variable in ENV_VARS.items():
            raw = os.environ.get(variable)
            if raw and name not in values:
                values[name] = CHECKS[name](raw, variable)  # an error names the variable
        return cls(**values)


SETTING_NAMES = tuple(attrs.fields_dict(Config))
