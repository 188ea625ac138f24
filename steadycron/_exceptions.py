"""Every error the SDK raises, in one tree.

::

    SteadyCronError
    ├── ConfigurationError            misconfiguration: the job does not run
    │   ├── AuthenticationError       401/403 from the API
    │   ├── MonitorNotFoundError      404: no job with that key
    │   ├── AmbiguousJobKeyError      409: the key matches several jobs
    │   └── InvalidMonitorKindError   the key names a job that takes no pings (http)
    ├── ResolutionUnavailableError    outage, raised only by ``client.resolve()``
    └── TransportError                no HTTP answer (never escapes a ping)
        ├── ConnectError
        ├── TransportTimeoutError
        └── ProtocolError

Errors carry the monitor key and the server's message, never an API key or token. Each
names the module users import it from, so a traceback reads
``steadycron.MonitorNotFoundError``, not the private module it is defined in.
"""

from __future__ import annotations

from ._redact import shown


class SteadyCronError(Exception):
    """Base class of every error raised by steadycron."""


class ConfigurationError(SteadyCronError):
    """The SDK cannot monitor this key as configured; the job is not run.

    Raised directly when there is neither an API key nor a direct token for a key.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class _ServerRefusal(ConfigurationError):
    """A resolve answer that names a misconfiguration, with the server's own words."""

    default_reason = ""

    def __init__(
        self, key: str, server_message: str | None = None, *, status: int | None = None
    ) -> None:
        text = f"monitor key {shown(key)}: {self.default_reason}"
        if server_message:
            text = f"{text} (server said: {server_message})"
        super().__init__(text, key=key)
        self.server_message = server_message
        self.status = status


class AuthenticationError(_ServerRefusal):
    """The API refused the API key (401) or its scope (403)."""

    default_reason = (
        "the API key was refused; set a valid SteadyCron API key "
        "(steadycron.api_key or STEADYCRON_API_KEY)"
    )


class MonitorNotFoundError(_ServerRefusal):
    """No job has this key (404)."""

    default_reason = "no monitor has this key; check it against your monitor manifest"


class AmbiguousJobKeyError(_ServerRefusal):
    """The key matches more than one job (409)."""

    default_reason = "the key matches more than one job; give the monitor a unique id"


class InvalidMonitorKindError(_ServerRefusal):
    """The key names a job that takes no pings: not a heartbeat or agent monitor."""

    default_reason = "the key names a job that is not a heartbeat or agent monitor"

    def __init__(
        self,
        key: str,
        server_message: str | None = None,
        *,
        status: int | None = None,
        kind: str | None = None,
    ) -> None:
        self.kind = kind
        if kind is not None:
            self.default_reason = f"the key names a {kind!r} job, not a heartbeat or agent monitor"
        super().__init__(key, server_message, status=status)


class ResolutionUnavailableError(SteadyCronError):
    """SteadyCron could not be reached, or answered nonsense, within the time budget."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class TransportError(SteadyCronError):
    """No HTTP answer came back. Transports raise this (and nothing else)."""


class ConnectError(TransportError):
    """The connection could not be made (refused, unreachable, name lookup, TLS)."""


class TransportTimeoutError(TransportError):
    """No complete answer arrived in time."""


class ProtocolError(TransportError):
    """The connection broke or the peer did not speak HTTP."""


for _error in (
    SteadyCronError,
    ConfigurationError,
    AuthenticationError,
    MonitorNotFoundError,
    AmbiguousJobKeyError,
    InvalidMonitorKindError,
    ResolutionUnavailableError,
    TransportError,
):
    _error.__module__ = "steadycron"
for _error in (ConnectError, TransportTimeoutError, ProtocolError):
    _error.__module__ = "steadycron.transports"
del _error
