"""The Redis fixture itself: a real server, on loopback, answering."""

from __future__ import annotations

import socket


def test_the_redis_fixture_serves_on_loopback(redis_url: str) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    assert host == "127.0.0.1"
    with socket.create_connection((host, int(port)), timeout=2) as connection:
        connection.sendall(b"SET steadycron ok\r\nGET steadycron\r\n")
        time_left = 20
        answer = b""
        while b"ok" not in answer and time_left:
            answer += connection.recv(64)
            time_left -= 1
    assert answer.startswith(b"+OK\r\n$2\r\nok")
