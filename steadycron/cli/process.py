"""Running a command on behalf of ``steadycron run`` without changing what it does.

The wrapped command sees the same stdin, stdout, stderr and signals it would see without
the wrapper: output passes through byte for byte as it is written, SIGINT and SIGTERM sent
to the wrapper reach the command, and the command's exit status is handed back so that
the wrapper can exit with it. Only what the fail ping needs is kept: the exit status and,
when asked, a bounded tail of the output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import attrs

#: Exit code of a command that could not be started, as shells report it.
EXIT_NOT_STARTED = 127
#: Signals a supervisor (cron, systemd, a terminal) uses to stop the wrapper.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Output kept for the fail message: enough for 1024 bytes of text after decoding.
TAIL_BYTES = 4096
#: How long to wait for output still in the pipes after the command has exited; a
#: background process that inherited the pipes must not keep the wrapper alive.
DRAIN_SECONDS = 2.0
_CHUNK = 64 * 1024


def signal_name(number: int) -> str:
    """Return ``SIGTERM`` for 15, or ``signal 42`` for a number without a name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@attrs.frozen
class Outcome:
    """How the command ended."""

    #: What the wrapper exits with: the command's code, 128+N for signal N, or 127.
    exit_code: int
    #: The signal that ended the command, if one did.
    signal: int | None = None
    #: Why the command could not be started, if it could not.
    start_error: str | None = None
    #: The last bytes of stdout and stderr together (only with capturing).
    tail: bytes = b""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        """Say in a few words how the command ended, for the fail ping and stderr."""
        if self.start_error is not None:
            return f"command not started: {self.start_error}"
        if self.signal is not None:
            return f"command killed by signal {signal_name(self.signal)}"
        return f"command exited with code {self.exit_code}"


class SignalForwarder:
    """Holds SIGINT/SIGTERM for the command while it runs.

    A signal that arrives before the command has started is remembered in ``received``
    (the command is then not started at all); one that arrives while it is being
    started is passed on as soon as it exists; later ones are passed on at once.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        #: Told of every signal received, after it was passed on.
        self.on_signal: Callable[[int], object] | None = None
        self._pending: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None

    def attach(self, process: subprocess.Popen[bytes] | None) -> None:
        self._process = process
        if process is not None:
            pending, self._pending = self._pending, []
            for number in pending:
                self._forward(process, number)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.received.append(number)
        process = self._process
        if process is None:
            self._pending.append(number)
        else:
            self._forward(process, number)
        if self.on_signal is not None:
            self.on_signal(number)

    @staticmethod
    def _forward(process: subprocess.Popen[bytes], number: int) -> None:
        # send_signal() checks that the process has not been reaped, so a recycled pid
        # is never hit.
        if not _sent_by_terminal(number):
            process.send_signal(number)


def _sent_by_terminal(number: int) -> bool:
    """Whether *number* is a Ctrl-C typed at our terminal, which the command got too.

    The terminal signals its whole foreground process group, command included; passing
    the signal on as well would interrupt the command's own clean-up a second time.
    """
    if number != signal.SIGINT:
        return False
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


@contextmanager
def forwarding_signals() -> Iterator[SignalForwarder]:
    """Install a :class:`SignalForwarder` for the duration of the block."""
    forwarder = SignalForwarder()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for number in FORWARDED_SIGNALS:
            previous[number] = signal.signal(number, forwarder._handle)
    try:
        yield forwarder
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Tail:
    """The last ``limit`` bytes written by the command, shared by both pumps."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            del self._data[: -self._limit]

    def value(self) -> bytes:
        with self._lock:
            return bytes(self._data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _pump(source: int, destination: int, tail: _Tail) -> None:
    """Copy one pipe to our own stream as soon as bytes arrive, keeping the tail."""
    passing_through = True
    while chunk := os.read(source, _CHUNK):
        if passing_through:
            try:
                _write_all(destination, chunk)
            except OSError:
                # Our reader went away; keep draining so the command never blocks.
                passing_through = False
        tail.add(chunk)


def run_command(
    argv: Sequence[str],
    forwarder: SignalForwarder,
    *,
    capture: bool = False,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run *argv* (no shell) to completion and report how it ended.

    A signal *forwarder* has already received means the wrapper is being stopped: the
    command is then not started.

    Without *capture* the command writes straight to our stdout and stderr. With it,
    both go through pipes that two threads copy to ours unchanged while keeping the
    last :data:`TAIL_BYTES` for the fail message. *env* replaces the environment the
    command inherits. Two pipes keep the streams apart, so
    in the tail, lines written to both at nearly the same moment appear in the order
    they were read, which may differ from the order they were written.
    """
    if forwarder.received:
        number = forwarder.received[0]
        reason = f"{signal_name(number)} arrived before it could start"
        return Outcome(128 + number, signal=number, start_error=reason)
    pipe = subprocess.PIPE if capture else None
    try:
        process = subprocess.Popen(argv, stdout=pipe, stderr=pipe, env=env)  # noqa: S603
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Outcome(EXIT_NOT_STARTED, start_error=f"{reason}: {argv[0]!r}")
    forwarder.attach(process)

    tail = _Tail(TAIL_BYTES)
    pumps = []
    for source, destination in ((process.stdout, 1), (process.stderr, 2)):
        if source is not None:
            pump = threading.Thread(
                target=_pump, args=(source.fileno(), destination, tail), daemon=True
            )
            pump.start()
            pumps.append(pump)

    try:
        returncode = process.wait()
    finally:
        forwarder.attach(None)
    for pump in pumps:
        pump.join(DRAIN_SECONDS)

    if returncode < 0:
        return Outcome(128 - returncode, signal=-returncode, tail=tail.value())
    return Outcome(returncode, tail=tail.value())
