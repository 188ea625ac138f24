"""steadycron: heartbeat monitoring for scheduled jobs.

Wrap a job with ``@steadycron.job("key")`` or ``with steadycron.monitor("key"):`` and
SteadyCron learns when it started, succeeded or failed. Importing this package only
defines names: no network, no threads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from . import _default
from ._client import State as State
from ._client import SteadyCron as SteadyCron
from ._config import Config as Config
from ._default import configure as configure
from ._default import default_client as default_client
from ._exceptions import AmbiguousJobKeyError as AmbiguousJobKeyError
from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import InvalidMonitorKindError as InvalidMonitorKindError
from ._exceptions import MonitorNotFoundError as MonitorNotFoundError
from ._exceptions import ResolutionUnavailableError as ResolutionUnavailableError
from ._exceptions import SteadyCronError as SteadyCronError
from ._exceptions import TransportError as TransportError
from ._run import Monitor as Monitor
from ._run import Run as Run
from ._run import RunContext as RunContext
from ._version import __version__ as __version__

__all__ = [
    "AmbiguousJobKeyError",
    "AuthenticationError",
    "Config",
    "ConfigurationError",
    "InvalidMonitorKindError",
    "Monitor",
    "MonitorNotFoundError",
    "ResolutionUnavailableError",
    "Run",
    "RunContext",
    "State",
    "SteadyCron",
    "SteadyCronError",
    "TransportError",
    "__version__",
    "clear_cache",
    "configure",
    "default_client",
    "job",
    "monitor",
    "ping",
    "resolve",
]

F = TypeVar("F", bound=Callable[..., Any])

# Module settings (properties installed below; the annotations inform type checkers).
api_key: str | None
api_url: str
ping_url: str
environment: str | None
capture_errors: bool
ping_timeout: float
resolve_cache_ttl: float
monitors: MutableMapping[str, str]


def job(key: str) -> Callable[[F], F]:
    """Decorate a function so every call is a tracked run of monitor *key*.

    The default client is looked up when the function runs, not when it is decorated.
    """
    from ._run import track

    return track(_default.default_client, key)


def monitor(key: str) -> RunContext:
    """A context manager (``with`` / ``async with``) tracking one run of monitor *key*."""
    return RunContext(_default.default_client, key)


def ping(
    key: str, state: State = "success", message: str | None = None, *, run_id: str | None = None
) -> None:
    """Send one ping through the default client (see :meth:`SteadyCron.ping`)."""
    _default.default_client().ping(key, state, message, run_id=run_id)


def resolve(key: str) -> str:
    """Resolve *key* through the default client (see :meth:`SteadyCron.resolve`)."""
    return _default.default_client().resolve(key)


def clear_cache() -> None:
    """Drop the default client's cached key -> token resolutions."""
    _default.default_client().clear_cache()


sys.modules[__name__].__class__ = _default.settings_module_class(type(sys.modules[__name__]))
