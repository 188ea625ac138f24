"""Loopback SteadyCron stand-ins, served from a separate process.

A separate process keeps the server off the measured interpreter's GIL. It runs an
asyncio keep-alive HTTP/1.1 server (plain and TLS, on several ports) that answers
resolves and pings, plus faulty listeners (one that accepts and never answers, one that
drips its answer a byte at a time) and distant ones, where every round trip takes
:data:`ROUND_TRIP_SECONDS` as it would to a server a continent away. Every accepted TCP
connection and every request is counted in shared memory, so the measuring process can
report round trips per run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import attrs

from steadycron._protocol import resolution_body, resolve_key_of

from .tls import TlsFiles

#: Listener name -> whether it speaks TLS. "api" ports answer resolves, the others pings
#: (both answer either: the split only gives the cold process two hosts, as in production).
GOOD_LISTENERS = {"http": False, "http-api": False, "https": True, "https-api": True}
FAULTY_LISTENERS = ("silent", "drip", "silent-after-one", "drip-after-one")
#: Listener name -> whether it speaks TLS, for the hosts far away.
DISTANT_LISTENERS = {"distant-https": True, "distant-https-api": True}
LISTENERS = (*GOOD_LISTENERS, *FAULTY_LISTENERS, *DISTANT_LISTENERS)
SPEAKS_TLS = {**GOOD_LISTENERS, **DISTANT_LISTENERS}
DRIP_INTERVAL_SECONDS = 0.05
#: One round trip to a distant listener: its TCP handshake, its TLS handshake (TLS 1.3
#: needs one), and each request and answer.
ROUND_TRIP_SECONDS = 0.020
_HEADER_END = b"\r\n\r\n"


def _answer(request_line: bytes) -> bytes:
    """The response to one request: a resolve gets the monitor's JSON, anything else "OK"."""
    target = request_line.split(b" ", 2)[1].decode("latin-1")
    key = resolve_key_of(target)
    if key is not None:
        body, content_type = resolution_body(key, key or "job"), b"application/json"
    else:
        body, content_type = b"OK", b"text/plain"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _Counted(asyncio.Protocol):
    """Counts its connection in the shared counters when accepted (its requests after
    every listener's connection count)."""

    def __init__(self, counters: Any, index: int) -> None:
        counters[index] += 1
        self.counters = counters
        self.requests_index = len(LISTENERS) + index
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport


class _SteadyCron(_Counted):
    """Keep-alive HTTP/1.1: answers each complete request, closes on ``Connection: close``."""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(_HEADER_END)) >= 0:
            request_line, _, headers = self.buffer[:end].partition(b"\r\n")
            head = headers.lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.counters[self.requests_index] += 1
            closing = b"connection: close" in head
            self.reply(_answer(request_line), closing)
            if closing:
                return

    def reply(self, answer: bytes, close: bool) -> None:
        assert self.transport is not None
        self.transport.write(answer)
        if close:
            self.transport.close()


class _Distant(_SteadyCron):
    """A host a continent away: the TCP handshake, the TLS handshake and every answer
    each take one round trip."""

    tls: ssl.SSLContext | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the client's first bytes wait for the handshakes
        handshakes = 2 if self.tls is not None else 1
        loop = asyncio.get_running_loop()
        loop.call_later(
            ROUND_TRIP_SECONDS * handshakes, lambda: loop.create_task(self._open(transport))
        )

    async def _open(self, transport: asyncio.Transport) -> None:
        if self.tls is None:
            self.transport = transport
            transport.resume_reading()
            return
        try:
            opened = await asyncio.get_running_loop().start_tls(
                transport, self, self.tls, server_side=True
            )
        except (OSError, ssl.SSLError):
            transport.close()
            return
        assert isinstance(opened, asyncio.Transport)
        self.transport = opened

    def reply(self, answer: bytes, close: bool) -> None:
        asyncio.get_running_loop().call_later(ROUND_TRIP_SECONDS, super().reply, answer, close)


class _OnceThen(_SteadyCron):
    """Answers the first request on a connection, then stalls (silent or dripping): the
    fault a pooled, already open connection meets."""

    drip = False
    answered = False

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.answered:
            if self.drip and _HEADER_END in data:
                _Drip.start(self)
            return
        super().data_received(data)
        self.answered = True


class _DripAfterOne(_OnceThen):
    drip = True


class _Silent(_Counted):
    """Accepts, reads, and never answers."""

    def data_received(self, data: bytes) -> None:
        pass


class _Drip(_Counted):
    """Answers one byte at a time: every read succeeds, the whole answer takes seconds."""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if _HEADER_END in self.buffer:
            self.buffer = b""
            self.start(self)

    @staticmethod
    def start(protocol: _Counted) -> None:
        """Start dripping an answer down *protocol*'s connection."""
        answer = _answer(b"POST / HTTP/1.1")
        transport = protocol.transport
        assert transport is not None

        async def drip() -> None:
            for index in range(len(answer)):
                if transport.is_closing():
                    return
                transport.write(answer[index : index + 1])
                await asyncio.sleep(DRIP_INTERVAL_SECONDS)

        asyncio.get_running_loop().create_task(drip())


async def _serve(counters: Any, tls: TlsFiles, ready: Connection) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_chain, tls.private_key)
    loop = asyncio.get_running_loop()
    ports = {}

    class DistantTls(_Distant):
        tls = context

    for index, name in enumerate(LISTENERS):
        protocol = {
            "silent": _Silent,
            "drip": _Drip,
            "silent-after-one": _OnceThen,
            "drip-after-one": _DripAfterOne,
            "distant-https": DistantTls,
            "distant-https-api": DistantTls,
        }.get(name, _SteadyCron)
        server = await loop.create_server(
            lambda protocol=protocol, index=index: protocol(counters, index),
            "127.0.0.1",
            0,
            # Distant listeners start TLS themselves, after the handshakes' round trips.
            ssl=context if GOOD_LISTENERS.get(name) else None,
            backlog=256,
        )
        ports[name] = server.sockets[0].getsockname()[1]
    ready.send(ports)
    await asyncio.Event().wait()


def _main(counters: Any, tls: TlsFiles, ready: Connection) -> None:
    asyncio.run(_serve(counters, tls, ready))


@attrs.frozen
class Servers:
    """The running stand-ins: their ports and the live connection and request counters."""

    ports: dict[str, int]
    counters: Any

    def url(self, listener: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if SPEAKS_TLS.get(listener) else "http"
        return f"{scheme}://{host}:{self.ports[listener]}"

    def connections(self, listener: str) -> int:
        """TCP connections *listener* has accepted so far."""
        return int(self.counters[LISTENERS.index(listener)])

    def requests(self, listener: str) -> int:
        """Requests *listener* has read so far."""
        return int(self.counters[len(LISTENERS) + LISTENERS.index(listener)])

    def probe(self, *listeners: str) -> Callable[[], int]:
        """A probe counting the connections *listeners* have accepted so far."""
        return lambda: sum(map(self.connections, listeners))


@contextmanager
def running_servers(tls: TlsFiles) -> Iterator[Servers]:
    """Start the stand-ins in a fresh process; stop it on exit."""
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", 2 * len(LISTENERS), lock=False)
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_main, args=(counters, tls, sending), daemon=True)
    process.start()
    try:
        if not receiving.poll(30):
            raise RuntimeError("the loopback servers did not start")
        yield Servers(receiving.recv(), counters)
    finally:
        process.terminate()
        process.join(5)
