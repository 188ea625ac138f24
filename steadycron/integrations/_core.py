"""What every framework integration shares: a run opened in one framework hook and closed
in another, pings that never raise into the framework, and a misconfigured key reported
once per key and process instead of on every task.

The frameworks call their hooks (signals, listeners, wrappers) from code that must keep
working whatever monitoring does, so every method here swallows what its own work raises
(except ``KeyboardInterrupt`` and ``SystemExit``, which are the host's business).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .._exceptions import SteadyCronError
from .._run import _outcome

if TYPE_CHECKING:
    from .._client import State, SteadyCron

log = logging.getLogger("steadycron")


def new_run_id() -> str:
    """A fresh run id, as every ping of one run carries it (PROTOCOL.md: 32 hex digits)."""
    return uuid.uuid4().hex


class Pings:
    """Pings on behalf of a framework: never raising, misconfiguration logged once.

    Args:
        client: the client to ping through; ``None`` looks the default client up at each
            ping, so settings made after the integration was installed count.
    """

    def __init__(self, client: SteadyCron | None = None) -> None:
        self._client = client
        self._reported: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def client(self) -> SteadyCron:
        """The client pings go through now."""
        if self._client is not None:
            return self._client
        from .._default import default_client

        return default_client()

    def start(self, key: str, run_id: str) -> bool:
        """Open a run; False when the key cannot be pinged (already logged)."""
        return self.send(key, "start", run_id)

    def succeed(self, key: str, run_id: str) -> None:
        """Close a run as a success."""
        self.send(key, "success", run_id)

    def fail(
        self,
        key: str,
        run_id: str | None,
        error: BaseException | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        """Close a run (or report one that never ran) as a failure.

        Args:
            error: the exception the job ended with; its type and text become the message
                when ``capture_errors`` is on.
            reason: a message sent whatever ``capture_errors`` says, for failures the
                framework itself decided (``missed: ...``, ``revoked``, ``time limit``).
        """
        message = reason
        if message is None and error is not None:
            capture = self._guard(lambda: self.client().config.capture_errors, key) is True
            message = _outcome(error, capture)[1]
        self.send(key, "fail", run_id, message)

    def finish(self, key: str, run_id: str, error: BaseException | None = None) -> None:
        """Close a run by the run rules: no error, or ``SystemExit`` with code 0 or None, is
        a success; anything else a failure."""
        if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):
            self.succeed(key, run_id)
        else:
            self.fail(key, run_id, error)

    @contextmanager
    def run(self, key: str, run_id: str | None = None) -> Iterator[str]:
        """Track the block as one run of *key* and yield its run id.

        The block's exception leaves unchanged; when the key cannot be pinged the block
        still runs, unmonitored.
        """
        run_id = run_id or new_run_id()
        opened = self.start(key, run_id)
        try:
            yield run_id
        except BaseException as exc:
            if opened:
                self.finish(key, run_id, exc)
            raise
        if opened:
            self.succeed(key, run_id)

    def send(self, key: str, state: State, run_id: str | None, message: str | None = None) -> bool:
        """One ping; True when it was handed to the client without a misconfiguration."""
        sent = self._guard(lambda: self.client().ping(key, state, message, run_id=run_id), key)
        return sent is not _FAILED

    def _guard(self, work: Callable[[], object], key: str) -> object:
        try:
            result = work()
        except SteadyCronError as exc:
            self._report_once(key, exc)
            return _FAILED
        except Exception as exc:  # a broken integration must never break the framework
            log.warning("steadycron: ping for %r skipped: %s", key, type(exc).__name__)
            return _FAILED
        return True if result is None else result

    def _report_once(self, key: str, error: SteadyCronError) -> None:
        marker = (os.getpid(), key)
        with self._lock:
            if marker in self._reported:
                return
            self._reported.add(marker)
        log.error("monitor key %r cannot be pinged; its runs go unmonitored: %s", key, error)


_FAILED = object()
