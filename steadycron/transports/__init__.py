"""HTTP transports: the seam between the pinger and the network.

``Urllib3Transport`` (pooled, the default) and ``StdlibTransport`` load their network
libraries only when first named, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import ConnectError as ConnectError
from .._exceptions import ProtocolError as ProtocolError
from .._exceptions import TransportError as TransportError
from .._exceptions import TransportTimeoutError as TransportTimeoutError
from ._base import Request as Request
from ._base import Response as Response
from ._base import Transport as Transport
from ._memory import InMemoryTransport as InMemoryTransport
from ._memory import NullTransport as NullTransport

if TYPE_CHECKING:
    from ._stdlib import StdlibTransport as StdlibTransport
    from ._urllib3 import Urllib3Transport as Urllib3Transport

__all__ = [
    "ConnectError",
    "InMemoryTransport",
    "NullTransport",
    "ProtocolError",
    "Request",
    "Response",
    "StdlibTransport",
    "Transport",
    "TransportError",
    "TransportTimeoutError",
    "Urllib3Transport",
]


def __getattr__(name: str) -> Any:
    if name == "Urllib3Transport":
        from ._urllib3 import Urllib3Transport

        return Urllib3Transport
    if name == "StdlibTransport":
        from ._stdlib import StdlibTransport

        return StdlibTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
