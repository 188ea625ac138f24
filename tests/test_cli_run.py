"""``steadycron run``: the wrapped command behaves as if the wrapper were not there."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _cli_server import (
    STEADYCRON,
    TIMEOUT,
    FakeSteadyCron,
    ReceivedPing,
    dead_port,
    environment,
    python,
    serving,
    steadycron,
)

KEY = "nightly-db-backup"


@pytest.fixture
def fake() -> Iterator[FakeSteadyCron]:
    with serving() as fake:
        fake.add(KEY)
        yield fake


def run(
    fake_url: str, code: str, *options: str, key: str = KEY
) -> subprocess.CompletedProcess[bytes]:
    """``steadycron run KEY OPTIONS -- python -c CODE``."""
    return steadycron("run", key, "--timeout", TIMEOUT, *options, "--", *python(code), url=fake_url)


def outcome_of(fake: FakeSteadyCron) -> tuple[ReceivedPing, ReceivedPing]:
    """The start and outcome pings of the one run, checked to belong together."""
    start, outcome = fake.pings_for(KEY)
    assert start.state == "start"
    assert start.run_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", start.run_id)
    assert outcome.run_id == start.run_id
    return start, outcome


# -- exit codes and the pings that report them -----------------------------------------------


def test_success_sends_start_and_success_with_one_run_id(fake: FakeSteadyCron) -> None:
    result = run(fake.url, "print('backed up')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"backed up\n"
    assert result.stderr == b""
    _, outcome = outcome_of(fake)
    assert (outcome.state, outcome.body) == ("success", "")


def test_each_run_gets_a_fresh_run_id(fake: FakeSteadyCron) -> None:
    run(fake.url, "pass")
    run(fake.url, "pass")
    assert len({ping.run_id for ping in fake.pings_for(KEY)}) == 2


def test_non_zero_exit_is_a_fail_ping_and_the_wrapper_exit_code(fake: FakeSteadyCron) -> None:
    result = run(fake.url, "import sys; print('oops'); sys.exit(3)")
    assert result.returncode == 3
    assert result.stdout == b"oops\n"
    _, outcome = outcome_of(fake)
    assert outcome.state == "fail"
    assert outcome.body == "command exited with code 3"


def test_command_that_cannot_start_exits_127_after_a_fail_ping(
    fake: FakeSteadyCron, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-program")
    result = steadycron("run", KEY, "--timeout", TIMEOUT, "--", missing, url=fake.url)
    assert result.returncode == 127
    assert b"No such file or directory" in result.stderr
    _, outcome = outcome_of(fake)
    assert outcome.state == "fail"
    assert outcome.body.startswith("command not started: No such file or directory")
    assert "no-such-program" in outcome.body


def test_command_killed_by_a_signal_exits_128_plus_n(fake: FakeSteadyCron) -> None:
    result = run(fake.url, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert result.returncode == 128 + signal.SIGKILL
    _, outcome = outcome_of(fake)
    assert (outcome.state, outcome.body) == ("fail", "command killed by signal SIGKILL")


def test_no_shell_is_involved(fake: FakeSteadyCron) -> None:
    result = steadycron(
        "run", KEY, "--timeout", TIMEOUT, "--", *python("import sys; print(sys.argv[1:])"),
        "$HOME", "a b", "*", "--capture", url=fake.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"['$HOME', 'a b', '*', '--capture']\n"


def test_environment_tags_every_ping(fake: FakeSteadyCron) -> None:
    run(fake.url, "pass", "--environment", "staging")
    assert [ping.env for ping in fake.pings_for(KEY)] == ["staging", "staging"]


def test_missing_command_is_a_usage_error(fake: FakeSteadyCron) -> None:
    result = steadycron("run", KEY, url=fake.url)
    assert result.returncode == 2
    assert b"--" in result.stderr
    assert fake.pings == []


# -- output passes through ------------------------------------------------------------------

BINARY_WRITER = """
import sys
import time
sys.stdout.buffer.write(bytes(range(256)) + b"\\r\\nno newline at the end")
sys.stdout.flush()
sys.stderr.buffer.write(b"\\x00err\\xff partial")
sys.stderr.flush()
sys.stdout.buffer.write(b"\\xc3")
"""


@pytest.mark.parametrize("options", [(), ("--capture",)], ids=["inherited", "captured"])
def test_output_passes_through_byte_for_byte(
    fake: FakeSteadyCron, options: tuple[str, ...]
) -> None:
    result = run(fake.url, BINARY_WRITER, *options)
    assert result.returncode == 0
    assert result.stdout == bytes(range(256)) + b"\r\nno newline at the end\xc3"
    assert result.stderr == b"\x00err\xff partial"


def test_stdin_reaches_the_command(fake: FakeSteadyCron) -> None:
    shout = python("import sys; print(sys.stdin.read().upper())")
    result = subprocess.run(
        [*STEADYCRON, "run", KEY, "--timeout", TIMEOUT, "--capture", "--", *shout],
        input=b"rows\n",
        env=environment(fake.url),
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.stdout == b"ROWS\n\n"


PARTIAL_THEN_WAIT = """
import sys
import time
sys.stdout.buffer.write(b"partial")
sys.stdout.flush()
sys.stdin.readline()
sys.stdout.buffer.write(b" done")
"""


@contextmanager
def killed_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Close the pipes and make sure the process is gone, whatever the test did."""
    with process:
        try:
            yield process
        finally:
            process.kill()


def read_until(stream: int, wanted: bytes, seconds: float = 10) -> bytes:
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([stream], [], [], seconds)
        assert ready, f"no output within {seconds}s; got {seen!r}"
        chunk = os.read(stream, 4096)
        assert chunk, f"output ended; got {seen!r}"
        seen += chunk
    return seen


def test_captured_output_passes_through_live(fake: FakeSteadyCron) -> None:
    command = [*STEADYCRON, "run", KEY, "--timeout", TIMEOUT, "--capture", "--"]
    command += python(PARTIAL_THEN_WAIT)
    with killed_at_exit(
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment(fake.url)
        )
    ) as wrapper:
        assert wrapper.stdin is not None
        assert wrapper.stdout is not None
        # The command is still running (it waits for stdin) and has not ended its line.
        assert read_until(wrapper.stdout.fileno(), b"partial") == b"partial"
        wrapper.stdin.write(b"\n")
        wrapper.stdin.close()
        assert wrapper.stdout.read() == b" done"
        assert wrapper.wait(timeout=10) == 0


# -- the tail of the output in the fail message ----------------------------------------------

# Two pipes carry the output, so the tail's order across stdout and stderr is the order
# the chunks arrived; the pause lets the stdout burst drain as a real log would.
LOUD_FAILURE = """
import sys, time
for number in range(20_000):
    sys.stdout.write(f"line {number:06d} é€𝄞\\n")
sys.stdout.flush()
time.sleep(0.3)
sys.stderr.write("fatal: disk full\\n")
sys.exit(1)
"""


def test_capture_puts_the_tail_of_the_output_in_the_fail_message(fake: FakeSteadyCron) -> None:
    result = run(fake.url, LOUD_FAILURE, "--capture")
    assert result.returncode == 1
    assert result.stdout.count(b"\n") == 20_000
    assert result.stdout.endswith("line 019999 é€𝄞\n".encode())
    assert result.stderr == b"fatal: disk full\n"
    _, outcome = outcome_of(fake)
    assert outcome.state == "fail"
    assert len(outcome.body.encode("utf-8")) <= 1024
    heading, output = outcome.body.split("\n", 1)
    assert heading == "command exited with code 1; output ends with:"
    assert output.startswith("...")
    assert "line 019999 é€𝄞" in output
    assert output.endswith("fatal: disk full")


def test_short_captured_output_is_kept_whole(fake: FakeSteadyCron) -> None:
    code = "import sys, time; print('step 1'); time.sleep(0.2); sys.exit('step 2 failed')"
    result = run(fake.url, code, "--capture")
    assert result.returncode == 1
    _, outcome = outcome_of(fake)
    assert outcome.body == "command exited with code 1; output ends with:\nstep 1\nstep 2 failed"


def test_without_capture_the_fail_message_has_no_output(fake: FakeSteadyCron) -> None:
    run(fake.url, "import sys; print('secret-ish'); sys.exit(4)")
    _, outcome = outcome_of(fake)
    assert outcome.body == "command exited with code 4"


def test_captured_tail_is_bounded_in_memory() -> None:
    from steadycron.cli.process import TAIL_BYTES, _Tail

    tail = _Tail(TAIL_BYTES)
    for number in range(10_000):
        tail.add(b"%05d\n" % number)
    assert tail.value().endswith(b"09999\n")
    assert len(tail.value()) == TAIL_BYTES


@pytest.mark.parametrize("tail_size", [0, 1, 900, 1023, 1024, 1025, 5000])
@pytest.mark.parametrize("character", ["x", "é", "𝄞"])
def test_fail_message_always_fits_the_ping_body(tail_size: int, character: str) -> None:
    from steadycron.cli.process import Outcome
    from steadycron.cli.run import fail_message as _fail_message

    tail = (character * tail_size).encode()
    message = _fail_message(Outcome(1, tail=tail))
    assert len(message.encode("utf-8")) <= 1024
    assert message.startswith("command exited with code 1")
    if tail_size:
        assert message.endswith(character)


# -- signals sent to the wrapper reach the command -------------------------------------------

HANDLES_SIGNALS = """
import signal, sys, time
def stop(number, frame):
    print("command got", signal.Signals(number).name, flush=True)
    sys.exit(42)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
time.sleep(30)
sys.exit(0)
"""


def start_wrapper(fake: FakeSteadyCron, code: str, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*STEADYCRON, "run", KEY, "--timeout", TIMEOUT, *options, "--", *python(code)],
        stdout=subprocess.PIPE,
        env=environment(fake.url),
    )


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("options", [(), ("--capture",)], ids=["inherited", "captured"])
def test_signal_sent_to_the_wrapper_is_forwarded(
    fake: FakeSteadyCron, sent: signal.Signals, options: tuple[str, ...]
) -> None:
    with killed_at_exit(start_wrapper(fake, HANDLES_SIGNALS, *options)) as wrapper:
        assert wrapper.stdout is not None
        read_until(wrapper.stdout.fileno(), b"ready\n")
        wrapper.send_signal(sent)
        assert wrapper.wait(timeout=10) == 42
        assert wrapper.stdout.read() == f"command got {sent.name}\n".encode()
    _, outcome = outcome_of(fake)
    assert outcome.state == "fail"
    assert outcome.body.startswith(f"terminated by {sent.name}; command exited with code 42")


def test_command_ended_by_a_forwarded_signal_reports_it(fake: FakeSteadyCron) -> None:
    code = "import time; print('ready', flush=True); time.sleep(30)"
    with killed_at_exit(start_wrapper(fake, code)) as wrapper:
        assert wrapper.stdout is not None
        read_until(wrapper.stdout.fileno(), b"ready\n")
        wrapper.terminate()
        assert wrapper.wait(timeout=10) == 128 + signal.SIGTERM
    _, outcome = outcome_of(fake)
    expected = "terminated by SIGTERM; command killed by signal SIGTERM"
    assert (outcome.state, outcome.body) == ("fail", expected)


# A command that finishes its work despite SIGTERM, as a job with a clean shutdown would.
FINISHES_AFTER_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda number, frame: print("cleaning up", flush=True))
print("ready", flush=True)
time.sleep({seconds})
sys.exit({code})
"""


def test_sigterm_is_a_fail_whatever_the_exit_code_which_the_wrapper_keeps(
    fake: FakeSteadyCron,
) -> None:
    code = FINISHES_AFTER_SIGTERM.format(seconds=0.3, code=0)
    with killed_at_exit(start_wrapper(fake, code)) as wrapper:
        assert wrapper.stdout is not None
        read_until(wrapper.stdout.fileno(), b"ready\n")
        wrapper.terminate()
        assert wrapper.wait(timeout=10) == 0
    _, outcome = outcome_of(fake)
    assert (outcome.state, outcome.body) == (
        "fail",
        "terminated by SIGTERM; command exited with code 0",
    )


def test_a_command_outliving_its_grace_period_is_reported_before_the_kill(
    fake: FakeSteadyCron,
) -> None:
    """The pod's SIGKILL would come at the end of the grace period: the fail ping must
    already be out, while the command still runs, and be the run's only outcome."""
    code = FINISHES_AFTER_SIGTERM.format(seconds=2, code=5)
    options = ("--grace-period", "2.5")  # with --timeout 1: reported 0.5 s after SIGTERM
    with killed_at_exit(start_wrapper(fake, code, *options)) as wrapper:
        assert wrapper.stdout is not None
        read_until(wrapper.stdout.fileno(), b"ready\n")
        wrapper.terminate()
        signalled = time.monotonic()
        while len(fake.pings_for(KEY)) < 2 and time.monotonic() < signalled + 10:
            time.sleep(0.01)
        reported = time.monotonic() - signalled
        assert wrapper.poll() is None, "the command should still be running"
        assert wrapper.wait(timeout=15) == 5
    _, outcome = outcome_of(fake)
    assert outcome.state == "fail"
    assert outcome.body == (
        "terminated by SIGTERM; command still running near the end of its 2.5 s grace period"
    )
    assert reported >= 0.5, f"reported {reported:.2f} s after SIGTERM, before its time"


@pytest.mark.parametrize(
    ("given", "env", "expected"),
    [(None, None, 30.0), (None, "10", 10.0), (5.0, "10", 5.0), (0.0, None, 0.0)],
)
def test_grace_period_from_option_environment_or_default(
    monkeypatch: pytest.MonkeyPatch, given: float | None, env: str | None, expected: float
) -> None:
    from steadycron.cli.termination import grace_period

    if env is not None:
        monkeypatch.setenv("STEADYCRON_GRACE_PERIOD", env)
    assert grace_period(given) == expected


@pytest.mark.parametrize(("given", "env"), [(-1.0, None), (float("nan"), None), (None, "soon")])
def test_an_invalid_grace_period_says_what_to_write(
    monkeypatch: pytest.MonkeyPatch, given: float | None, env: str | None
) -> None:
    from steadycron.cli.termination import grace_period

    if env is not None:
        monkeypatch.setenv("STEADYCRON_GRACE_PERIOD", env)
    with pytest.raises(ValueError, match="terminationGracePeriodSeconds"):
        grace_period(given)


def test_signal_before_the_command_starts_means_it_never_does(
    fake: FakeSteadyCron, tmp_path: Path
) -> None:
    fake.resolve_delay = 0.5
    marker = tmp_path / "ran"
    command = [*STEADYCRON, "run", KEY, "--timeout", "2", "--"]
    command += python(f"open({str(marker)!r}, 'w').close()")
    with killed_at_exit(subprocess.Popen(command, env=environment(fake.url))) as wrapper:
        deadline = time.monotonic() + 10
        while not fake.resolves and time.monotonic() < deadline:
            time.sleep(0.01)
        wrapper.terminate()  # while the start ping waits for its answer
        assert wrapper.wait(timeout=10) == 128 + signal.SIGTERM
    assert not marker.exists()
    _, outcome = outcome_of(fake)
    assert outcome.state == "fail"
    assert outcome.body == "command not started: SIGTERM arrived before it could start"


# Blocked and collected one by one, so a second SIGINT cannot hide in the first.
COUNTS_SIGINT = """
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
print("ready", flush=True)
received = [signal.sigtimedwait({signal.SIGINT}, 10)]
while (info := signal.sigtimedwait({signal.SIGINT}, 0.5)) is not None:
    received.append(info)
print("SIGINT received", len(received), "time(s)", flush=True)
"""

# Make the pseudo-terminal the controlling terminal of a new session, then become the
# wrapper: Ctrl-C typed there reaches the whole foreground group, as in a real shell.
ON_A_TERMINAL = """
import fcntl, os, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def test_ctrl_c_at_a_terminal_reaches_the_command_once(fake: FakeSteadyCron) -> None:
    controller, terminal = os.openpty()
    command = [*python(ON_A_TERMINAL), *STEADYCRON[1:], "run", KEY, "--timeout", TIMEOUT, "--"]
    command += python(COUNTS_SIGINT)
    try:
        process = subprocess.Popen(
            command,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            start_new_session=True,
            env=environment(fake.url),
        )
        with killed_at_exit(process):
            os.close(terminal)
            read_until(controller, b"ready")
            os.write(controller, b"\x03")
            assert b"SIGINT received 1 time(s)" in read_until(controller, b"time(s)")
            assert process.wait(timeout=10) == 0
    finally:
        os.close(controller)


# -- monitoring trouble never changes what the command does ---------------------------------


def test_unreachable_server_the_command_still_runs_with_its_exit_code() -> None:
    with dead_port() as dead:
        result = steadycron(
            "run", KEY, "--timeout", "0.5", "--", *python("import sys; print('ran'); sys.exit(3)"),
            url=dead,
        )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout == b"ran\n"
    assert b"warning" in result.stderr
    assert b"Traceback" not in result.stderr


def test_unreachable_server_with_strict_still_runs_the_command() -> None:
    with dead_port() as dead:
        result = steadycron(
            "run", KEY, "--strict", "--timeout", "0.5", "--", *python("print('ran')"), url=dead
        )
    assert result.returncode == 0
    assert result.stdout == b"ran\n"


@pytest.mark.parametrize("outage", ["refused", "503"])
def test_an_unreachable_api_costs_a_run_one_resolution_at_most(
    fake: FakeSteadyCron, outage: str, tmp_path: Path
) -> None:
    """The outcome ping does not resolve the key again: one ping budget for the run."""
    started_at = tmp_path / "started"
    code = f"import pathlib, time; pathlib.Path({str(started_at)!r}).write_text(str(time.time()))"
    fake.api_unavailable = True
    began = time.monotonic()
    if outage == "refused":
        with dead_port() as dead:
            result = steadycron("run", KEY, "--timeout", "1", "--", *python(code), url=dead)
    else:
        result = steadycron("run", KEY, "--timeout", "1", "--", *python(code), url=fake.url)
        assert fake.resolves == [KEY]  # asked once (and the 503 said not to ask again soon)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert started_at.exists()
    # One budget (1 s) for the resolution before the command, none after it; the rest
    # is starting two Python processes on a loaded machine.
    assert took < 1 + 1.5, took
    assert fake.pings == []


def test_misconfigured_key_the_command_still_runs(fake: FakeSteadyCron) -> None:
    result = run(fake.url, "import sys; print('ran'); sys.exit(5)", key="no-such-job")
    assert result.returncode == 5
    assert result.stdout == b"ran\n"
    assert b"no monitor has this key" in result.stderr
    assert b"without monitoring" in result.stderr
    assert fake.pings == []


def test_misconfigured_key_with_strict_exits_2_before_running(
    fake: FakeSteadyCron, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()"
    result = run(fake.url, code, "--strict", key="no-such-job")
    assert result.returncode == 2
    assert b"no monitor has this key" in result.stderr
    assert not marker.exists()


def test_missing_api_key_the_command_still_runs(fake: FakeSteadyCron) -> None:
    env = environment(fake.url)
    del env["STEADYCRON_API_KEY"]
    result = subprocess.run(
        [*STEADYCRON, "run", KEY, "--", *python("print('ran')")],
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == b"ran\n"
    assert b"STEADYCRON_API_KEY" in result.stderr


@pytest.mark.parametrize(
    ("options", "expected_exit"), [((), 7), (("--strict",), 2)], ids=["lenient", "strict"]
)
def test_invalid_setting(options: tuple[str, ...], expected_exit: int) -> None:
    result = steadycron(
        "run", KEY, "--api-url", "not a url", *options, "--",
        *python("import sys; sys.exit(7)"),
    )  # fmt: skip
    assert result.returncode == expected_exit
    assert b"api_url" in result.stderr
    assert b"Traceback" not in result.stderr
