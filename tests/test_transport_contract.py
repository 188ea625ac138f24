"""The transport contract of API.md §6, written once and run against every transport.

``TransportContract`` holds what every transport promises; ``NetworkContract`` adds what
a transport that crosses a real socket promises (status passthrough, refused, timeouts,
resets, no redirects, proxies); ``HttpsContract`` adds TLS. Each ``Test*`` class at the
bottom only says which transport it builds, over which scheme.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import Answer, LoopbackServer, StandIn, closed_port_url, silent_listener

from steadycron import Config, SteadyCron
from steadycron._ping import Ping
from steadycron.transports import (
    ConnectError,
    InMemoryTransport,
    NullTransport,
    Request,
    Response,
    StdlibTransport,
    Transport,
    TransportError,
    TransportTimeoutError,
    Urllib3Transport,
)
from steadycron.transports._base import MAX_RESPONSE_BYTES

TIMEOUT = 0.5
#: Scheduling noise allowed on top of a timeout: generous, so the suite never flakes.
SLACK = 0.5

Make = Callable[..., Transport]


def ping(base_url: str, token: str = TOKEN) -> Request:
    return Request("POST", f"{base_url}/{token}", {"User-Agent": "contract-test"})


def resolve(base_url: str, key: str = KEY) -> Request:
    query = urllib.parse.urlencode({"key": key})
    return Request(
        "GET",
        f"{base_url}/api/monitors/resolve?{query}",
        {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"},
    )


class TransportContract:
    """Promises every transport keeps, whether or not it touches the network."""

    transport_class: Callable[..., Transport]

    def build(self, **options: Any) -> Transport:
        return self.transport_class(**options)

    @pytest.fixture
    def make(self) -> Iterator[Make]:
        built: list[Transport] = []

        def make(**options: Any) -> Transport:
            transport = self.build(**options)
            built.append(transport)
            return transport

        yield make
        for transport in built:
            transport.close()

    @pytest.fixture
    def base_url(self) -> str:
        """Where requests go; the network classes point it at a stand-in server."""
        return "http://127.0.0.1:9"

    def test_is_a_transport_a_client_accepts(self, make: Make) -> None:
        transport = make()
        assert isinstance(transport, Transport)
        SteadyCron(Config(), transport=transport)

    def test_a_ping_is_answered_with_a_2xx_response(self, make: Make, base_url: str) -> None:
        response = make().send(ping(base_url), timeout=TIMEOUT)
        assert isinstance(response, Response)
        assert 200 <= response.status < 300

    def test_a_resolve_is_answered_with_a_heartbeat_token(self, make: Make, base_url: str) -> None:
        response = make().send(resolve(base_url), timeout=TIMEOUT)
        assert response.status == 200
        body = json.loads(response.body)
        assert body["kind"] == "heartbeat"
        assert isinstance(body["ping_token"], str)
        assert body["ping_token"]

    def test_a_client_delivers_through_it(self, make: Make, base_url: str) -> None:
        config = Config(api_key=API_KEY, api_url=base_url, ping_url=base_url, ping_timeout=2.0)
        with SteadyCron(config, transport=make()) as client:
            assert client.send(Ping(KEY, "success")).delivered is True

    def test_repr_hides_the_token_and_the_api_key(self, make: Make, base_url: str) -> None:
        transport = make()
        transport.send(resolve(base_url), timeout=TIMEOUT)
        transport.send(ping(base_url), timeout=TIMEOUT)
        assert TOKEN not in repr(transport)
        assert API_KEY not in repr(transport)

    def test_send_is_safe_from_many_threads(self, make: Make, base_url: str) -> None:
        transport = make()
        tokens = [f"tok{index}" for index in range(40)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(
                pool.map(lambda token: transport.send(ping(base_url, token), timeout=5.0), tokens)
            )
        assert [answer.status for answer in answers] == [200] * len(tokens)
        self.check_delivered(transport, [f"/{token}" for token in tokens])

    def check_delivered(self, transport: Transport, paths: list[str]) -> None:
        """Assert each of *paths* arrived once, where the transport lets us see that."""


class NetworkContract(TransportContract):
    """Promises of a transport that sends over a real socket to 127.0.0.1."""

    tls = False

    # Servers live as long as their class (stopping one takes half a second); each test
    # gets them back as new.
    @pytest.fixture(scope="class")
    @classmethod
    def running_servers(
        cls, request: pytest.FixtureRequest
    ) -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
        tls = request.getfixturevalue("server_tls") if cls.tls else None
        with LoopbackServer(tls=tls) as server, LoopbackServer() as other:
            yield server, other

    @pytest.fixture
    def server(self, running_servers: tuple[LoopbackServer, LoopbackServer]) -> LoopbackServer:
        """The stand-in the requests go to, knowing ``KEY`` -> ``TOKEN``."""
        return running_servers[0].reuse(StandIn({KEY: TOKEN}))

    @pytest.fixture
    def other(self, running_servers: tuple[LoopbackServer, LoopbackServer]) -> LoopbackServer:
        """A second server, where redirects point."""
        return running_servers[1].reuse(lambda received: Answer(200, b"second"))

    @pytest.fixture
    def base_url(self, server: LoopbackServer) -> str:
        return server.url

    def with_scheme(self, url: str) -> str:
        return url.replace("http://", "https://") if self.tls else url

    @pytest.fixture(autouse=True)
    def _remember_server(self, server: LoopbackServer) -> None:
        self._server = server

    def check_delivered(self, transport: Transport, paths: list[str]) -> None:
        assert sorted(self._server.paths()) == sorted(paths)

    @pytest.mark.parametrize("status", [200, 404, 500])
    def test_status_is_passed_through_as_a_response(
        self, make: Make, server: LoopbackServer, status: int
    ) -> None:
        server.respond = lambda received: Answer(status, b"body %d" % status)
        response = make().send(ping(server.url), timeout=TIMEOUT)
        assert (response.status, response.body) == (status, b"body %d" % status)

    def test_headers_and_body_travel_both_ways(self, make: Make, server: LoopbackServer) -> None:
        server.respond = lambda received: Answer(201, b"made", {"X-Answer": "yes"})
        request = Request(
            "POST",
            f"{server.url}/{TOKEN}/fail?run_id=abc",
            {"Content-Type": "text/plain; charset=utf-8", "X-Question": "why"},
            "disk full \u2603".encode(),
        )
        response = make().send(request, timeout=TIMEOUT)
        assert (response.status, response.body) == (201, b"made")
        assert response.headers["x-answer"] == "yes"
        [seen] = server.received
        assert (seen.method, seen.path, seen.query) == ("POST", f"/{TOKEN}/fail", {"run_id": "abc"})
        assert seen.headers["x-question"] == "why"
        assert seen.headers["content-type"] == "text/plain; charset=utf-8"
        assert seen.body == "disk full \u2603".encode()

    def test_body_is_capped(self, make: Make, server: LoopbackServer) -> None:
        server.respond = lambda received: Answer(200, b"x" * (MAX_RESPONSE_BYTES + 5000))
        transport = make()
        response = transport.send(ping(server.url), timeout=2.0)
        assert response.body == b"x" * MAX_RESPONSE_BYTES
        server.respond = lambda received: Answer(200, b"after")
        assert transport.send(ping(server.url), timeout=2.0).body == b"after"

    def test_refused_port_is_a_connect_error(self, make: Make) -> None:
        with pytest.raises(ConnectError):
            make().send(ping(self.with_scheme(closed_port_url())), timeout=TIMEOUT)

    def test_silent_listener_times_out_in_time(self, make: Make) -> None:
        transport = make()
        with silent_listener() as url:
            started = time.monotonic()
            with pytest.raises(TransportTimeoutError):
                transport.send(ping(self.with_scheme(url)), timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + SLACK

    def test_accepted_but_unanswered_request_times_out_in_time(
        self, make: Make, server: LoopbackServer
    ) -> None:
        server.respond = lambda received: Answer(silent=True)
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError):
            make().send(ping(server.url), timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + SLACK

    def test_connection_reset_is_a_transport_error(
        self, make: Make, server: LoopbackServer
    ) -> None:
        server.respond = lambda received: Answer(reset=True)
        with pytest.raises(TransportError):
            make().send(ping(server.url), timeout=TIMEOUT)

    @pytest.mark.parametrize("status", [302, 307])
    def test_redirect_is_returned_not_followed(
        self, make: Make, server: LoopbackServer, other: LoopbackServer, status: int
    ) -> None:
        location = f"{other.url}/elsewhere"
        server.respond = lambda received: Answer(status, b"", {"Location": location})
        response = make().send(resolve(server.url), timeout=TIMEOUT)
        assert response.status == status
        assert response.headers["location"] == location
        time.sleep(0.05)
        assert other.received == []
        assert other.connections == 0

    def test_no_proxy_bypasses_the_proxy(
        self,
        make: Make,
        server: LoopbackServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with TunnellingProxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            response = make().send(ping(server.url), timeout=2.0)
        assert response.status == 200
        assert server.paths() == [f"/{TOKEN}"]
        assert proxy.targets == []


class HttpContract(NetworkContract):
    def test_http_proxy_receives_the_absolute_url(
        self, make: Make, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with TunnellingProxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            response = make().send(ping(server.url), timeout=2.0)
        assert (response.status, response.body) == (200, b"proxied")
        assert proxy.targets == [("POST", f"{server.url}/{TOKEN}")]
        assert server.received == []


class HttpsContract(NetworkContract):
    tls = True

    @pytest.fixture(autouse=True)
    def _trust_the_test_ca(self, ca_file: str) -> None:
        self._ca_file = ca_file

    def build(self, **options: Any) -> Transport:
        """Trust the throwaway CA unless a test says otherwise."""
        options.setdefault("ca_certs", self._ca_file)
        return super().build(**options)

    def test_explicit_ca_certs_are_trusted(
        self, make: Make, server: LoopbackServer, ca_file: str
    ) -> None:
        assert make(ca_certs=ca_file).send(ping(server.url), timeout=2.0).status == 200

    def test_ssl_cert_file_is_trusted(
        self, make: Make, server: LoopbackServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        assert make(ca_certs=None).send(ping(server.url), timeout=2.0).status == 200

    def test_untrusted_certificate_is_a_connect_error(
        self, make: Make, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        with pytest.raises(ConnectError):
            make(ca_certs=None).send(ping(server.url), timeout=2.0)
        assert server.received == []

    def test_https_proxy_tunnels_with_connect(
        self, make: Make, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with TunnellingProxy() as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            response = make().send(ping(server.url), timeout=2.0)
        assert response.status == 200
        assert proxy.targets == [("CONNECT", f"127.0.0.1:{server.port}")]
        assert server.paths() == [f"/{TOKEN}"]


class PooledContract(NetworkContract):
    def test_consecutive_requests_reuse_one_connection(
        self, make: Make, server: LoopbackServer
    ) -> None:
        transport = make()
        for _ in range(3):
            assert transport.send(ping(server.url), timeout=2.0).status == 200
        assert server.connections == 1


class TestUrllib3OverHttp(PooledContract, HttpContract):
    transport_class = Urllib3Transport


class TestUrllib3OverHttps(PooledContract, HttpsContract):
    transport_class = Urllib3Transport


class TestStdlibOverHttp(HttpContract):
    transport_class = StdlibTransport


class TestStdlibOverHttps(HttpsContract):
    transport_class = StdlibTransport


class TestInMemory(TransportContract):
    def build(self, **options: Any) -> Transport:
        return InMemoryTransport({KEY: TOKEN}, **options)

    def check_delivered(self, transport: Transport, paths: list[str]) -> None:
        assert isinstance(transport, InMemoryTransport)
        seen = [urllib.parse.urlsplit(request.url).path for request in transport.requests]
        assert sorted(seen) == sorted(paths)

    def test_records_the_request_as_sent(self, make: Make, base_url: str) -> None:
        transport = make()
        request = Request("POST", f"{base_url}/{TOKEN}/fail", {"X-Question": "why"}, b"disk full")
        transport.send(request, timeout=TIMEOUT)
        assert isinstance(transport, InMemoryTransport)
        assert transport.requests == [request]

    def test_unknown_key_gets_404(self, make: Make, base_url: str) -> None:
        assert make().send(resolve(base_url, "no-such-key"), timeout=TIMEOUT).status == 404

    @pytest.mark.parametrize("status", [404, 500, 302])
    def test_staged_status_is_passed_through(self, make: Make, base_url: str, status: int) -> None:
        transport = make(handler=lambda request: Response(status, {"Location": "/x"}, b"staged"))
        response = transport.send(ping(base_url), timeout=TIMEOUT)
        assert (response.status, response.body) == (status, b"staged")


class TestNull(TransportContract):
    transport_class = NullTransport

    def test_any_key_resolves_to_the_placeholder(self, make: Make, base_url: str) -> None:
        body = json.loads(make().send(resolve(base_url, "anything"), timeout=TIMEOUT).body)
        assert body["ping_token"] == NullTransport.PLACEHOLDER_TOKEN


def test_request_repr_hides_the_token_path_and_the_authorization_header() -> None:
    text = repr(resolve(f"http://127.0.0.1:9/{TOKEN}"))
    assert TOKEN not in text
    assert API_KEY not in text
    assert "127.0.0.1:9" in text
    assert TOKEN not in repr(Request("POST", f"http://127.0.0.1:9/{TOKEN}/start?run_id=1"))


class OnlyClose:
    def close(self) -> None:
        """Releases nothing."""


class SendIsNotCallable(OnlyClose):
    send = "POST"


@pytest.mark.parametrize("candidate", [object(), OnlyClose(), SendIsNotCallable()])
def test_an_object_without_send_is_refused(candidate: object) -> None:
    with pytest.raises(TypeError, match="lacks send"):
        SteadyCron(Config(), transport=candidate)  # type: ignore[arg-type]


class TunnellingProxy:
    """A loopback forward proxy: answers plain-HTTP requests itself (recording the
    absolute URL) and tunnels CONNECT to the target."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, str]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TunnellingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)  # so that stopping is noticed
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.targets.append((method, target))
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\n")
                client.sendall(b"proxied")
                return
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._relay(client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        while not self._stopping.is_set():
            readable, _, _ = select.select(list(peers), [], [], 0.1)
            for source in readable:
                try:
                    data = source.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peers[source].sendall(data)
