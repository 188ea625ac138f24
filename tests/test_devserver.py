"""The dev server answers like SteadyCron over real loopback sockets, and says what it saw."""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from steadycron.cli import main as cli_main
from steadycron.cli.devserver import (
    DevServer,
    ReceivedPing,
    Timeline,
    add_arguments,
    dev_job_id,
    dev_token,
    format_duration,
    format_ping,
    main,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MONITORS = {
    "nightly-db-backup": "heartbeat",
    "warm-search-index": "http",
    "fleet-agent": "agent",
}
AUTH = {"Authorization": "Bearer sc_ro_anything"}
RUN_ID = "0123456789abcdef0123456789abcdef"


def call(
    url: str,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def call_json(url: str, method: str, target: str, **kwargs: object) -> tuple[int, object]:
    status, body = call(url, method, target, **kwargs)  # type: ignore[arg-type]
    return status, json.loads(body)


@pytest.fixture
def server() -> Iterator[DevServer]:
    with DevServer(MONITORS, ambiguous=["shared-key"]) as running:
        yield running


def token(key: str = "nightly-db-backup") -> str:
    return dev_token(key)


# -- resolve ------------------------------------------------------------------------------


def test_resolve_heartbeat_answers_key_job_kind_and_token(server: DevServer) -> None:
    status, body = call_json(
        server.url, "GET", "/api/monitors/resolve?key=nightly-db-backup", headers=AUTH
    )

    assert status == 200
    assert body == {
        "key": "nightly-db-backup",
        "job_id": dev_job_id("nightly-db-backup"),
        "kind": "heartbeat",
        "ping_token": server.token_for("nightly-db-backup"),
    }


@pytest.mark.parametrize(("key", "kind"), [("warm-search-index", "http"), ("fleet-agent", "agent")])
def test_resolve_other_kinds_answers_200_with_that_kind(
    server: DevServer, key: str, kind: str
) -> None:
    status, body = call_json(server.url, "GET", f"/api/monitors/resolve?key={key}", headers=AUTH)

    assert status == 200
    assert isinstance(body, dict)
    assert body["kind"] == kind


def test_tokens_are_stable_url_safe_and_distinct() -> None:
    tokens = {dev_token(key) for key in MONITORS}

    assert len(tokens) == len(MONITORS)
    assert dev_token("nightly-db-backup") == dev_token("nightly-db-backup")
    for value in tokens:
        assert len(value) == 22
        assert value.replace("-", "").replace("_", "").isalnum()


def test_token_for_an_unknown_key_is_a_key_error(server: DevServer) -> None:
    with pytest.raises(KeyError):
        server.token_for("nope")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic xyz"},
        {"Authorization": "sc_ro_no_scheme"},
    ],
)
def test_resolve_without_a_bearer_key_is_401(server: DevServer, headers: dict[str, str]) -> None:
    status, body = call_json(
        server.url, "GET", "/api/monitors/resolve?key=nightly-db-backup", headers=headers
    )

    assert status == 401
    assert isinstance(body, dict)
    assert body["error"] == "unauthorized"
    assert "API key" in body["message"]


def test_authorization_header_and_scheme_are_case_insensitive(server: DevServer) -> None:
    status, _ = call(
        server.url,
        "GET",
        "/api/monitors/resolve?key=nightly-db-backup",
        headers={"authorization": "bearer sc_ro_lowercase"},
    )

    assert status == 200


def test_a_fixed_api_key_refuses_any_other() -> None:
    with DevServer(MONITORS, api_key="sc_ro_right") as fixed:
        target = "/api/monitors/resolve?key=nightly-db-backup"
        wrong, _ = call(fixed.url, "GET", target, headers={"Authorization": "Bearer sc_ro_wrong"})
        right, _ = call(fixed.url, "GET", target, headers={"Authorization": "Bearer sc_ro_right"})

    assert (wrong, right) == (401, 200)


def test_resolve_unknown_key_is_404_with_an_error_body(server: DevServer) -> None:
    status, body = call_json(server.url, "GET", "/api/monitors/resolve?key=no-such", headers=AUTH)

    assert status == 404
    assert body == {"error": "not_found", "message": "no job with the key 'no-such'"}


def test_resolve_ambiguous_key_is_409(server: DevServer) -> None:
    status, body = call_json(
        server.url, "GET", "/api/monitors/resolve?key=shared-key", headers=AUTH
    )

    assert status == 409
    assert isinstance(body, dict)
    assert body["error"] == "ambiguous_key"


def test_resolve_decodes_the_key() -> None:
    with DevServer({"a key/with?odd&chars": "heartbeat"}) as odd:
        status, body = call_json(
            odd.url, "GET", "/api/monitors/resolve?key=a%20key%2Fwith%3Fodd%26chars", headers=AUTH
        )

    assert status == 200
    assert isinstance(body, dict)
    assert body["key"] == "a key/with?odd&chars"


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/api/monitors/resolve", 400),
        ("GET", "/api/monitors/resolve?key=", 400),
        ("POST", "/api/monitors/resolve?key=nightly-db-backup", 405),
        ("GET", "/api/monitors", 404),
    ],
)
def test_other_api_requests_get_json_errors(
    server: DevServer, method: str, target: str, status: int
) -> None:
    answered, body = call_json(server.url, method, target, headers=AUTH)

    assert answered == status
    assert isinstance(body, dict)
    assert set(body) == {"error", "message"}


# -- pings --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    ("suffix", "state"),
    [("", "success"), ("/start", "start"), ("/success", "success"), ("/fail", "fail")],
)
def test_each_ping_path_is_answered_and_recorded(
    server: DevServer, method: str, suffix: str, state: str
) -> None:
    status, body = call(server.url, method, f"/{token()}{suffix}")

    assert (status, body) == (200, b"OK")
    [ping] = server.pings
    assert (ping.key, ping.state) == ("nightly-db-backup", state)
    assert (ping.environment, ping.run_id, ping.message, ping.duration) == (None, None, None, None)


def test_ping_records_environment_run_id_and_utf8_message(server: DevServer) -> None:
    before = datetime.now(timezone.utc)
    status, _ = call(
        server.url,
        "POST",
        f"/{token()}/fail?env=production&run_id={RUN_ID}",
        headers={"Content-Type": "text/plain; charset=utf-8"},
        body="disk full: /var ✗\nsecond line".encode(),
    )

    assert status == 200
    [ping] = server.pings
    assert ping.environment == "production"
    assert ping.run_id == RUN_ID
    assert ping.message == "disk full: /var ✗\nsecond line"
    assert ping.at.tzinfo is not None
    assert ping.at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= ping.at <= datetime.now(timezone.utc)


def test_outcome_is_paired_with_its_start_by_run_id(server: DevServer) -> None:
    call(server.url, "POST", f"/{token()}/start?run_id={RUN_ID}")
    call(server.url, "POST", f"/{token()}/start?run_id=other")
    call(server.url, "POST", f"/{token()}?run_id={RUN_ID}")
    call(server.url, "POST", f"/{token('warm-search-index')}?run_id=other")

    start, _, success, unpaired = server.pings
    assert start.duration is None
    assert success.duration is not None
    assert success.duration == (success.at - start.at).total_seconds()
    assert unpaired.duration is None  # same run id, different key


def test_a_ping_token_may_be_percent_encoded(server: DevServer) -> None:
    encoded = "".join(f"%{byte:02X}" for byte in token().encode())

    status, _ = call(server.url, "POST", f"/{encoded}/start")

    assert status == 200
    assert [ping.state for ping in server.pings] == ["start"]


@pytest.mark.parametrize(
    "target",
    ["/unknownToken123", "/unknownToken123/start", f"/{token()}/log", f"/{token()}/start/extra"],
)
def test_unknown_tokens_and_paths_are_404_and_not_recorded(server: DevServer, target: str) -> None:
    status, _ = call(server.url, "POST", target)

    assert status == 404
    assert server.pings == []


def test_other_methods_on_a_ping_path_are_refused(server: DevServer) -> None:
    status, _ = call(server.url, "PUT", f"/{token()}")

    assert status == 501
    assert server.pings == []


def test_on_ping_sees_each_ping_before_it_is_answered() -> None:
    seen: list[ReceivedPing] = []
    with DevServer(MONITORS, on_ping=seen.append) as watched:
        call(watched.url, "POST", f"/{token()}/start?env=staging")

        assert seen == watched.pings
        assert seen[0].environment == "staging"


def test_pings_endpoint_lists_what_was_received_as_json(server: DevServer) -> None:
    call(server.url, "POST", f"/{token()}/start?env=ci&run_id={RUN_ID}")
    call(server.url, "POST", f"/{token()}/fail?env=ci&run_id={RUN_ID}", body=b"boom")
    call(server.url, "GET", f"/{token('fleet-agent')}/fail")

    status, body = call_json(server.url, "GET", "/api/dev/pings")
    _, filtered = call_json(server.url, "GET", "/api/dev/pings?key=fleet-agent")

    assert status == 200
    assert isinstance(body, dict)
    listed = body["pings"]
    assert [(p["key"], p["state"]) for p in listed] == [
        ("nightly-db-backup", "start"),
        ("nightly-db-backup", "fail"),
        ("fleet-agent", "fail"),
    ]
    assert listed[1]["environment"] == "ci"
    assert listed[1]["run_id"] == RUN_ID
    assert listed[1]["message"] == "boom"
    assert isinstance(listed[1]["duration"], float)
    assert datetime.fromisoformat(listed[1]["time"]).utcoffset() == timedelta(0)
    assert isinstance(filtered, dict)
    assert [p["key"] for p in filtered["pings"]] == ["fleet-agent"]


def test_pings_endpoint_is_read_only(server: DevServer) -> None:
    status, _ = call(server.url, "POST", "/api/dev/pings")

    assert status == 405


def test_index_page_lists_monitors_and_tokens(server: DevServer) -> None:
    status, body = call(server.url, "GET", "/")

    assert status == 200
    text = body.decode()
    assert f"nightly-db-backup  heartbeat  /{token()}" in text
    assert "/api/dev/pings" in text


def test_keep_alive_connection_serves_several_requests(server: DevServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for suffix in ("/start", ""):
            connection.request("POST", f"/{token()}{suffix}")
            assert connection.getresponse().read() == b"OK"
    finally:
        connection.close()

    assert [ping.state for ping in server.pings] == ["start", "success"]


def test_bad_content_length_is_refused(server: DevServer) -> None:
    status, _ = call(server.url, "POST", f"/{token()}", headers={"Content-Length": "lots"})

    assert status == 400
    assert server.pings == []


# -- faults -------------------------------------------------------------------------------


def test_error_rate_one_answers_every_request_503_and_records_nothing() -> None:
    notes: list[str] = []
    with DevServer(MONITORS, error_rate=1.0, on_note=notes.append) as faulty:
        ping_status, _ = call(faulty.url, "POST", f"/{token()}")
        resolve_status, body = call_json(
            faulty.url, "GET", "/api/monitors/resolve?key=nightly-db-backup", headers=AUTH
        )
        listing_status, _ = call(faulty.url, "GET", "/api/dev/pings")
        assert faulty.pings == []

    assert (ping_status, resolve_status, listing_status) == (503, 503, 200)
    assert isinstance(body, dict)
    assert body["error"] == "unavailable"
    assert any("503" in note for note in notes)
    assert all(token() not in note for note in notes)


def test_drop_rate_one_closes_connections_without_an_answer() -> None:
    notes: list[str] = []
    with DevServer(MONITORS, drop_rate=1.0, on_note=notes.append) as dropping:
        with pytest.raises(ConnectionResetError):
            call(dropping.url, "POST", f"/{token()}/start")
        listing_status, _ = call(dropping.url, "GET", "/api/dev/pings")
        assert dropping.pings == []

    assert listing_status == 200
    assert any("dropped" in note for note in notes)


def test_latency_delays_the_answer() -> None:
    with DevServer(MONITORS, latency=0.3) as slow:
        started = time.monotonic()
        status, _ = call(slow.url, "POST", f"/{token()}")
        elapsed = time.monotonic() - started

    assert status == 200
    assert elapsed >= 0.29


def test_faults_can_be_switched_on_while_running(server: DevServer) -> None:
    before, _ = call(server.url, "POST", f"/{token()}")
    server.error_rate = 1.0
    during, _ = call(server.url, "POST", f"/{token()}")

    assert (before, during) == (200, 503)


def test_partial_rates_mix_answers() -> None:
    with DevServer(MONITORS, error_rate=0.5, rng=random.Random(7)) as flaky:
        statuses = {call(flaky.url, "POST", f"/{token()}")[0] for _ in range(30)}

    assert statuses == {200, 503}


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"latency": -1.0}, "latency"),
        ({"latency": float("inf")}, "latency"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_server_refuses_bad_settings(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DevServer(MONITORS, **kwargs)  # type: ignore[arg-type]


def test_server_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="cron"):
        DevServer({"x": "cron"})


# -- life cycle ---------------------------------------------------------------------------


def test_stop_closes_the_port_and_is_idempotent() -> None:
    running = DevServer(MONITORS).start()
    port = running.port
    keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    keep_alive.request("GET", "/api/dev/pings")
    assert keep_alive.getresponse().read() == b'{"pings": []}'
    running.stop()
    running.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert keep_alive.sock is not None
    assert keep_alive.sock.recv(1) == b""  # closed by the server, not left hanging
    keep_alive.close()
    with pytest.raises(RuntimeError):
        _ = running.url


def test_start_twice_is_an_error(server: DevServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_url_names_the_loopback_address(server: DevServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.port > 0
    assert server.monitors == MONITORS


def test_taken_port_raises_os_error(server: DevServer) -> None:
    with pytest.raises(OSError, match="in use"):
        DevServer({}, port=server.port).start()


def test_the_sdk_runs_a_job_against_the_server(server: DevServer) -> None:
    from steadycron import Config, SteadyCron

    config = Config(api_key="sc_ro_dev", api_url=server.url, ping_url=server.url, environment="dev")
    with SteadyCron(config) as client:

        @client.job("nightly-db-backup")
        def backup() -> str:
            return "done"

        assert backup() == "done"

    start, success = server.pings
    assert (start.state, success.state) == ("start", "success")
    assert start.run_id == success.run_id
    assert start.run_id is not None
    assert success.environment == "dev"


# -- the timeline -------------------------------------------------------------------------


def ping_at(**changes: object) -> ReceivedPing:
    fields: dict[str, object] = {
        "key": "nightly-db-backup",
        "state": "fail",
        "environment": "production",
        "run_id": RUN_ID,
        "message": "disk full\nTraceback ...",
        "at": datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc),
        "duration": 4.25,
    }
    fields.update(changes)
    return ReceivedPing(**fields)  # type: ignore[arg-type]


def test_timeline_line_shows_time_key_state_env_run_duration_and_message() -> None:
    ping = ping_at(message="disk full")
    local_time = ping.at.astimezone().strftime("%H:%M:%S.678")

    line = format_ping(ping, key_width=20)

    assert line == (
        f"{local_time}  nightly-db-backup     fail     "
        'env=production  run=01234567  took 4.2s  "disk full"'
    )


def test_timeline_shows_a_multi_line_message_whole_under_the_ping_line() -> None:
    ping = ping_at()
    local_time = ping.at.astimezone().strftime("%H:%M:%S.678")

    lines = format_ping(ping, key_width=20).split("\n")

    assert lines == [
        f"{local_time}  nightly-db-backup     fail     env=production  run=01234567  took 4.2s",
        "              disk full",
        "              Traceback ...",
    ]


def test_timeline_line_leaves_out_what_the_ping_lacks() -> None:
    line = format_ping(
        ping_at(state="success", environment=None, run_id=None, message=None, duration=None)
    )

    assert line.endswith("  nightly-db-backup  success")


def test_timeline_shows_long_messages_whole_and_can_color_states() -> None:
    first, *rest = format_ping(ping_at(message="x" * 300), color=True).split("\n")

    assert rest == [" " * 14 + "x" * 300]
    assert "\x1b[31mfail" in first


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.085, "85ms"), (4.25, "4.2s"), (185, "3m05s"), (3720, "1h02m")]
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_json_timeline_prints_one_object_per_ping() -> None:
    stream = io.StringIO()
    timeline = Timeline(stream, as_json=True, notes=io.StringIO())

    timeline.ping(ping_at())
    timeline.note("resolve nightly-db-backup -> heartbeat")

    [line] = stream.getvalue().splitlines()
    assert json.loads(line) == {
        "time": "2030-01-02T03:04:05.678+00:00",
        "key": "nightly-db-backup",
        "state": "fail",
        "environment": "production",
        "run_id": RUN_ID,
        "message": "disk full\nTraceback ...",
        "duration": 4.25,
        "report": None,
    }


def test_human_timeline_prints_notes_with_a_time() -> None:
    stream = io.StringIO()

    Timeline(stream).note("resolve x -> 404 unknown key")

    assert stream.getvalue().endswith("  resolve x -> 404 unknown key\n")


def test_server_notes_resolves_and_unknown_tokens() -> None:
    notes: list[str] = []
    with DevServer(MONITORS, on_note=notes.append) as noted:
        call(noted.url, "GET", "/api/monitors/resolve?key=nightly-db-backup", headers=AUTH)
        call(noted.url, "GET", "/api/monitors/resolve?key=nope", headers=AUTH)
        call(noted.url, "GET", "/api/monitors/resolve?key=nope")
        call(noted.url, "POST", "/abcdefghijklmnop/start")

    assert notes == [
        "resolve nightly-db-backup -> heartbeat",
        "resolve nope -> 404 unknown key",
        "resolve refused (401): no API key; send Authorization: Bearer <key>",
        "ping to an unknown token (/abcdef.../start) -> 404",
    ]


# -- the command line ---------------------------------------------------------------------


def test_the_command_line_parses_dev_server_options(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="steadycron dev-server")
    add_arguments(parser)
    args = parser.parse_args(["m.yaml", "--monitor", "a", "--monitor", "b", "--port", "0"])
    assert (args.manifests, args.monitor, args.port, args.json) == (
        ["m.yaml"],
        ["a", "b"],
        0,
        False,
    )
    with pytest.raises(SystemExit) as exited:
        cli_main(["dev-server", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: steadycron dev-server")
    assert "examples:" in help_text


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--error-rate", "1.5"], "argument --error-rate: must be between 0 and 1"),
        (["--drop-rate", "half"], "argument --drop-rate: expected a number from 0 to 1"),
        (["--latency", "-2"], "argument --latency: must be a number of seconds >= 0"),
        (["--latency", "nan"], "argument --latency: must be a number of seconds >= 0"),
        (["--port", "70000"], "argument --port: must be from 0 to 65535"),
        (["--monitor", " "], "argument --monitor: must not be empty"),
    ],
)
def test_bad_options_are_clear_usage_errors(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert problem in capsys.readouterr().err


def test_bad_manifest_in_process_returns_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("jobs:\n  - id: nameless\n", encoding="utf-8")

    assert main([str(manifest), "--port", "0"]) == 2
    assert f"{manifest}:2: job #1 has no 'name'" in capsys.readouterr().err


# A shell that starts pytest in the background ignores SIGINT for its children; the child
# restores Python's own handler so Ctrl-C is tested the way a terminal delivers it.
CHILD_PROGRAM = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from steadycron.cli.devserver import main; sys.exit(main())"
)


class ServerProcess:
    """``steadycron dev-server`` in a child process, its stdout read line by line."""

    def __init__(self, *argv: str) -> None:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        )
        env.pop("NO_COLOR", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD_PROGRAM,
                *argv,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        self._pump_thread = threading.Thread(
            target=self._pump, args=(self.process.stdout,), daemon=True
        )
        self._pump_thread.start()

    def _pump(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, needle: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r}; saw {self.seen!r}") from None
            self.seen.append(line)
            if needle in line:
                return line

    def url(self) -> str:
        line = self.wait_for_line("export STEADYCRON_PING_URL=")
        return line.partition("=")[2]

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(signum)
        return self.wait()

    def wait(self) -> tuple[int, str]:
        """Wait for the exit; return the exit code and all of stderr."""
        code = self.process.wait(timeout=10)
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        self._pump_thread.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._pump_thread.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def __init__(self, *argv: str) -> None:
            super().__init__(*argv)
            started.append(self)

    yield Tracked
    for child in started:
        child.kill()


def test_process_prints_exports_shows_pings_and_stops_on_ctrl_c(
    spawn: type[ServerProcess], tmp_path: Path
) -> None:
    manifest = tmp_path / "monitors.yaml"
    manifest.write_text(
        "version: 2\njobs:\n"
        "  - {id: ledger-rollup, name: Ledger rollup, kind: heartbeat, interval: 60}\n",
        encoding="utf-8",
    )
    child = spawn(str(manifest), "--monitor", "queue-drain-tick", "--port", "0")
    url = child.url()
    api_line = [line for line in child.seen if line.startswith("export STEADYCRON_API_URL=")]

    call(url, "POST", f"/{dev_token('ledger-rollup')}/start?env=prod&run_id={RUN_ID}")
    call(
        url,
        "POST",
        f"/{dev_token('ledger-rollup')}/fail?env=prod&run_id={RUN_ID}",
        body=b"no space\nmore",
    )
    start_line = child.wait_for_line(" start ")
    fail_line = child.wait_for_line(" fail ")
    message_lines = [child.wait_for_line("no space"), child.wait_for_line("more")]
    code, err = child.stop(signal.SIGINT)

    assert api_line == [f"export STEADYCRON_API_URL={url}"]
    assert url.startswith("http://127.0.0.1:")
    assert any("queue-drain-tick  (heartbeat)" in line for line in child.seen)
    assert "ledger-rollup" in start_line
    assert "env=prod" in start_line
    assert "run=01234567" in start_line
    assert "took " in fail_line
    assert message_lines == [" " * 14 + "no space", " " * 14 + "more"]
    assert code == 0
    assert "Traceback" not in err
    assert child.seen[-1] == "stopped; 2 pings received"


def test_process_stops_cleanly_on_sigterm(spawn: type[ServerProcess]) -> None:
    child = spawn("--port", "0")
    child.url()

    code, err = child.stop(signal.SIGTERM)

    assert code == 0
    assert "Traceback" not in err


def test_process_json_mode_prints_one_object_per_ping(spawn: type[ServerProcess]) -> None:
    child = spawn("--monitor", "nightly-db-backup", "--port", "0", "--json")
    assert child.process.stderr is not None
    url = ""
    for line in child.process.stderr:
        if line.startswith("export STEADYCRON_PING_URL="):
            url = line.strip().partition("=")[2]
            break

    call(url, "POST", f"/{token()}/start?env=ci&run_id={RUN_ID}")
    line = child.wait_for_line('"state"')
    child.stop()

    record = json.loads(line)
    assert {key: record[key] for key in ("key", "state", "environment", "run_id", "message")} == {
        "key": "nightly-db-backup",
        "state": "start",
        "environment": "ci",
        "run_id": RUN_ID,
        "message": None,
    }
    assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0)
    assert all(seen.startswith("{") for seen in child.seen)  # stdout holds only pings


def test_process_reports_a_taken_port(spawn: type[ServerProcess], server: DevServer) -> None:
    child = spawn("--port", str(server.port))

    code, err = child.wait()

    assert code == 2
    assert f"cannot listen on 127.0.0.1:{server.port}" in err
    assert "Traceback" not in err


def test_process_reports_a_bad_manifest_with_file_and_line(
    spawn: type[ServerProcess], tmp_path: Path
) -> None:
    manifest = tmp_path / "broken.yaml"
    manifest.write_text("jobs:\n  - name: a\n   kind: [x\n", encoding="utf-8")
    child = spawn(str(manifest), "--port", "0")

    code, err = child.wait()

    assert code == 2
    assert f"{manifest}:3: invalid YAML" in err
    assert "Traceback" not in err
