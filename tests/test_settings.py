"""Module-level settings, configure() and the default client."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import LoopbackServer

import steadycron
from steadycron import ConfigurationError
from steadycron.testing import record
from steadycron.transports import InMemoryTransport, NullTransport


def test_settings_read_back_code_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert steadycron.api_url == "https://api.steadycron.com"
    monkeypatch.setenv("STEADYCRON_API_URL", "http://127.0.0.1:7")
    assert steadycron.api_url == "http://127.0.0.1:7"
    steadycron.api_url = "http://127.0.0.1:8"
    assert steadycron.api_url == "http://127.0.0.1:8"
    steadycron.api_url = None  # type: ignore[assignment]
    assert steadycron.api_url == "http://127.0.0.1:7"
    steadycron.api_key = ""
    monkeypatch.setenv("STEADYCRON_API_KEY", API_KEY)
    assert steadycron.api_key == API_KEY


def test_invalid_assignment_is_refused_and_the_old_value_stays() -> None:
    steadycron.ping_timeout = 2
    with pytest.raises(ValueError, match="ping_timeout"):
        steadycron.ping_timeout = -1
    with pytest.raises(TypeError, match="capture_errors"):
        steadycron.capture_errors = "yes"  # type: ignore[assignment]
    assert steadycron.ping_timeout == 2.0
    assert steadycron.capture_errors is False


def test_an_assignment_takes_effect_from_the_next_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    with record() as pings:
        steadycron.ping(KEY)
        steadycron.environment = "staging"
        steadycron.ping(KEY)
        monkeypatch.setenv("STEADYCRON_ENVIRONMENT", "production")
        steadycron.environment = None
        steadycron.ping(KEY)
    assert [p.environment for p in pings.pings] == [None, "staging", "production"]


def test_monitors_accept_assignment_and_in_place_mutation() -> None:
    transport = InMemoryTransport()
    steadycron.configure(transport=transport)
    steadycron.monitors = {KEY: TOKEN}
    steadycron.monitors["other"] = "tok-other"
    steadycron.ping(KEY)
    steadycron.ping("other")
    assert [r.url.rsplit("/", 1)[-1] for r in transport.requests] == [TOKEN, "tok-other"]
    with pytest.raises(TypeError, match="monitors"):
        steadycron.monitors["bad"] = 5  # type: ignore[assignment]
    assert "bad" not in steadycron.monitors
    assert TOKEN not in repr(steadycron.monitors)
    del steadycron.monitors["other"]
    assert dict(steadycron.monitors) == {KEY: TOKEN}
    steadycron.monitors = None  # type: ignore[assignment]
    assert dict(steadycron.monitors) == {}


def test_configure_refuses_an_object_without_send_and_changes_nothing() -> None:
    transport = InMemoryTransport({KEY: TOKEN})
    steadycron.configure(transport=transport, api_key=API_KEY)
    with pytest.raises(TypeError, match="send"):
        steadycron.configure(transport=object(), api_key="sc_other")
    assert steadycron.default_client().transport is transport
    assert steadycron.api_key == API_KEY


def test_configure_transport_closes_the_one_it_replaces() -> None:
    closed: list[str] = []

    class Closing(NullTransport):
        def close(self) -> None:
            closed.append("first")

    steadycron.configure(transport=Closing())
    steadycron.configure(transport=NullTransport())
    assert closed == ["first"]


def test_default_client_is_one_instance() -> None:
    steadycron.api_key = API_KEY
    steadycron.monitors = {KEY: TOKEN}
    assert steadycron.default_client() is steadycron.default_client()


def test_import_does_no_network_and_starts_no_thread() -> None:
    code = (
        "import socket, sys, threading\n"
        "def refuse(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "import steadycron, steadycron.transports, steadycron.testing\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "heavy = {'urllib3', 'tenacity', 'asyncio', 'ssl', 'yaml'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_closing_the_default_client_only_releases_its_connections(server: LoopbackServer) -> None:
    steadycron.configure(api_url=server.url, ping_url=server.url, monitors={KEY: TOKEN})
    steadycron.ping(KEY)
    steadycron.default_client().close()
    steadycron.ping(KEY, "start")
    assert server.paths() == [f"/{TOKEN}", f"/{TOKEN}/start"]
    assert server.connections == 2  # the second ping opened a fresh pool


def test_a_misspelt_setting_raises_with_a_suggestion() -> None:
    with pytest.raises(AttributeError, match="did you mean 'ping_timeout'"):
        steadycron.ping_timout = 1.0  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="did you mean 'capture_errors'"):
        steadycron.capture_error = True  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="did you mean 'api_key'"):
        steadycron.apikey  # type: ignore[attr-defined]  # noqa: B018
    assert "ping_timout" not in vars(steadycron)
    assert steadycron.ping_timeout == 5.0


@pytest.mark.parametrize(
    "bad",
    [{"api_key": f"{API_KEY}\n"}, {"api_url": "http://127.0.0.1:99999"}, {"ping_timeout": 1e10}],
)
def test_unsendable_values_are_refused_by_attribute_and_by_configure_changing_nothing(
    bad: dict[str, object],
) -> None:
    steadycron.configure(api_key=API_KEY, api_url="http://127.0.0.1:8", ping_timeout=2)
    [(name, value)] = bad.items()
    before = getattr(steadycron, name)
    with pytest.raises(ValueError, match=name):
        setattr(steadycron, name, value)
    with pytest.raises(ValueError, match=name):
        steadycron.configure(environment="production", **bad)
    assert getattr(steadycron, name) == before
    assert steadycron.environment is None


@pytest.mark.parametrize(
    ("variable", "value", "example"),
    [
        ("STEADYCRON_PING_URL", "ftp://ping.example", "https://ping.steadycron.com"),
        ("STEADYCRON_API_URL", "http://127.0.0.1:99999", "https://api.steadycron.com"),
        ("STEADYCRON_API_KEY", f"{API_KEY}\n", "sc_ro_..."),
    ],
)
def test_an_invalid_environment_variable_is_named_alone_with_a_fitting_example(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, example: str
) -> None:
    monkeypatch.setenv("STEADYCRON_API_URL", "http://127.0.0.1:7")
    monkeypatch.setenv("STEADYCRON_ENVIRONMENT", "production")
    monkeypatch.setenv(variable, value)
    steadycron.configure(transport=InMemoryTransport(), monitors={KEY: TOKEN})
    with pytest.raises(ConfigurationError, match=variable) as raised:
        steadycron.ping(KEY)
    message = str(raised.value)
    assert example in message
    others = {"STEADYCRON_PING_URL", "STEADYCRON_API_URL", "STEADYCRON_API_KEY"} - {variable}
    assert not [other for other in others if other in message]
    assert "STEADYCRON_ENVIRONMENT" not in message
    assert API_KEY not in message
    if variable == "STEADYCRON_PING_URL":
        assert "api.steadycron.com" not in message
