"""The module-level default client and the settings read and written as module attributes.

A setting reads back its effective value: set in code, else its environment variable at
the time of reading, else the default. The default client is rebuilt only when a setting,
``monitors`` or one of those variables has changed since the last ping.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import attrs

from ._client import SteadyCron
from ._config import ENV_VARS, SETTING_NAMES, Config, check_key
from ._exceptions import ConfigurationError
from .transports._base import Transport, check_transport

_FIELDS = attrs.fields_dict(Config)

# The default client checks its environment variables at every ping (two per run), and
# only to notice a change. The bytes view answers that without decoding each value, at
# half the cost of os.environ; both views share one store, so neither can lag behind.
_ENVIRON = os.environb if os.supports_bytes_environ else os.environ
_ENV_KEYS: tuple[Any, ...] = tuple(
    os.fsencode(name) if os.supports_bytes_environ else name for name in ENV_VARS.values()
)


def validate_setting(name: str, value: object) -> Any:
    """Validate one setting as ``Config`` would; raise TypeError/ValueError naming it."""
    converter: Callable[[object], Any] = _FIELDS[name].converter  # type: ignore[assignment]
    return converter(value)


class MonitorMap(MutableMapping[str, str]):
    """``steadycron.monitors``: key -> ping token, validated on every write.

    Its ``repr`` hides the tokens. Every change bumps ``version`` so the default client
    notices in-place mutation.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self.version = 0

    def __getitem__(self, key: str) -> str:
        return self._tokens[key]

    def __setitem__(self, key: str, token: str) -> None:
        check_key(key)
        validate_setting("monitors", {key: token})
        self._tokens[key] = token
        self.version += 1

    def __delitem__(self, key: str) -> None:
        del self._tokens[key]
        self.version += 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{key!r}: '***'" for key in self._tokens) + "}"

    def replace(self, tokens: Mapping[str, str]) -> None:
        self._tokens = dict(tokens)
        self.version += 1


class DefaultSettings:
    """Settings made in code for the default client (None: not set)."""

    def __init__(self) -> None:
        self.explicit: dict[str, Any] = {}
        self.monitors = MonitorMap()
        self.version = 0
        self.lock = threading.RLock()

    def effective(self, name: str) -> Any:
        if name == "monitors":
            return self.monitors
        if name in self.explicit:
            return self.explicit[name]
        variable = ENV_VARS.get(name)
        from_env = os.environ.get(variable) if variable else None
        if from_env:
            return validate_setting(name, from_env) if name == "token_cache" else from_env
        default = _FIELDS[name].default
        # A default made by a factory (the user's cache folder) is made at reading time.
        factory = getattr(default, "factory", None)
        return default if factory is None else factory()

    def assign(self, changes: Mapping[str, Any]) -> None:
        """Validate every change, then apply them all (or none)."""
        checked = {}
        for name, value in changes.items():
            unset = value is None or (value == "" and name != "monitors")
            checked[name] = None if unset else validate_setting(name, value)
        with self.lock:
            for name, value in checked.items():
                if name == "monitors":
                    self.monitors.replace(value or {})
                elif value is None:
                    self.explicit.pop(name, None)
                else:
                    self.explicit[name] = value
            self.version += 1

    def snapshot_key(self) -> tuple[object, ...]:
        return (self.version, self.monitors.version, *map(_ENVIRON.get, _ENV_KEYS))

    def build_config(self) -> Config:
        values = dict(self.explicit, monitors=dict(self.monitors))
        try:
            return Config.from_env(**values)
        except (TypeError, ValueError) as exc:  # names the variable at fault
            raise ConfigurationError(f"invalid SteadyCron setting: {exc}") from None


class DefaultClient:
    """The client behind the module-level API: a :class:`SteadyCron` for the current
    module settings, rebuilt when they change.

    A rebuilt client carries on its predecessor's transport, workers and resolved tokens
    (kept per API key and URL). Closing it only releases its connections and threads: the
    next ping opens fresh ones.
    """

    def __init__(self, settings: DefaultSettings) -> None:
        self._settings = settings
        self._client = SteadyCron._reopening(Config())
        self._seen: tuple[object, ...] | None = None

    def current(self) -> SteadyCron:
        """The client for the settings as they are now."""
        client = self._client
        if self._seen != self._settings.snapshot_key():
            client = self._rebuild()
        return client

    def _rebuild(self) -> SteadyCron:
        settings = self._settings
        with settings.lock:
            seen = settings.snapshot_key()
            # Cached tokens are kept per api_url and API key: a switch needs no clearing.
            client = self._client._with_config(settings.build_config())
            self._client, self._seen = client, seen
        return client

    def replace_transport(self, transport: Transport | None) -> None:
        """Swap the transport, closing the one it replaces. The settings are not read:
        their rebuilt clients share the transport."""
        old = self._client.replace_transport(transport)
        if old is not None and old is not transport:
            old.close()

    def holds(self, client: SteadyCron) -> bool:
        """Whether *client* is this default client, as built for any settings."""
        return client._shares_wiring_with(self._client)

    def close(self) -> None:
        """Release the connections and threads of the client it holds."""
        self._client.close()


_settings = DefaultSettings()
_holder: DefaultClient | None = None
_holder_lock = threading.Lock()


def default_client() -> SteadyCron:
    """The client the module-level functions use, for the module settings as they are."""
    return _default().current()


def _default() -> DefaultClient:
    global _holder
    holder = _holder
    if holder is None:
        with _holder_lock:
            if _holder is None:
                _holder = DefaultClient(_settings)
            holder = _holder
    return holder


def is_default_client(client: SteadyCron) -> bool:
    """Whether *client* is the default client (``steadycron.default_client()``, now or
    before a setting changed)."""
    holder = _holder
    return holder is not None and holder.holds(client)


def configure(**settings: Any) -> None:
    """Set several settings of the default client at once, all or nothing.

    Accepts the settings of :class:`Config` and ``transport``. None unsets a setting
    (back to its environment variable, then its default).
    """
    unknown = set(settings) - set(SETTING_NAMES) - {"transport"}
    if unknown:
        raise TypeError(
            f"configure() got unknown setting(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join((*SETTING_NAMES, 'transport'))}"
        )
    replace_transport = "transport" in settings
    transport = settings.pop("transport", None)
    if transport is not None:
        check_transport(transport)
    _settings.assign(settings)
    if replace_transport:
        _default().replace_transport(transport)


def reset() -> None:
    """Forget every module-level setting and close the default client (for tests)."""
    global _holder, _settings
    with _holder_lock:
        holder, _holder = _holder, None
        _settings = DefaultSettings()
    if holder is not None:
        holder.close()


def save_settings() -> Callable[[], None]:
    """Remember the module settings; the function returned puts them back.

    For the test kit: a test that sets ``steadycron.environment`` must not leave it set for
    the next one. Restoring keeps the ``steadycron.monitors`` object users may hold.
    """
    with _settings.lock:
        explicit = dict(_settings.explicit)
        monitors = dict(_settings.monitors)

    def restore() -> None:
        settings = _settings
        with settings.lock:
            settings.explicit = dict(explicit)
            settings.monitors.replace(monitors)
            settings.version += 1

    return restore


def read_setting(name: str) -> Any:
    """The effective value of module setting *name* (``steadycron.<name>``)."""
    return _settings.effective(name)


def write_setting(name: str, value: Any) -> None:
    """Assign module setting *name*; an invalid value is refused and the old one stays."""
    _settings.assign({name: value})


def _check_package_settings() -> None:
    from . import _SETTINGS

    if set(_SETTINGS) != set(SETTING_NAMES):
        raise ImportError(f"steadycron._SETTINGS {_SETTINGS} disagrees with Config {SETTING_NAMES}")


_check_package_settings()
