"""What one ping says, and what came of sending it.

Runs, manual pings, the module-level functions and the command line all describe a ping
with a :class:`Ping` and hand it to :meth:`SteadyCron.send <steadycron.SteadyCron.send>`,
the one path a ping takes. Both values are tuples underneath: a tracked run makes four of
them, and a tuple costs half what a validated record would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple, cast

from ._config import check_key, optional_text
from ._protocol import STATES
from ._report import Values, check_report

State = Literal["start", "success", "fail"]


def check_state(state: object) -> State:
    """Refuse an unknown ping state before anything is sent."""
    if state not in STATES:
        raise ValueError(f"state must be 'start', 'success' or 'fail', not {state!r}")
    return cast(State, state)


class Ping(NamedTuple):
    """One ping: which monitor, which state, an optional message, the run it belongs to,
    and that run's report (checked values; an outcome's, for an ``agent`` monitor).

    The token it travels to is not part of it: that is the client's business (and a
    secret).
    """

    key: str
    state: State = "success"
    message: str | None = None
    run_id: str | None = None
    report: Values | None = None

    @classmethod
    def checked(
        cls,
        key: object,
        state: object = "success",
        message: object = None,
        run_id: object = None,
        report: Mapping[str, object] | None = None,
    ) -> Ping:
        """A ping from a caller's arguments; TypeError/ValueError for what cannot be sent."""
        if message is not None and not isinstance(message, str):
            # Not optional_text: a message may hold anything; what cannot travel becomes "?".
            raise TypeError(f"message must be a str or None, not {type(message).__name__}")
        checked_key, checked_state = check_key(key), check_state(state)
        checked_run_id = optional_text("run_id", run_id)
        checked_report = None if report is None else check_report(report)
        if checked_report is not None and checked_state == "start":
            raise ValueError("a report goes with a run's outcome (success or fail), not its start")
        return cls(checked_key, checked_state, message, checked_run_id, checked_report)


class Receipt(NamedTuple):
    """What came of one :meth:`~steadycron.SteadyCron.send`.

    ``token`` is the ping token the ping went to, so that a run's outcome goes where its
    start went; None when there was none to be had (an outage with nothing cached: the
    ping was not attempted). Its ``repr`` never shows the token.
    """

    delivered: bool
    token: str | None

    def __repr__(self) -> str:
        token = None if self.token is None else "***"
        return f"Receipt(delivered={self.delivered!r}, token={token})"


#: The receipt of a ping that had no token to go to.
UNPINGED = Receipt(delivered=False, token=None)
