"""Mapping the standard library's network exceptions into the TransportError tree."""

from __future__ import annotations

import contextlib
import http.client
import ssl
from collections.abc import Iterator

from .._exceptions import ConnectError, ProtocolError, TransportError, TransportTimeoutError


@contextlib.contextmanager
def builtin_errors_mapped(host: str) -> Iterator[None]:
    """Turn the standard library's network exceptions into the TransportError tree.

    Messages name the host only: the exception text of a lower layer can carry a URL,
    and with it a ping token.
    """
    try:
        yield
    except TransportError:
        raise
    except TimeoutError as exc:
        raise TransportTimeoutError(f"no answer from {host} in time") from exc
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake with {host} failed ({exc.reason})") from exc
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
        raise ProtocolError(f"connection to {host} broke ({type(exc).__name__})") from exc
    except http.client.HTTPException as exc:
        raise ProtocolError(f"{host} did not answer in HTTP ({type(exc).__name__})") from exc
    except (OSError, ValueError) as exc:
        raise ConnectError(f"could not reach {host} ({type(exc).__name__})") from exc
