"""One HTTP exchange within one deadline: retries inside the budget, and a hard bound.

The deadline is taken once by the caller. Every attempt gets the time that remains as its
timeout; tenacity retries transport errors, 408, 429 and 5xx with jittered exponential
backoff, but only while the next attempt (after its sleep, a fitting ``Retry-After``
included) still fits before the deadline. Blocking transports run on a worker thread and
the caller waits at most until the deadline, so neither a hung name lookup nor a
slow-drip answer can hold it longer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ._exceptions import TransportError, TransportTimeoutError
from .transports._base import Request, Response, Transport

if TYPE_CHECKING:
    import tenacity

    from ._workers import Workers

log = logging.getLogger("steadycron")

#: An attempt that cannot have this long is not started.
MIN_ATTEMPT_SECONDS = 0.02
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 1.0
BACKOFF_JITTER_SECONDS = 0.05


def is_retryable_status(status: int) -> bool:
    """The one place that says which answers are worth another attempt."""
    return status in (408, 429) or status >= 500


#: What an answer means where its number alone would leave the reader of a log guessing.
STATUS_MEANINGS = {
    422: "the run was not open on the server (its start ping may have been lost in an outage)",
}


@attrs.frozen
class Exchange:
    """What came of an exchange: the last answer (if any) and how we got there."""

    response: Response | None
    attempts: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None and 200 <= self.response.status < 300

    @property
    def reason(self) -> str:
        """Why the exchange did not succeed, in words safe to log."""
        if self.response is not None:
            status = self.response.status
            meaning = STATUS_MEANINGS.get(status)
            return f"HTTP {status}: {meaning}" if meaning else f"HTTP {status}"
        return self.error or "no answer"


def retry_after_seconds(response: Response) -> float | None:
    """The server's ``Retry-After`` in seconds (delta or HTTP date), if it sent a usable one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class Pinger:
    """Performs exchanges for one client; owns its worker threads.

    Args:
        clock: monotonic clock (a fake one in tests of the retry arithmetic).
        sleep: how to wait between attempts.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._workers: Workers | None = None
        self._retrying: tenacity.Retrying | None = None

    def exchange(self, transport: Transport, request: Request, deadline: float) -> Exchange:
        """Send *request* until it succeeds, fails for good, or the deadline is near.

        Never raises: whatever goes wrong is described in the returned Exchange.
        """
        inline = getattr(transport, "blocking", True) is False
        outcomes: list[Response | TransportError] = []
        attempt = functools.partial(self._attempt, outcomes, transport, request, inline)
        try:
            try:
                response = attempt(deadline=deadline)
            except TransportError:
                pass
            else:
                if not is_retryable_status(response.status):
                    return Exchange(response, 1)
            # The common case ended above without tenacity; it drives the retries.
            first_sleep = self._next_sleep(outcomes[-1], 1)
            if self._clock() + first_sleep + MIN_ATTEMPT_SECONDS < deadline:
                log.debug("attempt 1 failed; retrying in %.3f s", first_sleep)
                self._sleep(first_sleep)
                (self._retrying or self._build_retrying())(attempt, deadline=deadline)
            return _summary(outcomes)
        except Exception as exc:  # a misbehaving custom transport must not break a job
            return Exchange(None, len(outcomes), f"transport raised {type(exc).__name__}")
        finally:
            # The errors' tracebacks hold frames that hold this list: break the cycle so
            # their sockets and frames go at once, not at the next garbage collection.
            outcomes.clear()

    def _attempt(
        self,
        outcomes: list[Response | TransportError],
        transport: Transport,
        request: Request,
        inline: bool,
        *,
        deadline: float,
    ) -> Response:
        remaining = deadline - self._clock()
        try:
            if remaining <= 0:
                raise TransportTimeoutError("the ping deadline passed")
            if inline:
                response = transport.send(request, timeout=remaining)
            else:
                response = self._send_blocking(transport, request, deadline, remaining)
        except TransportError as exc:
            outcomes.append(exc)
            raise
        outcomes.append(response)
        return response

    def _send_blocking(
        self, transport: Transport, request: Request, deadline: float, remaining: float
    ) -> Response:
        """Send through a transport that may block, releasing the caller at the deadline.

        A transport that can send over an already open connection within the deadline on
        this thread (``Urllib3Transport.send_if_connected``) spares the two thread wake-ups
        of a worker; anything else, a connect or name lookup above all, goes to a worker
        the caller stops waiting for when the time is up.
        """
        send_if_connected = getattr(transport, "send_if_connected", None)
        if send_if_connected is not None:
            response: Response | None = send_if_connected(request, timeout=remaining)
            if response is not None:
                return response
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise TransportTimeoutError("the ping deadline passed")
        send = functools.partial(transport.send, request, timeout=remaining)
        return self._worker_pool().call(send, timeout=remaining)

    def _next_sleep(self, outcome: Response | TransportError, attempt_number: int) -> float:
        """The wait after *attempt_number*: the server's Retry-After, else jittered backoff."""
        if isinstance(outcome, Response):
            server_wait = retry_after_seconds(outcome)
            if server_wait is not None:
                return server_wait
        import random

        backoff = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2.0 ** (attempt_number - 1))
        return backoff + random.uniform(0, BACKOFF_JITTER_SECONDS)  # noqa: S311 -- jitter

    def _build_retrying(self) -> tenacity.Retrying:
        import tenacity

        def wait(state: tenacity.RetryCallState) -> float:
            # Attempt 1 ran before tenacity: its attempt N is our attempt N + 1.
            future = state.outcome
            error = None if future is None else future.exception()
            outcome = error if isinstance(error, TransportError) else future.result()  # type: ignore[union-attr]
            return self._next_sleep(outcome, state.attempt_number + 1)

        def stop(state: tenacity.RetryCallState) -> bool:
            deadline = float(state.kwargs["deadline"])
            return self._clock() + state.upcoming_sleep + MIN_ATTEMPT_SECONDS >= deadline

        def note_retry(state: tenacity.RetryCallState) -> None:
            log.debug(
                "attempt %d failed; retrying in %.3f s",
                state.attempt_number + 1,
                state.upcoming_sleep,
            )

        self._retrying = tenacity.Retrying(
            retry=(
                tenacity.retry_if_exception_type(TransportError)
                | tenacity.retry_if_result(lambda r: is_retryable_status(r.status))
            ),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=note_retry,
            retry_error_callback=lambda state: None,
        )
        return self._retrying

    def _worker_pool(self) -> Workers:
        if self._workers is None:
            from ._workers import Workers

            self._workers = Workers()
        return self._workers

    def close(self) -> None:
        """Stop worker threads (started again if the pinger is used again)."""
        if self._workers is not None:
            self._workers.close()


def _summary(outcomes: list[Response | TransportError]) -> Exchange:
    """The Exchange that the last outcome makes (kept out of frames its error refers to)."""
    last = outcomes[-1]
    if isinstance(last, Response):
        return Exchange(last, len(outcomes))
    return Exchange(None, len(outcomes), str(last) or type(last).__name__)
