"""steadycron: heartbeat monitoring for scheduled jobs.

Wrap a job with ``@steadycron.job("key")`` or ``with steadycron.monitor("key"):`` and
SteadyCron learns when it started, succeeded or failed. Importing this package only
defines names: no network, no threads, and none of the machinery behind them (attrs, the
client, its transports) until a name is first used, so that ``import steadycron`` costs
an application less than ``import urllib.request`` does.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import AmbiguousJobKeyError as AmbiguousJobKeyError
from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import InvalidMonitorKindError as InvalidMonitorKindError
from ._exceptions import MonitorNotFoundError as MonitorNotFoundError
from ._exceptions import ResolutionUnavailableError as ResolutionUnavailableError
from ._exceptions import SteadyCronError as SteadyCronError
from ._exceptions import TransportError as TransportError
from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._client import SteadyCron as SteadyCron
    from ._config import Config as Config
    from ._monitor import ManualRun as ManualRun
    from ._monitor import Monitor as Monitor
    from ._ping import State as State
    from ._run import Run as Run
    from ._run import RunContext as RunContext

__all__ = [
    "AmbiguousJobKeyError",
    "AuthenticationError",
    "Config",
    "ConfigurationError",
    "InvalidMonitorKindError",
    "ManualRun",
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
    "current_run",
    "default_client",
    "job",
    "monitor",
    "ping",
    "resolve",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Public classes that live in private modules, imported when first asked for (PEP 562).
_LAZY = {
    "Config": "._config",
    "ManualRun": "._monitor",
    "Monitor": "._monitor",
    "Run": "._run",
    "RunContext": "._run",
    "State": "._ping",
    "SteadyCron": "._client",
}

#: The settings readable and assignable as module attributes: ``Config``'s fields, named
#: here so that defining them does not import attrs (``_default`` checks they agree).
_SETTINGS = (
    "api_key",
    "api_url",
    "ping_url",
    "environment",
    "capture_errors",
    "ping_timeout",
    "resolve_cache_ttl",
    "monitors",
    "token_cache",
)

# Module settings (properties installed below; the annotations inform type checkers).
api_key: str | None
api_url: str
ping_url: str
environment: str | None
capture_errors: bool
ping_timeout: float
resolve_cache_ttl: float
monitors: MutableMapping[str, str]
token_cache: str


if not TYPE_CHECKING:  # type checkers see the names above, and flag a misspelt one

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}{_suggest(name)}")
        import importlib

        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def configure(**settings: Any) -> None:
    """Set several settings of the default client at once, all or nothing.

    Accepts the settings of :class:`Config` and ``transport``. None unsets a setting
    (back to its environment variable, then its default).
    """
    from ._default import configure

    configure(**settings)


def default_client() -> SteadyCron:
    """The client the module-level functions use."""
    from ._default import default_client

    return default_client()


def current_run() -> Run | None:
    """The innermost open run of this thread or asyncio task (of any client), or None.

    Inside ``@job`` or ``with monitor(...)`` it is the run whose :meth:`Run.report`
    fills the outcome ping of an ``agent`` monitor.
    """
    from ._run import current_run

    return current_run()


def job(key: str) -> Callable[[F], F]:
    """Decorate a function so every call is a tracked run of monitor *key*.

    The default client is looked up when the function runs, not when it is decorated.
    """
    from ._default import default_client as client_source
    from ._run import track

    return track(client_source, key)


def monitor(key: str) -> RunContext:
    """A context manager (``with`` / ``async with``) tracking one run of monitor *key*."""
    from ._default import default_client as client_source
    from ._run import RunContext

    return RunContext(client_source, key)


def ping(
    key: str,
    state: State = "success",
    message: str | None = None,
    *,
    run_id: str | None = None,
    report: Mapping[str, object] | None = None,
) -> None:
    """Send one ping through the default client (see :meth:`SteadyCron.ping`)."""
    default_client().ping(key, state, message, run_id=run_id, report=report)


def resolve(key: str) -> str:
    """Resolve *key* through the default client (see :meth:`SteadyCron.resolve`)."""
    return default_client().resolve(key)


def clear_cache() -> None:
    """Drop the default client's cached key -> token resolutions."""
    default_client().clear_cache()


def _setting(name: str) -> property:
    """A module attribute that reads the effective value of a default-client setting
    (code, else environment, else default) and validates what is assigned to it."""

    def read(module: types.ModuleType) -> Any:
        from . import _default

        return _default.read_setting(name)

    def write(module: types.ModuleType, value: Any) -> None:
        from . import _default

        _default.write_setting(name, value)

    return property(read, write, doc=f"The default client's {name} setting.")


def _suggest(name: str) -> str:
    """A "did you mean" for a misspelt public name, or nothing."""
    import difflib

    known = [*_SETTINGS, *__all__]
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _set_known_only(module: types.ModuleType, name: str, value: Any) -> None:
    """Refuse a new public name: ``steadycron.ping_timout = 1`` would otherwise be kept
    silently and do nothing. Settings, existing names, private names and submodules (which
    the import system sets) go through."""
    known = name.startswith("_") or name in module.__dict__ or name in _LAZY
    if not (known or name in _SETTINGS or isinstance(value, types.ModuleType)):
        raise AttributeError(f"module {__name__!r} has no setting {name!r}{_suggest(name)}")
    types.ModuleType.__setattr__(module, name, value)


sys.modules[__name__].__class__ = type(
    "SteadyCronModule",
    (types.ModuleType,),
    {"__setattr__": _set_known_only, **{name: _setting(name) for name in _SETTINGS}},
)
