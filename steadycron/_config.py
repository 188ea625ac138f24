"""Settings: the validated ``Config`` record and the one place that reads the environment."""

from __future__ import annotations

import math
import os
import types
import urllib.parse
from collections.abc import Mapping
from typing import Any

import attrs

DEFAULT_API_URL = "https://api.steadycron.com"
DEFAULT_PING_URL = "https://ping.steadycron.com"
DEFAULT_PING_TIMEOUT = 5.0
DEFAULT_RESOLVE_CACHE_TTL = 3600.0
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
        raise ValueError(f"{name} contains a lone surrogate, which cannot be sent: {text!r}")
    return text


def optional_text(name: str, value: object) -> str | None:
    """A str setting or argument where None and "" both mean "not set"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
    return check_sendable(name, value)


def _base_url(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an http(s) URL str, not {type(value).__name__}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{name} must be an http:// or https:// URL with a host, like "
            f"'https://api.steadycron.com'; got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{name} must not carry a query or fragment; got {value!r}")
    return check_sendable(name, value).rstrip("/")


def _number(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    bad = math.isnan(number) or number < 0 or (number == 0 and not allow_zero)
    if bad or (not allow_zero and math.isinf(number)):
        need = "a number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {need} (seconds); got {value!r}")
    return number


def _monitors(value: object) -> Mapping[str, str]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise TypeError(
            f"monitors must be a mapping of key -> ping token, not {type(value).__name__}"
        )
    for key, token in value.items():
        check_key(key)
        if not isinstance(token, str) or not token:
            raise TypeError(
                f"monitors[{key!r}] must be a non-empty str ping token, not {type(token).__name__}"
            )
        check_sendable(f"monitors[{key!r}]", token)
    return types.MappingProxyType(dict(value))


def check_key(key: object) -> str:
    """Refuse anything but a non-empty str as a monitor key."""
    if not isinstance(key, str):
        raise TypeError(f"a monitor key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("a monitor key must not be empty")
    return check_sendable("a monitor key", key)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"capture_errors must be True or False, not {value!r}")
    return value


def _redacted_monitors(monitors: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key!r}: '***'" for key in monitors) + "}"


def _api_key(value: object) -> str | None:
    return optional_text("api_key", value)


def _environment(value: object) -> str | None:
    return optional_text("environment", value)


def _api_url(value: object) -> str:
    return _base_url("api_url", value)


def _ping_url(value: object) -> str:
    return _base_url("ping_url", value)


def _ping_timeout(value: object) -> float:
    return _number("ping_timeout", value, allow_zero=False)


def _resolve_cache_ttl(value: object) -> float:
    return _number("resolve_cache_ttl", value, allow_zero=True)


def default_token_cache() -> str:
    """The user's cache folder for tokens: ``$XDG_CACHE_HOME/steadycron``, else
    ``~/.cache/steadycron`` (left unexpanded when there is no home to expand it to)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # the XDG spec says to ignore a relative one
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "steadycron")


def _token_cache(value: object) -> str:
    if value is None or value == "":
        return default_token_cache()
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"token_cache must be a folder path (str or os.PathLike) or 'off', "
            f"not {type(value).__name__}"
        )
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError("token_cache must be a str path, not bytes")
    if path.lower() == TOKEN_CACHE_OFF:
        return TOKEN_CACHE_OFF
    if "\0" in path:
        raise ValueError(f"token_cache must not contain a NUL character; got {path!r}")
    return path


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
        """
        unknown = set(overrides) - set(attrs.fields_dict(cls))
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {name: os.environ.get(var) or None for name, var in ENV_VARS.items()}
        values.update((name, value) for name, value in overrides.items() if value is not None)
        return cls(**{name: value for name, value in values.items() if value is not None})


SETTING_NAMES = tuple(attrs.fields_dict(Config))
