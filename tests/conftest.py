"""Shared fixtures: a clean default client per test, loopback servers, TLS, a fake clock."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import FakeClock, LoopbackServer, StandIn

from steadycron import _default

pytest_plugins = ("pytester",)


_SESSION_CACHE_HOME = tempfile.mkdtemp(prefix="steadycron-tests-cache-")


def pytest_configure(config: pytest.Config) -> None:
    """Keep the whole session, test modules' imports included, off the user's token cache."""
    os.environ["XDG_CACHE_HOME"] = _SESSION_CACHE_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_CACHE_HOME, ignore_errors=True)


API_KEY = "sc_ro_test_api_key_5f1c"
TOKEN = "tok_secret_8d2e"
KEY = "nightly-db-backup"

#: Tests of the framework integrations live here and carry the ``integration`` mark.
INTEGRATIONS = Path(__file__).resolve().parent / "integrations"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark framework tests by where they live, before ``-m`` selects, so none is forgotten."""
    for item in items:
        if INTEGRATIONS in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def clean_default_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test starts with no module settings, no STEADYCRON_* variables, no proxy,
    and an empty token cache of its own: the user's cache folder is never touched (the
    default folder follows XDG_CACHE_HOME, in this process and in its children)."""
    for name in list(os.environ):
        if name.startswith("STEADYCRON_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    _default.reset()
    yield
    _default.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A SteadyCron stand-in over plain HTTP that knows ``KEY`` -> ``TOKEN``."""
    with LoopbackServer(StandIn({KEY: TOKEN})) as running:
        yield running


@pytest.fixture(scope="session")
def ca() -> object:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: object, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))  # type: ignore[attr-defined]
    return str(path)


@pytest.fixture(scope="session")
def server_tls(ca: object) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)  # type: ignore[attr-defined]
    return context


@pytest.fixture
def tls_server(server_tls: ssl.SSLContext) -> Iterator[LoopbackServer]:
    """The same stand-in over HTTPS, with a certificate from the throwaway CA."""
    with LoopbackServer(StandIn({KEY: TOKEN}), tls=server_tls) as running:
        yield running
