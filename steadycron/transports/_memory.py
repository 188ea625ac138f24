"""Transports that never touch the network: a SteadyCron in memory, and monitoring off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from .._protocol import JSON_HEADERS, error_body, resolution_body
from .._protocol import resolve_key_of as _resolve_key_of_url
from ._base import Request, Response

Handler = Callable[[Request], "Response | None"]


def _resolve_answer(key: str, token: str, kind: str = "heartbeat") -> Response:
    return Response(200, JSON_HEADERS, resolution_body(key, token, kind=kind))


def _error_answer(status: int, code: str, message: str) -> Response:
    return Response(status, JSON_HEADERS, error_body(code, message))


def resolve_key_of(request: Request) -> str | None:
    """The key a resolve request asks for, or None when *request* is no resolve."""
    return _resolve_key_of_url(request.url)


class InMemoryTransport:
    """Answers like a SteadyCron server from a key -> token mapping; records every request.

    Unknown keys get 404, as on the real server. Pings to any token get 200. Nothing is
    sent anywhere; ``requests`` lists what would have been.

    Args:
        monitors: key -> ping token of the monitors that exist.
        kinds: key -> kind (``"agent"``, ``"http"``) of those that are no heartbeat.
        handler: optional ``handler(request) -> Response | None`` consulted first; return
            None to fall through to the default answer. Lets a test stage any answer.
    """

    blocking = False

    def __init__(
        self,
        monitors: Mapping[str, str] | None = None,
        *,
        kinds: Mapping[str, str] | None = None,
        handler: Handler | None = None,
    ) -> None:
        self.monitors: dict[str, str] = dict(monitors or {})
        self.kinds: dict[str, str] = dict(kinds or {})
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(<{len(self.monitors)} monitors>, <{len(self.requests)} requests>)"

    def send(self, request: Request, *, timeout: float) -> Response:
        with self._lock:
            self.requests.append(request)
        if self.handler is not None:
            staged = self.handler(request)
            if staged is not None:
                return staged
        key = resolve_key_of(request)
        if key is None:
            return Response(200, {}, b"OK")
        token = self.token_for(key)
        if token is None:
            return _error_answer(404, "not_found", f"no monitor with key {key!r}")
        return _resolve_answer(key, token, self.kind_for(key))

    def token_for(self, key: str) -> str | None:
        """The token a resolve of *key* answers with, or None for 404."""
        return self.monitors.get(key)

    def kind_for(self, key: str) -> str:
        """The kind of monitor a resolve of *key* reports."""
        return self.kinds.get(key, "heartbeat")

    def close(self) -> None:
        """Nothing to release; recorded requests stay readable."""


class NullTransport:
    """Monitoring switched off: every request succeeds and nothing is sent."""

    blocking = False
    PLACEHOLDER_TOKEN = "null-transport-token"  # noqa: S105 -- not a secret

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def send(self, request: Request, *, timeout: float) -> Response:
        key = resolve_key_of(request)
        if key is None:
            return Response(200, {}, b"OK")
        return _resolve_answer(key, self.PLACEHOLDER_TOKEN)

    def close(self) -> None:
        """Nothing to release."""
