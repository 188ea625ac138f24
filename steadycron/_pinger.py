"""One HTTP exchange within one deadline: retries inside the budget, and a hard bound.

The deadline is made once per ping by the caller (:class:`~steadycron._deadline.Deadline`)
and handed down. Every attempt gets the time that remains; tenacity retries transport
errors, 408, 429 and 5xx with jittered exponential backoff, but only while the next
attempt (after its sleep, a fitting ``Retry-After`` included) still fits before the
deadline, and never more than ``MAX_ATTEMPTS`` times. A ``Retry-After`` shorter than the
backoff step (0, or a date in the past) never makes it retry faster than that step.

Where each attempt runs, and so what bounds it, is :mod:`steadycron._dispatch`'s
business. Before any attempt, the client's circuit breaker (:mod:`steadycron._breaker`)
may hold the exchange back; after it, the breaker learns whether the host answered.

Only the exchange's own trouble is swallowed: an exception raised into the caller from
outside (a signal handler's, ``KeyboardInterrupt``) propagates at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ._breaker import PASS, Admission, Breaker
from ._deadline import Deadline
from ._dispatch import BrokenTransportError, Dispatcher, Send
from ._exceptions import TransportError
from .transports._base import Request, Response, Transport

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger("steadycron")

#: An attempt that cannot have this long is not started.
MIN_ATTEMPT_SECONDS = 0.02
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 1.0
BACKOFF_JITTER_SECONDS = 0.05
#: With the backoff above, the default 5 s budget holds about nine attempts; this caps
#: what a longer ``ping_timeout`` allows.
MAX_ATTEMPTS = 10


def is_retryable_status(status: int) -> bool:
    """The one place that says which answers are worth another attempt."""
    return status in (408, 429) or status >= 500


def origin_of(url: str) -> str:
    """``scheme://host:port`` of *url*: what the breaker and the per-host bound key on."""
    end = url.find("/", 8)  # past "https://" (and the host's first character after "http://")
    return url if end < 0 else url[:end]


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


class _OutOfTimeError(Exception):
    """The deadline passed before an attempt could begin: nothing was sent."""


class Pinger:
    """Performs exchanges for one client; owns its circuit breaker and, through its
    dispatcher, its worker threads.

    Args:
        clock: monotonic clock of the breaker's cool-downs (deadlines bring their own).
        sleep: how to wait between attempts (a fake one in tests of the arithmetic).
        breaker: the circuit breaker (a default one when omitted).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        breaker: Breaker | None = None,
    ) -> None:
        self._sleep = sleep
        self.breaker = breaker or Breaker(clock=clock)
        # A new transport is a new way to the hosts: what the breaker knew is forgotten.
        self._dispatcher = Dispatcher(on_new_transport=lambda: self.breaker.forget())
        self._retrying: tenacity.Retrying | None = None

    def exchange(self, transport: Transport, request: Request, deadline: Deadline) -> Exchange:
        """Send *request* until it succeeds, fails for good, or the deadline is near.

        Never raises for the exchange's own trouble: that is described in the returned
        Exchange. Raises what is raised into the caller from outside while it waits.
        """
        route = self._dispatcher.route  # what send_for() returns, without the call
        if route is not None and route[0] is transport:
            send = route[1]
        else:
            send = self._dispatcher.send_for(transport)
        host = origin_of(request.url)
        breaker = self.breaker
        admission = breaker.admit(host) if breaker.down else PASS
        if not isinstance(admission, Admission):
            return Exchange(None, 0, admission)
        outcomes: list[Response | TransportError] = []
        try:
            return self._attempts(send, request, host, deadline, outcomes)
        finally:
            if len(outcomes) != 1 or type(outcomes[0]) is not Response or admission.probe:
                self._settle(host, admission, outcomes)
            elif breaker.down:  # answered at once, the usual case: nothing else to learn
                breaker.settle(host, admission, True, "")
            outcomes.clear()

    def _attempts(
        self,
        send: Send,
        request: Request,
        host: str,
        deadline: Deadline,
        outcomes: list[Response | TransportError],
    ) -> Exchange:
        try:
            # tenacity costs 10-20 µs a call: a run's two pings through it would about
            # double the SDK's own cost of a run (benchmarks, "decorator overhead" and
            # "tenacity around one attempt"). So the first attempt, nearly always the
            # only one, is made before it; when it needs another, tenacity takes over and
            # the first outcome is replayed to it as its attempt 1, so that every wait,
            # every stop and the count of attempts are tenacity's.
            if deadline.expired:
                return Exchange(None, 0, "the ping deadline passed before an attempt")
            try:
                response = send(request, deadline, host)
            except TransportError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(response)
                if not is_retryable_status(response.status):
                    return Exchange(response, 1)
            attempt = functools.partial(self._attempt, outcomes, send, request, host)
            replay = _Replay(outcomes[-1], attempt)
            (self._retrying or self._build_retrying())(replay, deadline=deadline)
        except _OutOfTimeError:
            if not outcomes:
                return Exchange(None, 0, "the ping deadline passed before an attempt")
        except BrokenTransportError as broken:
            return Exchange(None, len(outcomes), f"transport raised {broken}")
        return _summary(outcomes)

    def _attempt(
        self,
        outcomes: list[Response | TransportError],
        send: Send,
        request: Request,
        host: str,
        *,
        deadline: Deadline,
    ) -> Response:
        if deadline.expired:
            raise _OutOfTimeError
        try:
            response = send(request, deadline, host)
        except TransportError as exc:
            outcomes.append(exc)
            raise
        outcomes.append(response)
        return response

    def _settle(
        self, host: str, admission: Admission, outcomes: list[Response | TransportError]
    ) -> None:
        """Tell the breaker whether the host answered (any HTTP answer counts), and free
        the errors: their tracebacks hold frames (ours, tenacity's) that hold the errors,
        a cycle that would keep their sockets and frames until the next collection."""
        from ._workers import NotStartedError

        answered = None
        cause = ""
        for outcome in outcomes:
            if not isinstance(outcome, TransportError):
                answered = True
                continue
            outcome.__traceback__ = None
            if not isinstance(outcome, NotStartedError) and not answered:
                # A send no worker began asked the host nothing: it tells nothing either.
                answered = False
                cause = str(outcome) or type(outcome).__name__
        self.breaker.settle(host, admission, answered, cause)

    # -- when to try again --------------------------------------------------------------

    def _build_retrying(self) -> tenacity.Retrying:
        import tenacity

        backoff = tenacity.wait_exponential(
            multiplier=BACKOFF_FIRST_SECONDS, max=BACKOFF_MAX_SECONDS
        ) + tenacity.wait_random(0, BACKOFF_JITTER_SECONDS)

        def wait(state: tenacity.RetryCallState) -> float:
            # The server may ask for a longer wait, never for a shorter one: a Retry-After
            # of 0 or in the past must not turn the retries into a request storm.
            step = backoff(state)
            future = state.outcome
            if future is not None and not future.failed:
                server_wait = retry_after_seconds(future.result())
                if server_wait is not None:
                    return max(server_wait, step)
            return step

        def stop(state: tenacity.RetryCallState) -> bool:
            deadline: Deadline = state.kwargs["deadline"]
            if state.attempt_number >= MAX_ATTEMPTS:
                return True
            return deadline.remaining() <= state.upcoming_sleep + MIN_ATTEMPT_SECONDS

        def note_retry(state: tenacity.RetryCallState) -> None:
            log.debug(
                "attempt %d failed; retrying in %.3f s",
                state.attempt_number,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
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
        self._retrying = retrying
        return retrying

    def close(self) -> None:
        """Stop worker threads (started again if the pinger is used again)."""
        self._dispatcher.close()


class _Replay:
    """Attempt 1 for tenacity: the outcome of the attempt already made; later attempts
    are real ones."""

    def __init__(self, first: Response | TransportError, attempt: Callable[..., Response]):
        self._first: Response | TransportError | None = first
        self._attempt = attempt

    def __call__(self, *, deadline: Deadline) -> Response:
        first, self._first = self._first, None
        if first is None:
            return self._attempt(deadline=deadline)
        if isinstance(first, TransportError):
            raise first
        return first


def _summary(outcomes: list[Response | TransportError]) -> Exchange:
    """The Exchange that the last outcome makes (kept out of frames its error refers to)."""
    last = outcomes[-1]
    if isinstance(last, Response):
        return Exchange(last, len(outcomes))
    return Exchange(None, len(outcomes), str(last) or type(last).__name__)
