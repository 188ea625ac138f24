"""The on-disk token cache (API.md §8): where it lives, what it trusts, what it costs.

Each client here stands for a new process: it has an empty memory and shares the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import LoopbackServer, StandIn, wait_for

import steadycron
from steadycron import Config, SteadyCron
from steadycron._token_cache import TokenCache, names
from steadycron.testing import record
from steadycron.transports import InMemoryTransport, NullTransport

RESOLVE = "/api/monitors/resolve"
OTHER_KEY = "hourly-report"
OTHER_TOKEN = "tok_other_41aa"
REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def api() -> Iterator[LoopbackServer]:
    with LoopbackServer(StandIn({KEY: TOKEN, OTHER_KEY: OTHER_TOKEN})) as running:
        yield running


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "steadycron"


@pytest.fixture
def process(api: LoopbackServer, folder: Path) -> Iterator[Callable[..., SteadyCron]]:
    """Makes a client as a new process would have it: nothing in memory."""
    clients: list[SteadyCron] = []

    def make(**settings: Any) -> SteadyCron:
        config = Config(
            **{
                "api_key": API_KEY,
                "api_url": api.url,
                "ping_url": api.url,
                "ping_timeout": 2.0,
                "token_cache": str(folder),
                **settings,
            }
        )
        client = SteadyCron(config)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def entry_of(folder: Path, api: LoopbackServer, key: str = KEY, api_key: str = API_KEY) -> Path:
    return folder / f"{names(api.url, api_key, key).stem}.json"


def rewrite(path: Path, **fields: object) -> None:
    """Change an entry as another process of the user could have written it."""
    document = json.loads(path.read_text())
    document.update(fields)
    path.write_text(json.dumps(document))


# -- the setting ------------------------------------------------------------------------


def test_the_default_is_the_users_cache_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Config().token_cache == str(tmp_path / "xdg" / "steadycron")
    assert steadycron.token_cache == str(tmp_path / "xdg" / "steadycron")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ("", "relative/cache"):  # the XDG spec: ignore a relative one
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert steadycron.token_cache == str(tmp_path / "home" / ".cache" / "steadycron")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Config().token_cache == str(tmp_path / "home" / ".cache" / "steadycron")


def test_the_setting_reads_code_then_env_then_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STEADYCRON_TOKEN_CACHE", "OFF")
    assert steadycron.token_cache == "off"
    assert Config.from_env().token_cache == "off"
    monkeypatch.setenv("STEADYCRON_TOKEN_CACHE", str(tmp_path / "env"))
    assert steadycron.token_cache == str(tmp_path / "env")
    steadycron.token_cache = tmp_path / "code"  # type: ignore[assignment]
    assert steadycron.token_cache == str(tmp_path / "code")
    steadycron.configure(token_cache="off")
    assert steadycron.default_client().config.token_cache == "off"
    steadycron.token_cache = None  # type: ignore[assignment]
    assert steadycron.token_cache == str(tmp_path / "env")
    assert Config(token_cache=tmp_path).token_cache == str(tmp_path)
    assert "token_cache=" in repr(Config(token_cache="off"))


@pytest.mark.parametrize(
    ("value", "error"), [(5, TypeError), (b"/tmp/x", TypeError), ("/tmp/a\0b", ValueError)]
)
def test_an_invalid_value_is_refused_and_the_old_one_stays(value: object, error: type) -> None:
    steadycron.token_cache = "off"
    with pytest.raises(error, match="token_cache"):
        steadycron.token_cache = value  # type: ignore[assignment]
    with pytest.raises(error, match="token_cache"):
        Config(token_cache=value)
    assert steadycron.token_cache == "off"


# -- what it saves ----------------------------------------------------------------------


def test_a_new_process_pings_with_the_token_on_disk_and_does_not_resolve(
    process: Callable[..., SteadyCron], api: LoopbackServer
) -> None:
    assert process().job(KEY)(lambda: "first")() == "first"
    api.received.clear()
    connections = api.connections
    assert process().job(KEY)(lambda: "second")() == "second"
    assert [path for path in api.paths()] == [f"/{TOKEN}/start", f"/{TOKEN}"]
    assert api.connections - connections == 1


def test_files_are_private_whole_and_named_by_a_digest(
    process: Callable[..., SteadyCron], api: LoopbackServer, folder: Path
) -> None:
    process().ping(KEY)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [entry] = entries(folder)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert sorted(path.suffix for path in folder.iterdir()) == [".json", ".lock"]
    for secret in (API_KEY, KEY, TOKEN, str(api.port)):
        assert all(secret not in path.name for path in folder.iterdir())
    document = json.loads(entry.read_text())
    assert document.keys() == {"token", "kind", "resolved_at"}
    assert (document["token"], document["kind"]) == (TOKEN, "heartbeat")
    assert abs(document["resolved_at"] - time.time()) < 60


def test_tenants_and_api_urls_never_read_each_others_entries(
    process: Callable[..., SteadyCron], api: LoopbackServer, folder: Path
) -> None:
    process().ping(KEY)
    api.received.clear()
    process(api_key="sc_ro_another_tenant_9d").ping(KEY)
    with LoopbackServer(StandIn({KEY: "tok_elsewhere"})) as elsewhere:
        process(api_url=elsewhere.url, ping_url=elsewhere.url).ping(KEY)
        assert elsewhere.paths() == [RESOLVE, "/tok_elsewhere"]
    assert api.paths() == [RESOLVE, f"/{TOKEN}"]
    assert api.received[0].headers["authorization"] == "Bearer sc_ro_another_tenant_9d"
    assert len(entries(folder)) == 3


def test_clear_cache_removes_the_clients_entries_on_disk_and_only_those(
    process: Callable[..., SteadyCron], api: LoopbackServer, folder: Path
) -> None:
    client = process()
    client.ping(KEY)
    client.ping(OTHER_KEY)
    other_tenant = process(api_key="sc_ro_another_tenant_9d")
    other_tenant.ping(KEY)
    client.clear_cache()
    assert entries(folder) == [entry_of(folder, api, api_key="sc_ro_another_tenant_9d")]
    assert not [
        path
        for path in folder.iterdir()
        if path.name.startswith(names(api.url, API_KEY, KEY).tenant)
    ]
    api.received.clear()
    process().ping(KEY)
    assert api.paths() == [RESOLVE, f"/{TOKEN}"]


def test_a_zero_ttl_neither_reads_nor_writes_the_disk(
    process: Callable[..., SteadyCron], api: LoopbackServer, folder: Path
) -> None:
    process(resolve_cache_ttl=0).ping(KEY)
    assert not folder.exists()
    process().ping(KEY)
    api.received.clear()
    process(resolve_cache_ttl=0).ping(KEY)
    assert api.paths() == [RESOLVE, f"/{TOKEN}"]


def test_the_test_kit_and_the_memory_transports_never_touch_it(
    process: Callable[..., SteadyCron], folder: Path
) -> None:
    config = Config(api_key=API_KEY, token_cache=str(folder))
    for transport in (InMemoryTransport({KEY: TOKEN}), NullTransport()):
        SteadyCron(config, transport=transport).ping(KEY)
    steadycron.configure(api_key=API_KEY, token_cache=str(folder))
    with record() as pings:
        steadycron.ping(KEY)
    assert pings.states(KEY) == ["success"]
    assert not folder.exists()
    process().ping(KEY)  # an entry on disk now: still not read by an in-memory client
    memory = InMemoryTransport({KEY: "tok_in_memory"})
    SteadyCron(config, transport=memory).ping(KEY)
    assert [r.url.rsplit("/", 1)[-1] for r in memory.requests][-1] == "tok_in_memory"


# -- stale entries ------------------------------------------------------------------------


@pytest.mark.parametrize("age", [7200.0, -7200.0], ids=["past-ttl", "from-the-future"])
def test_a_stale_entry_is_used_at_once_and_refreshed_beside_the_run(
    process: Callable[..., SteadyCron], api: LoopbackServer, folder: Path, age: float
) -> None:
    process().ping(KEY)
    entry = entry_of(folder, api)
    rewrite(entry, resolved_at=time.time() - age)
    api.respond = StandIn({KEY: "tok_refreshed"})
    api.received.clear()
    client = process()
    client.ping(KEY)
    assert f"/{TOKEN}" in api.paths()
    assert wait_for(lambda: json.loads(entry.read_text())["token"] == "tok_refreshed")
    assert abs(json.loads(entry.read_text())["resolved_at"] - time.time()) < 60
    client.ping(KEY)
    api.received.clear()
    process().ping(KEY)
    assert api.paths() == ["/tok_refreshed"]


# -- what it does not trust -----------------------------------------------------------------


def group_writable(path: Path) -> None:
    rewrite(path, token="tok_planted")
    path.chmod(0o620)


def other_writable(path: Path) -> None:
    rewrite(path, token="tok_planted")
    path.chmod(0o606)


def symlink_elsewhere(path: Path) -> None:
    planted = path.with_name("planted")
    planted.write_text(
        json.dumps({"token": "tok_planted", "kind": "heartbeat", "resolved_at": time.time()})
    )
    planted.chmod(0o600)
    path.unlink()
    path.symlink_to(planted)


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)

    def unblock_a_reader_after_a_while() -> None:
        # Should the reader block after all, free it: the test then fails on time.
        time.sleep(3)
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock_a_reader_after_a_while, daemon=True).start()


UNTRUSTED = [
    pytest.param(group_writable, id="group-writable"),
    pytest.param(other_writable, id="other-writable"),
    pytest.param(symlink_elsewhere, id="symlink"),
    pytest.param(lambda path: path.write_text("{not json"), id="not-json"),
    pytest.param(lambda path: path.write_text("[]"), id="not-an-object"),
    pytest.param(lambda path: path.write_text("x" * 100_000), id="too-large"),
    pytest.param(lambda path: rewrite(path, token=""), id="empty-token"),
    pytest.param(lambda path: rewrite(path, token=5), id="number-token"),
    pytest.param(lambda path: rewrite(path, kind="http"), id="http-kind"),
    pytest.param(lambda path: rewrite(path, resolved_at="yesterday"), id="text-time"),
    pytest.param(lambda path: rewrite(path, resolved_at=True), id="bool-time"),
    pytest.param(
        fifo,
        id="fifo",
        marks=pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here"),
    ),
]


@pytest.mark.parametrize("tamper", UNTRUSTED)
def test_an_untrusted_entry_is_ignored_and_replaced_on_the_next_resolve(
    process: Callable[..., SteadyCron],
    api: LoopbackServer,
    folder: Path,
    tamper: Callable[[Path], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    process().ping(KEY)
    entry = entry_of(folder, api)
    tamper(entry)
    api.received.clear()
    caplog.set_level(logging.DEBUG, "steadycron")
    started = time.monotonic()
    process().ping(KEY)
    assert time.monotonic() - started < 1.5  # a FIFO must not block the read
    assert api.paths() == [RESOLVE, f"/{TOKEN}"]
    assert not entry.is_symlink()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert json.loads(entry.read_text())["token"] == TOKEN
    assert "token cache" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_entry_of_another_user_is_ignored(
    process: Callable[..., SteadyCron],
    api: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process().ping(KEY)
    someone_else = os.geteuid() + 4242
    monkeypatch.setattr(os, "geteuid", lambda: someone_else)
    api.received.clear()
    process().ping(KEY)
    assert api.paths() == [RESOLVE, f"/{TOKEN}"]


def test_disk_trouble_falls_back_to_memory_and_is_logged_once_at_debug(
    process: Callable[..., SteadyCron],
    api: LoopbackServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    caplog.set_level(logging.DEBUG, "steadycron")
    client = process(token_cache=str(not_a_folder / "steadycron"))
    for key in (KEY, KEY, OTHER_KEY):
        client.ping(key)
    assert api.paths() == [RESOLVE, f"/{TOKEN}", f"/{TOKEN}", RESOLVE, f"/{OTHER_TOKEN}"]
    told = [r for r in caplog.records if "token cache" in r.getMessage()]
    assert len(told) == 1
    assert told[0].levelno == logging.DEBUG
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert API_KEY not in caplog.text
    assert TOKEN not in told[0].getMessage()


def test_no_home_folder_means_memory_alone(
    process: Callable[..., SteadyCron], api: LoopbackServer
) -> None:
    client = process(token_cache="~no-such-user-4711/.cache/steadycron")
    client.ping(KEY)
    client.ping(KEY)
    assert api.paths() == [RESOLVE, f"/{TOKEN}", f"/{TOKEN}"]


# -- many writers ---------------------------------------------------------------------------

WRITER = """
import sys, time
from steadycron._token_cache import Entry, TokenCache, names
cache = TokenCache(sys.argv[1])
where = names("https://api.example", "sc_ro_k", "job")
for n in range(int(sys.argv[3])):
    cache.store(where, Entry(f"tok-{sys.argv[2]}-{n}", "heartbeat", time.time()))
"""


def test_processes_writing_at_once_never_leave_half_an_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = str(tmp_path / "shared")
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    caplog.set_level(logging.DEBUG, "steadycron")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, folder, str(n), "300"], env=env)
        for n in range(4)
    ]
    cache = TokenCache(folder)
    where = names("https://api.example", "sc_ro_k", "job")
    seen: set[str] = set()
    try:
        while any(writer.poll() is None for writer in writers):
            entry = cache.load(where)
            if entry is not None:
                seen.add(entry.token)
    finally:
        codes = [writer.wait(30) for writer in writers]
    assert codes == [0, 0, 0, 0]
    assert all(token.startswith("tok-") for token in seen)
    # A missing entry is no trouble; anything else read would have been told of.
    assert "token cache" not in caplog.text
    assert cache.load(where) is not None
    assert not list(Path(folder).glob("*.tmp"))


def test_import_does_not_load_the_cache_code() -> None:
    code = "import sys, steadycron; print('steadycron._token_cache' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
