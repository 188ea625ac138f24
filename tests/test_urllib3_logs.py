"""urllib3's own log records never carry a ping token out of our exchanges."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
import urllib3

from steadycron import Config, SteadyCron
from steadycron.transports import Urllib3Transport

TOKEN = "tok_secret_header_case_41"
MALFORMED = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Header Line\r\n\r\nOK"


@pytest.fixture
def malformed_server() -> Iterator[str]:
    """Answers every request with a header line urllib3 reports as a parsing defect."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(MALFORMED)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_malformed_answer_logs_no_token_at_info_or_above(
    malformed_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = Config(ping_url=malformed_server, monitors={"k": TOKEN}, ping_timeout=1)
    with SteadyCron(config, transport=Urllib3Transport()) as client:
        client.ping("k")
    urllib3_records = [r for r in caplog.records if r.name.startswith("urllib3")]
    assert any("Failed to parse headers" in r.getMessage() for r in urllib3_records)
    for record in caplog.records:
        text = record.getMessage() + (caplog.text if record.exc_info else "")
        if record.levelno >= logging.INFO or record.name.startswith("steadycron"):
            assert TOKEN not in text, record
    assert all(r.levelno == logging.DEBUG for r in urllib3_records), [
        (r.levelname, r.getMessage()) for r in urllib3_records
    ]
    assert all(TOKEN not in r.getMessage() for r in urllib3_records)


def test_the_applications_own_urllib3_records_are_left_alone(
    malformed_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    Urllib3Transport()  # loads the filter
    caplog.set_level(logging.WARNING)
    with urllib3.PoolManager(retries=False) as pool:
        pool.request("GET", f"{malformed_server}/its-own-path")
    assert any(
        r.levelno == logging.WARNING and "/its-own-path" in r.getMessage() for r in caplog.records
    )


def test_a_refused_port_logs_one_connection_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    refused = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    caplog.set_level(logging.DEBUG)
    config = Config(ping_url=refused, monitors={"k": TOKEN}, ping_timeout=1)
    with SteadyCron(config, transport=Urllib3Transport()) as client:
        client.ping("k")
    [discarded] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    attempts = int(discarded.rsplit("attempts=", 1)[1])
    assert attempts >= 3
    starting = [r for r in caplog.records if "Starting new HTTP" in r.getMessage()]
    assert len(starting) == attempts
