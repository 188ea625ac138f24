"""The token cache across real processes: crontab lines, a rotated key, a fleet at once.

Each test starts fresh Python processes, as cron does, against loopback stand-ins that
count connections and requests; the token cache folder is the test's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from _cli_server import STEADYCRON, environment
from conftest import KEY, TOKEN
from loopback import Answer, LoopbackServer, Received, StandIn

from steadycron._token_cache import names

RESOLVE = "/api/monitors/resolve"
API_KEY = "sc_ro_fleet_key_0c4f"
#: A command that takes long enough for a re-resolution beside it to end first.
SHORT_JOB = (sys.executable, "-c", "import time; time.sleep(0.5)")


@pytest.fixture
def api() -> Iterator[LoopbackServer]:
    with LoopbackServer(StandIn({KEY: TOKEN}, api_key=API_KEY)) as running:
        yield running


@pytest.fixture
def ping_host() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def env(api: LoopbackServer, ping_host: LoopbackServer, tmp_path: Path) -> dict[str, str]:
    return environment(
        None,
        STEADYCRON_API_KEY=API_KEY,
        STEADYCRON_API_URL=api.url,
        STEADYCRON_PING_URL=ping_host.url,
        STEADYCRON_TOKEN_CACHE=str(tmp_path / "token-cache"),
    )


def steadycron(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STEADYCRON, *arguments], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def backdate(env: dict[str, str], api: LoopbackServer, seconds: float) -> None:
    """Let the TTL pass for the cached entry of KEY."""
    entry = Path(env["STEADYCRON_TOKEN_CACHE"], f"{names(api.url, API_KEY, KEY).stem}.json")
    document = json.loads(entry.read_text())
    document["resolved_at"] -= seconds
    entry.write_text(json.dumps(document))


def test_a_crontab_line_makes_one_connection_per_run_once_the_token_is_cached(
    api: LoopbackServer, ping_host: LoopbackServer, env: dict[str, str]
) -> None:
    first = steadycron(env, "run", KEY, "--", sys.executable, "-c", "pass")
    assert first.returncode == 0, first.stderr
    assert (api.connections, ping_host.connections) == (1, 1)
    for command in (("run", KEY, "--", sys.executable, "-c", "pass"), ("ping", KEY)):
        later = steadycron(env, *command)
        assert later.returncode == 0, later.stderr
    assert api.paths() == [RESOLVE]
    assert api.connections == 1
    assert ping_host.connections == 3  # one per run, start and outcome on the same one
    assert ping_host.paths() == [f"/{TOKEN}/start", f"/{TOKEN}"] * 2 + [f"/{TOKEN}"]


def test_a_revoked_api_key_never_stops_a_job_that_has_a_token(
    api: LoopbackServer, ping_host: LoopbackServer, env: dict[str, str]
) -> None:
    """Resolve; revoke the key (401); let the TTL pass; run again: the job runs, its pings
    go out with the cached token, and each re-resolution logs one ERROR."""
    assert steadycron(env, "run", KEY, "--", *SHORT_JOB).returncode == 0
    api.respond = StandIn({KEY: TOKEN}, api_key="sc_ro_the_rotated_key")
    for run in (1, 2):
        backdate(env, api, 7200)
        done = steadycron(env, "run", KEY, "--", *SHORT_JOB)
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("the last known token stays in use") == 1, done.stderr
        assert "API key was refused" in done.stderr
        assert API_KEY not in done.stderr
        assert ping_host.paths() == [f"/{TOKEN}/start", f"/{TOKEN}"] * (run + 1)
        assert api.paths() == [RESOLVE] * (run + 1)
        assert [r.headers["authorization"] for r in api.received] == [f"Bearer {API_KEY}"] * (
            run + 1
        )


FLEET_KEYS = [f"fleet-job-{n}" for n in range(4)]
FLEET_PROCESSES = 200
#: Stop starting processes after this long, however many have run (a loaded machine).
FLEET_SECONDS = 8.0
FLEET_AT_ONCE = 12
#: A roomy budget: what is counted here is requests, and a loaded machine is slow.
PING = "import sys, steadycron; steadycron.ping_timeout = 30; steadycron.ping(sys.argv[1])"


def test_a_fleet_of_processes_resolves_each_key_once(tmp_path: Path) -> None:
    """Hundreds of short-lived processes, dozens at a time, sharing one API key: the API
    sees one resolve per key, not one per process."""
    monitors = {key: f"tok-{key}" for key in FLEET_KEYS}
    stand_in = StandIn(monitors)

    def slow_resolves(received: Received) -> Answer:
        # A resolve takes a moment, so that processes started together overlap in it.
        answer = stand_in(received)
        return attrs.evolve(answer, delay=0.05) if received.path == RESOLVE else answer

    with LoopbackServer(slow_resolves) as server:
        env = environment(
            None,
            STEADYCRON_API_KEY=API_KEY,
            STEADYCRON_API_URL=server.url,
            STEADYCRON_PING_URL=server.url,
            STEADYCRON_TOKEN_CACHE=str(tmp_path / "token-cache"),
        )
        running: list[subprocess.Popen[bytes]] = []
        started = 0
        until = time.monotonic() + FLEET_SECONDS
        try:
            while started < FLEET_PROCESSES and time.monotonic() < until:
                running = [process for process in running if not ended(process)]
                if len(running) >= FLEET_AT_ONCE:
                    time.sleep(0.005)
                    continue
                key = FLEET_KEYS[started % len(FLEET_KEYS)]
                command = [sys.executable, "-c", PING, key]
                running.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE))
                started += 1
        finally:
            for process in running:
                process.wait(60)
        for process in running:
            ended(process)
        resolved = Counter(r.query["key"] for r in server.received if r.path == RESOLVE)
        pinged = Counter(r.path for r in server.received if r.path != RESOLVE)
    assert started >= 2 * len(FLEET_KEYS), f"only {started} processes in {FLEET_SECONDS} s"
    assert resolved == dict.fromkeys(FLEET_KEYS, 1), f"{started} processes: {resolved}"
    assert sum(pinged.values()) == started
    assert set(pinged) == {f"/tok-{key}" for key in FLEET_KEYS}


def ended(process: subprocess.Popen[bytes]) -> bool:
    """Whether *process* has ended, which it must have done cleanly."""
    if process.poll() is None:
        return False
    assert process.stderr is not None
    with process.stderr:
        error = process.stderr.read().decode()
    assert process.returncode == 0, error
    assert not error, error
    return True
