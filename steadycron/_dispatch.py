"""Where an attempt runs: on the caller's thread, or on a worker it can walk away from.

Decided once per transport, from what the transport declares (``transports._base``):

- one that never blocks (``blocking = False``, an in-memory fake) runs on the caller's
  thread: nothing to bound, no thread hop;
- the SDK's network transports send over an already open connection on the caller's
  thread (two thread wake-ups cost as much as a loopback exchange), and on a worker
  whenever a connection must be opened;
- any other transport runs on a worker.

The hard bound is therefore two things, each for what the other cannot do: the caller
stops waiting for a worker at the deadline (nothing can interrupt a hung name lookup or a
foreign transport), and the watchdog (``transports._watchdog``) cuts off the socket of a
send on the caller's thread, where there is no worker to walk away from, and frees
workers from peers that drip. Both read the same deadline, which also stops the SDK's
transports from sending anything once it has passed.

On the caller's thread the exchange's own trouble and an exception raised into the caller
(a signal handler's) can meet; :func:`~steadycron._interrupts.from_outside` tells them
apart. When no thread can start (interpreter exit on Python 3.12+), work meant for a
worker runs on the caller's thread too.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ._deadline import Deadline
from ._exceptions import TransportError, TransportTimeoutError
from ._forksafe import reset_after_fork
from ._interrupts import from_outside
from .transports._base import DeadlineTransport, MayBlock, Request, Response, Transport

if TYPE_CHECKING:
    from ._workers import Workers

T = TypeVar("T")
#: One attempt: send *request* to *host* within *deadline*.
Send = Callable[[Request, Deadline, str], Response]


class BrokenTransportError(Exception):
    """The transport raised something other than TransportError (its name is the text)."""


def on_this_thread(send: Callable[[], T]) -> T:
    """Run a send on the caller's thread, telling its own trouble from outside trouble."""
    try:
        return send()
    except TransportError:
        raise
    except Exception as exc:
        if from_outside(exc):
            raise
        raise BrokenTransportError(type(exc).__name__) from None


class Dispatcher:
    """Runs one client's attempts where they belong; owns its worker threads.

    Args:
        on_new_transport: called when attempts go through another transport than before.
    """

    def __init__(self, on_new_transport: Callable[[], None]) -> None:
        self._on_new_transport = on_new_transport
        self._lock = threading.Lock()
        self._workers: Workers | None = None
        #: The transport last used and where its sends run (replaced together).
        self.route: tuple[Transport, Send] | None = None
        reset_after_fork(self)

    def send_for(self, transport: Transport) -> Send:
        """How to make an attempt through *transport*."""
        route = self.route
        if route is not None and route[0] is transport:
            return route[1]
        send: Send
        if isinstance(transport, DeadlineTransport):
            send = functools.partial(self._bounded, transport)
        elif isinstance(transport, MayBlock):
            send = functools.partial(self._as_declared, transport)
        else:
            send = functools.partial(self._foreign, transport)
        with self._lock:
            if self.route is None or self.route[0] is not transport:
                self._on_new_transport()
                self.route = (transport, send)
        return send

    def _as_declared(
        self, transport: MayBlock, request: Request, deadline: Deadline, host: str
    ) -> Response:
        # Read at every attempt: a test may make its in-memory transport slow on purpose.
        if transport.blocking:
            return self._foreign(transport, request, deadline, host)
        return self._inline(transport, request, deadline, host)

    def _inline(
        self, transport: Transport, request: Request, deadline: Deadline, host: str
    ) -> Response:
        if not deadline.may_write():  # it sends at once: from here on it counts as sent
            raise TransportTimeoutError("the ping deadline passed before the send began")
        try:  # on_this_thread(), unrolled: a run's two pings take this path
            return transport.send(request, timeout=deadline.remaining())
        except TransportError:
            raise
        except Exception as exc:
            if from_outside(exc):
                raise
            raise BrokenTransportError(type(exc).__name__) from None

    def _bounded(
        self, transport: DeadlineTransport, request: Request, deadline: Deadline, host: str
    ) -> Response:
        try:  # on_this_thread(), unrolled: nearly every ping over a network takes this path
            response = transport.send_if_connected(request, deadline)
        except TransportError:
            raise
        except Exception as exc:
            if from_outside(exc):
                raise
            raise BrokenTransportError(type(exc).__name__) from None
        if response is not None:
            return response
        return self._on_worker(
            functools.partial(transport.send_within, request, deadline), deadline, host
        )

    def _foreign(
        self, transport: Transport, request: Request, deadline: Deadline, host: str
    ) -> Response:
        def send() -> Response:
            # A send that waited past the deadline for a worker must not start late; one
            # that starts may write at any moment, so from here on it counts as sent.
            if not deadline.may_write():
                raise TransportTimeoutError("the ping deadline passed before the send began")
            return transport.send(request, timeout=deadline.remaining())

        return self._on_worker(send, deadline, host)

    def _on_worker(self, send: Callable[[], Response], deadline: Deadline, host: str) -> Response:
        from ._workers import JobError, NoThreadError

        try:
            return self._worker_pool().call(send, deadline=deadline, host=host)
        except JobError as exc:
            raise BrokenTransportError(str(exc)) from None
        except NoThreadError:
            # No thread can start (interpreter exit on Python 3.12+): send on this thread,
            # bounded by the deadline the transport is given (socket timeouts alone).
            return on_this_thread(send)

    def _worker_pool(self) -> Workers:
        workers = self._workers
        if workers is None:
            with self._lock:  # concurrent first pings must build one pool, not one each
                if self._workers is None:
                    from ._workers import Workers

                    self._workers = Workers()
                workers = self._workers
        return workers

    def close(self) -> None:
        """Stop worker threads (started again if attempts are made again)."""
        if self._workers is not None:
            self._workers.close()

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held it (building the worker pool) at the fork.
        self._lock = threading.Lock()
