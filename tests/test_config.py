"""Config: validation at construction, secret-free repr, environment only via from_env."""

from __future__ import annotations

import math

import attrs
import pytest
from conftest import API_KEY, TOKEN

from steadycron import Config

BAD_VALUES = [
    ("api_key", 42, TypeError),
    ("api_url", "ftp://api.example", ValueError),
    ("api_url", "not a url", ValueError),
    ("api_url", "https://", ValueError),
    ("api_url", "https://api.example/?q=1", ValueError),
    ("api_url", None, TypeError),
    ("ping_url", b"https://ping.example", TypeError),
    ("environment", 3.5, TypeError),
    ("capture_errors", "yes", TypeError),
    ("capture_errors", 1, TypeError),
    ("ping_timeout", -1, ValueError),
    ("ping_timeout", 0, ValueError),
    ("ping_timeout", math.nan, ValueError),
    ("ping_timeout", math.inf, ValueError),
    ("ping_timeout", "5", TypeError),
    ("ping_timeout", True, TypeError),
    ("resolve_cache_ttl", -0.5, ValueError),
    ("resolve_cache_ttl", math.nan, ValueError),
    ("monitors", ["a"], TypeError),
    ("monitors", {"a": 5}, TypeError),
    ("monitors", {"": "tok"}, ValueError),
    ("monitors", {3: "tok"}, TypeError),
    # Values that could never be sent (API.md §1).
    ("api_key", f"{API_KEY}\n", ValueError),
    ("api_key", "sc_ro_€uro", ValueError),
    ("api_key", "sc_ro key", ValueError),
    ("api_key", "sc_ro\x00key", ValueError),
    ("api_url", "http://user:secret@127.0.0.1:8080", ValueError),
    ("api_url", "https://api.example/#top", ValueError),
    ("api_url", "http://127.0.0.1:99999", ValueError),
    ("api_url", "http://127.0.0.1:0", ValueError),
    ("ping_url", "http://127.0.0.1:port", ValueError),
    ("ping_url", "https://token@ping.example", ValueError),
    ("ping_url", "https://ping.example/a b", ValueError),
    ("ping_timeout", 1e10, ValueError),
    ("ping_timeout", 3600.5, ValueError),
]


@pytest.mark.parametrize(("name", "value", "error"), BAD_VALUES)
def test_invalid_settings_are_refused_with_a_message_naming_them(
    name: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=name if name != "monitors" else "monitor"):
        Config(**{name: value})


def test_defaults_match_the_settings_table() -> None:
    config = Config()
    assert config.api_key is None
    assert config.api_url == "https://api.steadycron.com"
    assert config.ping_url == "https://ping.steadycron.com"
    assert config.environment is None
    assert config.capture_errors is False
    assert config.ping_timeout == 5.0
    assert config.resolve_cache_ttl == 3600.0
    assert dict(config.monitors) == {}


def test_trailing_slashes_are_ignored_and_zero_ttl_means_no_caching() -> None:
    config = Config(
        api_url="http://127.0.0.1:9/", ping_url="https://p.example//", resolve_cache_ttl=0
    )
    assert config.api_url == "http://127.0.0.1:9"
    assert config.ping_url == "https://p.example"
    assert config.resolve_cache_ttl == 0.0


def test_config_is_frozen_and_monitors_cannot_be_mutated_through_it() -> None:
    source = {"a": TOKEN}
    config = Config(monitors=source)
    source["b"] = "other"
    assert dict(config.monitors) == {"a": TOKEN}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.api_key = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.monitors["c"] = "x"  # type: ignore[index]


def test_evolve_validates_again() -> None:
    config = Config(environment="production")
    assert attrs.evolve(config, environment="staging").environment == "staging"
    with pytest.raises(ValueError, match="ping_timeout"):
        attrs.evolve(config, ping_timeout=-2)


def test_plain_config_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADYCRON_API_KEY", API_KEY)
    monkeypatch.setenv("STEADYCRON_ENVIRONMENT", "production")
    assert Config().api_key is None
    assert Config().environment is None


def test_from_env_reads_variables_and_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADYCRON_API_KEY", API_KEY)
    monkeypatch.setenv("STEADYCRON_API_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("STEADYCRON_PING_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("STEADYCRON_ENVIRONMENT", "")
    config = Config.from_env(environment="staging", ping_timeout=1)
    assert config.api_key == API_KEY
    assert config.api_url == "http://127.0.0.1:1"
    assert config.ping_url == "http://127.0.0.1:2"
    assert config.environment == "staging"
    assert config.ping_timeout == 1.0
    assert Config.from_env(api_key=None).api_key == API_KEY


def test_from_env_refuses_unknown_overrides() -> None:
    with pytest.raises(TypeError, match="ping_timout"):
        Config.from_env(ping_timout=1)


@pytest.mark.parametrize(
    ("name", "value", "what_to_fix"),
    [
        ("api_key", f"{API_KEY}\n", "strip it"),
        ("api_key", f"{API_KEY}€", "latin-1"),
        ("api_key", f"{API_KEY}\t", "whitespace"),
        ("api_url", "http://user:hunter2@127.0.0.1:8080", "credentials"),
        ("ping_url", "https://ping.example/?token=1", "query"),
        ("api_url", "http://127.0.0.1:99999", "port (a number from 1 to 65535)"),
        ("ping_timeout", 1e10, "at most 3600 seconds"),
    ],
)
def test_unsendable_values_are_refused_saying_what_to_fix(
    name: str, value: object, what_to_fix: str
) -> None:
    with pytest.raises(ValueError, match=name) as raised:
        Config(**{name: value})
    message = str(raised.value)
    assert what_to_fix in message
    assert API_KEY not in message  # an API key is never repeated, only where it breaks
    assert "hunter2" not in message


def test_urls_are_shown_with_an_example_of_their_own() -> None:
    with pytest.raises(ValueError, match=r"https://ping\.steadycron\.com") as raised:
        Config(ping_url="ftp://ping.example")
    assert "api.steadycron.com" not in str(raised.value)
    with pytest.raises(ValueError, match=r"https://api\.steadycron\.com"):
        Config(api_url="ftp://api.example")


def test_the_largest_ping_timeout_and_ports_at_the_edges_are_accepted() -> None:
    config = Config(
        ping_timeout=3600, api_url="http://127.0.0.1:65535", ping_url="http://[::1]:1/base"
    )
    assert config.ping_timeout == 3600.0
    assert config.api_url == "http://127.0.0.1:65535"
    assert config.ping_url == "http://[::1]:1/base"
