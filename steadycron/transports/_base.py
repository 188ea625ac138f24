"""The transport seam: one HTTP exchange, no retries, no redirects.

A transport turns a :class:`Request` into a :class:`Response` or raises
:class:`~steadycron.TransportError`. Everything else (deadlines, retries, what a status
means) belongs to the pinger, so a transport stays a dozen lines.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import attrs

if TYPE_CHECKING:
    from .._deadline import Deadline

USER_AGENT_HEADER = "User-Agent"

#: Answers are tiny; a larger body is cut here so a hostile peer cannot fill memory.
MAX_RESPONSE_BYTES = 64 * 1024


def _lowercase_keys(headers: Mapping[str, str]) -> Mapping[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _redacted_url(url: str) -> str:
    """Keep scheme and host: the path holds a ping token, the query nothing worth showing."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/<redacted>"


@attrs.frozen(repr=False)
class Request:
    """One HTTP request. Its ``repr`` hides the path (a ping token) and all headers."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes | None = None

    def __repr__(self) -> str:
        size = 0 if self.body is None else len(self.body)
        return (
            f"Request(method={self.method!r}, url={_redacted_url(self.url)!r}, "
            f"headers=<{len(self.headers)} headers>, body=<{size} bytes>)"
        )


@attrs.frozen(repr=False)
class Response:
    """One HTTP answer; header names are lower-cased so lookups need no care.

    Its ``repr`` leaves the body out: a resolve answer carries a ping token.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_lowercase_keys)
    body: bytes = b""

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body=<{len(self.body)} bytes>)"


@runtime_checkable
class Transport(Protocol):
    """What the pinger needs from an HTTP layer.

    ``send`` performs exactly one exchange within *timeout* seconds: no retries, no
    redirects. It returns every HTTP answer, error statuses included, as a
    :class:`Response`, and raises :class:`~steadycron.TransportError` (and nothing else)
    when no answer came back. A transport that never blocks (an in-memory fake) may say
    so (:class:`MayBlock`); the pinger then calls it on the caller's thread.
    """

    def send(self, request: Request, *, timeout: float) -> Response:
        """Perform one HTTP exchange."""
        ...

    def close(self) -> None:
        """Release connections; the transport is not used again."""
        ...


@runtime_checkable
class MayBlock(Transport, Protocol):
    """Optional: whether ``send`` can wait on the network.

    A transport with ``blocking = False`` (an in-memory fake) is called on the caller's
    thread, with no worker thread and nothing to bound. Any other transport is called on
    a worker thread that the caller stops waiting for at the deadline.
    """

    blocking: bool


@runtime_checkable
class DeadlineTransport(Transport, Protocol):
    """What the SDK's own network transports offer beyond :class:`Transport`.

    They take the ping's deadline itself rather than a timeout: nothing is begun or sent
    once it has passed (a name lookup that returns late is never followed by the
    request), and their sockets are cut off at it.
    """

    def send_within(self, request: Request, deadline: Deadline) -> Response:
        """Perform one HTTP exchange held to *deadline*."""
        ...

    def send_if_connected(self, request: Request, deadline: Deadline) -> Response | None:
        """The same, but only over an already open connection and so safe on the
        caller's thread; None, with nothing sent, when a connection would have to be
        opened."""
        ...


def check_transport(transport: object) -> Transport:
    """Refuse, with a message that says what is missing, an object that is no transport."""
    missing = [name for name in ("send", "close") if not callable(getattr(transport, name, None))]
    if missing:
        raise TypeError(
            f"transport must have send(request, *, timeout) and close() methods; "
            f"{type(transport).__name__} lacks {' and '.join(missing)}()"
        )
    return cast(Transport, transport)
