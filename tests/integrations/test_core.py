"""The core every integration stands on: runs across hooks, never raising, errors once."""

from __future__ import annotations

import logging

import pytest

import steadycron
from steadycron.integrations._core import Pings, new_run_id
from steadycron.testing import record

KEY = "nightly-db-backup"


def test_a_run_opened_and_closed_in_separate_hooks_carries_one_run_id() -> None:
    pings = Pings()
    run_id = new_run_id()
    with record() as recorded:
        assert pings.start(KEY, run_id) is True
        pings.succeed(KEY, run_id)
    (run,) = recorded.runs(KEY)
    assert run.run_id == run_id
    assert run.states == ["start", "success"]


@pytest.mark.parametrize(("capture", "message"), [(True, "OSError: disk full"), (False, None)])
def test_a_failure_message_follows_capture_errors(capture: bool, message: str | None) -> None:
    steadycron.capture_errors = capture
    with record() as recorded:
        Pings().fail(KEY, new_run_id(), OSError("disk full"))
    assert recorded.last_run(KEY).message == message


def test_a_reason_decided_by_the_framework_is_always_sent() -> None:
    with record() as recorded:
        Pings().fail(KEY, None, reason="missed: the scheduler was down")
    assert recorded.pings[-1].state == "fail"
    assert recorded.pings[-1].message == "missed: the scheduler was down"


def test_a_key_that_fails_resolution_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pings = Pings()
    with record(keys=["other"]), caplog.at_level(logging.ERROR, "steadycron"):
        assert pings.start(KEY, new_run_id()) is False
        pings.fail(KEY, new_run_id(), RuntimeError("boom"))
        assert pings.start(KEY, new_run_id()) is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert KEY in errors[0].getMessage()


def test_an_explicit_client_is_used_instead_of_the_default() -> None:
    client = steadycron.SteadyCron(steadycron.Config())
    with record(client) as recorded, record() as default_recorded:
        Pings(client).succeed(KEY, new_run_id())
    assert recorded.states(KEY) == ["success"]
    assert default_recorded.states(KEY) == []
