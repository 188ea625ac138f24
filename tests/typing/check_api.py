"""Type-checked, never run: the public API keeps the types users write against."""

from __future__ import annotations

from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from typing_extensions import assert_type

import steadycron
from steadycron import Config, ManualRun, Run, SteadyCron
from steadycron.testing import Recorder, Report, record
from steadycron.transports import Request, Response, Transport


@steadycron.job("nightly-db-backup")
def backup(path: str, *, verbose: bool = False) -> int:
    return len(path)


@steadycron.job("nightly-db-backup")
async def backup_async(path: str) -> bytes:
    return path.encode()


class MyTransport:
    """A user's own transport satisfies the Protocol structurally, without importing it."""

    def send(self, request: Request, *, timeout: float) -> Response:
        return Response(200)

    def close(self) -> None:
        pass


def uses_the_api() -> None:
    assert_type(backup("x", verbose=True), int)
    pending: Coroutine[Any, Any, bytes] = backup_async("x")
    pending.close()
    client = SteadyCron(Config(api_key="sc_ro_x"), transport=MyTransport())
    transport: Transport = MyTransport()
    assert_type(client.resolve("k"), str)
    with client.monitor("k") as run:
        assert_type(run, Run)
    with record(client) as pings:
        assert_type(pings, Recorder)
    assert_type(steadycron.ping_timeout, float)
    assert_type(steadycron.api_key, str | None)
    steadycron.monitors["k"] = "tok"
    client.ping("k", state="fail", message="m")
    started = steadycron.Monitor("k", client=client).start()
    assert_type(started, ManualRun)
    assert_type(started.run_id, str)
    started.report(items=0, summary="nothing to do")
    started.fail("disk full")
    transport.close()


def reports_a_run() -> None:
    run = steadycron.current_run()
    assert_type(run, Run | None)
    if run is not None:
        run.report(items=1, cost_usd=Decimal("0.01"), summary="done")
        run.report(cost_usd=0.5, model="gpt-x")
        run.record_usage({"usage": {"input_tokens": 1}})
    steadycron.Monitor("k").ping("success", run_id="r", report={"tokens_in": 10})
    with record(keys={"k": "agent"}) as pings:
        assert_type(pings.last_run("k").report, Report)
        assert_type(pings.last_run("k").report.cost_usd, float | None)


async def uses_async() -> None:
    async with steadycron.monitor("k") as run:
        assert_type(run, Run)
    assert_type(await backup_async("x"), bytes)
