"""Properties that must hold for every input, not only the ones a person thinks of.

- Any message fits the 1024-byte body as valid UTF-8, keeps its head (exception messages,
  and the body a ping sends) or its tail (captured output), and is untouched when it fits.
- Any key, token, environment and run id lands in exactly the intended path segments and
  query values: nothing in them can add a path segment, a query parameter or a header.
- Any invalid setting is refused with TypeError/ValueError and changes nothing; any valid
  one is accepted and reads back unchanged.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import steadycron
from steadycron import Config, SteadyCron, _default
from steadycron._message import MARKER, MAX_MESSAGE_BYTES, clip_head, clip_tail
from steadycron.transports import InMemoryTransport

API_KEY = "sc_ro_property_key_19ad"
API_URL = "https://api.steadycron.test"
PING_URLS = ("https://ping.steadycron.test", "http://127.0.0.1:8123/base/path")
STATES = ("start", "success", "fail")

common = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Every code point, lone surrogates included (they cannot be encoded as UTF-8 at all).
any_char = st.characters(codec=None, categories=None)
#: Short, long, and long multi-byte text: the boundary of 1024 bytes is hit often.
messages = st.one_of(
    st.text(any_char, max_size=40),
    st.text(any_char, min_size=200, max_size=1400),
    st.text(st.sampled_from("a\u00e9\u20ac\U0001d11e"), min_size=250, max_size=1100),
    st.builds(
        lambda n, tail: "x" * n + tail, st.integers(1015, 1030), st.text(any_char, max_size=3)
    ),
)
#: Every code point that can be encoded (lone surrogates are refused as keys and settings).
sendable_char = st.characters(codec="utf-8", categories=None)
#: Text made of the pieces URLs are made of, and of anything else that can be sent.
url_piece = st.one_of(
    sendable_char,
    st.sampled_from([*"/?#&=;%.+ \r\n\t\x00\\@:[]", "%2F", "%2E", "..", "../", "%00"]),
)
url_text = st.lists(url_piece, min_size=1, max_size=12).map("".join)
optional_url_text = st.one_of(st.none(), st.lists(url_piece, max_size=8).map("".join))


def sendable(text: str) -> str:
    """*text* as it can travel: lone surrogates become ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


def check_clipped(original: str, clipped: str, *, keep: str) -> None:
    data = clipped.encode("utf-8")  # raises for anything that is not valid UTF-8
    assert len(data) <= MAX_MESSAGE_BYTES
    whole = sendable(original)
    if len(whole.encode("utf-8")) <= MAX_MESSAGE_BYTES:
        assert clipped == whole
        return
    if keep == "head":
        assert clipped.endswith(MARKER)
        kept = clipped[: -len(MARKER)]
        assert whole.startswith(kept)
    else:
        assert clipped.startswith(MARKER)
        kept = clipped[len(MARKER) :]
        assert whole.endswith(kept)
    # The longest piece that fits: at most one (up to 4-byte) character was left out.
    assert len(kept.encode("utf-8")) > MAX_MESSAGE_BYTES - len(MARKER) - 4


@common
@given(messages)
def test_exception_messages_keep_their_head_within_1024_bytes(text: str) -> None:
    check_clipped(text, clip_head(text), keep="head")


@common
@given(messages)
def test_captured_output_keeps_its_tail_within_1024_bytes(text: str) -> None:
    check_clipped(text, clip_tail(text), keep="tail")


@common
@given(messages, st.sampled_from(STATES))
def test_the_body_a_ping_sends_is_the_clipped_message(text: str, state: str) -> None:
    transport = InMemoryTransport()
    client = SteadyCron(Config(monitors={"k": "tok"}), transport=transport)
    client.ping("k", state, message=text)  # type: ignore[arg-type]
    (request,) = transport.requests
    if not text:
        assert request.body is None
        return
    assert request.body is not None
    body = request.body.decode("utf-8")
    check_clipped(text, body, keep="head")
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"


def segments(path: str, base: str) -> list[str]:
    assert path.startswith(base + "/")
    return [urllib.parse.unquote(part) for part in path[len(base) + 1 :].split("/")]


def check_wire_safe(url: str) -> None:
    """Only printable ASCII, no fragment: what a server parses is what was meant."""
    assert url.isascii()
    assert all(0x20 < ord(char) < 0x7F for char in url), url
    assert "#" not in url


@common
@given(
    key=url_text,
    token=url_text,
    environment=optional_url_text,
    run_id=optional_url_text,
    state=st.sampled_from(STATES),
    ping_url=st.sampled_from(PING_URLS),
)
def test_keys_tokens_environments_and_run_ids_stay_in_their_place(
    key: str, token: str, environment: str | None, run_id: str | None, state: str, ping_url: str
) -> None:
    transport = InMemoryTransport(monitors={key: token})
    config = Config(api_key=API_KEY, api_url=API_URL, ping_url=ping_url, environment=environment)
    client = SteadyCron(config, transport=transport)
    client.ping(key, state, run_id=run_id)  # type: ignore[arg-type]
    resolve, ping = transport.requests

    check_wire_safe(resolve.url)
    asked = urllib.parse.urlsplit(resolve.url)
    assert (asked.scheme, asked.netloc, asked.path) == (
        "https",
        "api.steadycron.test",
        "/api/monitors/resolve",
    )
    assert urllib.parse.parse_qs(asked.query, keep_blank_values=True) == {"key": [key]}

    check_wire_safe(ping.url)
    assert ping.method == "POST"
    sent = urllib.parse.urlsplit(ping.url)
    base = urllib.parse.urlsplit(ping_url)
    assert (sent.scheme, sent.netloc) == (base.scheme, base.netloc)
    suffix = [] if state == "success" else [state]
    assert segments(sent.path, base.path) == [token, *suffix]
    expected_query = {}
    if environment:
        expected_query["env"] = [environment]
    if run_id:
        expected_query["run_id"] = [run_id]
    assert urllib.parse.parse_qs(sent.query, keep_blank_values=True) == expected_query

    # urllib3 sends what it parses: the same path (no dot-segment removed) and query.
    parsed = urllib3.util.parse_url(ping.url)
    assert parsed.path == sent.path
    assert (parsed.query or "") == sent.query
    assert parsed.fragment is None
    assert segments(parsed.path or "", base.path) == [token, *suffix]

    for request in (resolve, ping):
        for name, value in request.headers.items():
            assert not {"\r", "\n"} & set(name + value)


@common
@given(
    before=st.text(sendable_char, max_size=5),
    surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    after=st.text(sendable_char, max_size=5),
    where=st.sampled_from(["key", "token", "environment", "run_id", "api_key"]),
)
def test_text_with_a_lone_surrogate_is_refused_before_anything_is_sent(
    before: str, surrogate: str, after: str, where: str
) -> None:
    bad = before + surrogate + after
    transport = InMemoryTransport(monitors={"k": "t"})
    client = SteadyCron(Config(api_key=API_KEY), transport=transport)
    attempts: dict[str, Callable[[], object]] = {
        "key": lambda: client.ping(bad),
        "token": lambda: Config(monitors={"k": bad}),
        "run_id": lambda: client.ping("k", run_id=bad),
        "environment": lambda: Config(environment=bad),
        "api_key": lambda: Config(api_key=bad),
    }
    with pytest.raises(ValueError, match="surrogate"):
        attempts[where]()
    assert transport.requests == []


@pytest.mark.parametrize("dots", [".", "..", "...", "%2E", "./..", "../"])
def test_dot_segments_are_never_left_for_a_server_to_resolve(dots: str) -> None:
    transport = InMemoryTransport()
    client = SteadyCron(Config(monitors={"k": dots}), transport=transport)
    client.ping("k", "fail")
    path = urllib3.util.parse_url(transport.requests[0].url).path or ""
    assert segments(path, "") == [dots, "fail"]


# -- settings ------------------------------------------------------------------------

finite_positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
valid_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["127.0.0.1", "api.example.org", "localhost", "[::1]"]),
    st.sampled_from(["", ":8080", ":1"]),
    st.sampled_from(["", "/v1", "/a/b"]),
)
valid_keys = st.text(min_size=1, max_size=10)
#: An API key travels in a header: printable latin-1, no whitespace.
header_char = st.characters(min_codepoint=0x21, max_codepoint=0xFF).filter(
    lambda char: char.isprintable() and not char.isspace()
)
valid_api_keys = st.text(header_char, min_size=1, max_size=20)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "api_key": valid_api_keys,
    "api_url": valid_urls,
    "ping_url": valid_urls,
    "environment": st.text(min_size=1, max_size=20),
    "capture_errors": st.booleans(),
    "ping_timeout": st.one_of(
        st.floats(min_value=1e-6, max_value=3600.0), st.integers(1, 3600), st.just(3600)
    ),
    "resolve_cache_ttl": st.one_of(
        st.just(0), st.just(0.0), finite_positive, st.just(math.inf), st.integers(0, 10**6)
    ),
    "monitors": st.dictionaries(valid_keys, st.text(min_size=1, max_size=10), max_size=4),
}
not_text = st.one_of(
    st.integers(), st.floats(), st.booleans(), st.binary(min_size=1), st.lists(st.integers())
)
bad_numbers = st.one_of(
    st.floats(max_value=0.0),
    st.integers(max_value=-1),
    st.just(math.nan),
    st.booleans(),
    st.text(max_size=5).filter(bool),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
)
bad_urls = st.one_of(
    not_text,
    st.builds(
        lambda scheme, rest: f"{scheme}://{rest}",
        st.sampled_from(["ftp", "file", "ws", "mailto", "javascript"]),
        st.text(max_size=10),
    ),
    st.sampled_from(["http://", "https://", "http:///path", "//host.example", "host.example"]),
    st.builds(
        lambda url, sep, rest: url + sep + rest,
        valid_urls,
        st.sampled_from("?#"),
        st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=5),
    ),
    st.text(st.characters(exclude_characters=":"), min_size=1, max_size=10),
    st.builds(
        lambda scheme, userinfo, host: f"{scheme}://{userinfo}@{host}",
        st.sampled_from(["http", "https"]),
        st.sampled_from(["user:password", "user", ":secret", "a%40b:c"]),
        st.sampled_from(["127.0.0.1", "api.example.org", "[::1]:8080"]),
    ),
    st.builds(
        lambda url, port: f"{url}:{port}",
        st.sampled_from(["http://127.0.0.1", "https://api.example.org"]),
        st.sampled_from(["0", "65536", "99999", "-1", "http", "8080x"]),
    ),
    st.builds(lambda url, char: url + char, valid_urls, st.sampled_from([" ", "\n", "\t"])),
)
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "api_key": st.one_of(
        not_text,
        st.builds(
            lambda head, bad, tail: head + bad + tail,
            st.text(header_char, max_size=5),
            st.sampled_from([" ", "\n", "\r\n", "\t", "\x00", "\x7f", "\xa0", "€", "\u2028"]),
            st.text(header_char, max_size=5),
        ),
    ),
    "api_url": bad_urls,
    "ping_url": bad_urls,
    "environment": not_text,
    "capture_errors": st.one_of(
        st.integers(), st.floats(), st.text(min_size=1), st.lists(st.none())
    ),
    "ping_timeout": st.one_of(
        bad_numbers,
        st.just(0),
        st.just(0.0),
        st.just(math.inf),
        st.floats(min_value=3600.001, allow_infinity=False),
        st.integers(min_value=3601),
    ),
    "resolve_cache_ttl": bad_numbers.filter(lambda value: value != 0 or isinstance(value, bool)),
    "monitors": st.one_of(
        st.lists(st.text(), min_size=0, max_size=2),
        st.text(min_size=1),
        st.integers(),
        st.dictionaries(valid_keys, st.one_of(st.just(""), st.integers(), st.none()), min_size=1),
        st.dictionaries(st.one_of(st.just(""), st.integers(), st.binary()), st.text(), min_size=1),
    ),
}
NAMES = sorted(VALID)


def expected_back(name: str, value: Any) -> Any:
    """What a valid value reads back as: numbers as floats, mappings as plain dicts."""
    if name in ("ping_timeout", "resolve_cache_ttl"):
        return float(value)
    if name == "monitors":
        return dict(value)
    return value


def read(name: str) -> Any:
    value = getattr(steadycron, name)
    return dict(value) if name == "monitors" else value


@common
@given(st.data())
def test_a_valid_setting_is_accepted_and_reads_back_unchanged(data: st.DataObject) -> None:
    _default.reset()
    name = data.draw(st.sampled_from(NAMES), label="setting")
    value = data.draw(VALID[name], label="value")
    setattr(steadycron, name, value)
    assert read(name) == expected_back(name, value)
    config = Config(**{name: value})
    field = getattr(config, name)
    assert (dict(field) if name == "monitors" else field) == expected_back(name, value)


@common
@given(st.data())
def test_an_invalid_setting_is_refused_and_the_old_value_stays(data: st.DataObject) -> None:
    _default.reset()
    name = data.draw(st.sampled_from(NAMES), label="setting")
    old = data.draw(VALID[name], label="old")
    bad = data.draw(INVALID[name], label="bad")
    setattr(steadycron, name, old)
    with pytest.raises((TypeError, ValueError)):
        setattr(steadycron, name, bad)
    assert read(name) == expected_back(name, old)
    with pytest.raises((TypeError, ValueError)):
        Config(**{name: bad})


@common
@given(st.data())
def test_configure_is_all_or_nothing(data: st.DataObject) -> None:
    _default.reset()
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True))
    before = {name: data.draw(VALID[name], label=f"before {name}") for name in names}
    steadycron.configure(**before)
    spoiled = data.draw(st.sampled_from(names), label="spoiled")
    changes = {
        name: data.draw(INVALID[name] if name == spoiled else VALID[name], label=f"new {name}")
        for name in names
    }
    with pytest.raises((TypeError, ValueError)):
        steadycron.configure(**changes)
    for name in names:
        assert read(name) == expected_back(name, before[name])
    # ... and the valid part alone goes through whole.
    del changes[spoiled]
    steadycron.configure(**changes)
    for name, value in changes.items():
        assert read(name) == expected_back(name, value)


@common
@given(st.dictionaries(valid_keys, st.text(min_size=1, max_size=8), max_size=3), not_text)
def test_a_refused_monitors_entry_leaves_the_mapping_as_it_was(
    monitors: dict[str, str], bad_token: object
) -> None:
    _default.reset()
    steadycron.monitors = monitors
    with pytest.raises((TypeError, ValueError)):
        steadycron.monitors["new-key"] = bad_token  # type: ignore[assignment]
    assert dict(steadycron.monitors) == monitors
    with pytest.raises((TypeError, ValueError)):
        steadycron.monitors[""] = "tok"
    assert dict(steadycron.monitors) == monitors


def test_an_unknown_configure_keyword_changes_nothing() -> None:
    steadycron.environment = "staging"
    with pytest.raises(TypeError, match="ping_timout"):
        steadycron.configure(environment="production", ping_timout=1.0)
    assert steadycron.environment == "staging"
