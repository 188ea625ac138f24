"""Run reports of agent monitors (API.md §9): what a run reports, and what its outcome sends."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

import pytest
from conftest import API_KEY, KEY, TOKEN
from loopback import Answer, LoopbackServer, Received, StandIn

import steadycron
from steadycron import Config, RunContext, SteadyCron
from steadycron.testing import Report, record
from steadycron.transports import InMemoryTransport, Request

AGENT = "nightly-summarizer"
AGENT_TOKEN = "tok_agent_secret_77a1"
RUN_ID = "0123456789abcdef0123456789abcdef"


def agent_client(**settings: Any) -> tuple[SteadyCron, InMemoryTransport]:
    """A client whose SteadyCron knows AGENT as an agent monitor and KEY as a heartbeat."""
    transport = InMemoryTransport({AGENT: AGENT_TOKEN, KEY: TOKEN}, kinds={AGENT: "agent"})
    return SteadyCron(Config(api_key=API_KEY, **settings), transport=transport), transport


def pings_to(transport: InMemoryTransport, token: str) -> list[Request]:
    return [request for request in transport.requests if f"/{token}" in request.url]


def failing_run(monitor: RunContext, error: Exception, **fields: Any) -> None:
    """Enter *monitor*, report *fields*, then let *error* end the run."""
    with monitor as run:
        run.report(**fields)
        raise error


def sent_report(request: Request) -> dict[str, Any]:
    assert request.headers["Content-Type"] == "application/json"
    assert request.body is not None
    document = json.loads(request.body)
    assert isinstance(document, dict)
    return document


# -- the fields: validation at the call, and their wire names --------------------------------

#: Python name, a valid value, its wire name and how it travels.
FIELDS = [
    ("items", 5, "itemsProduced", 5),
    ("output_chars", 1200, "outputChars", 1200),
    ("steps", 3, "steps", 3),
    ("tool_calls", 2, "toolCalls", 2),
    ("model", "gpt-x", "model", "gpt-x"),
    ("tokens_in", 1200, "tokensIn", 1200),
    ("tokens_out", 300, "tokensOut", 300),
    ("cost_usd", 0.0042, "costUsd", 0.0042),
    ("trace_url", "https://traces.example.org/r/1", "traceUrl", "https://traces.example.org/r/1"),
    ("summary", "5 tickets triaged", "summary", "5 tickets triaged"),
]


@pytest.mark.parametrize(("name", "value", "wire", "sent"), FIELDS)
def test_each_field_travels_under_its_wire_name(
    name: str, value: object, wire: str, sent: object
) -> None:
    client, transport = agent_client()
    fields: dict[str, Any] = {name: value}
    with client.monitor(AGENT) as run:
        run.report(**fields)
    assert sent_report(pings_to(transport, AGENT_TOKEN)[-1]) == {wire: sent}


COUNTS = ["items", "output_chars", "steps", "tool_calls", "tokens_in", "tokens_out"]


@pytest.mark.parametrize("name", COUNTS)
@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (True, TypeError, "non-negative int, not bool"),
        (1.0, TypeError, "non-negative int, not float"),
        ("3", TypeError, "non-negative int, not str"),
        (Decimal(2), TypeError, "non-negative int, not Decimal"),
        (-1, ValueError, ">= 0, not -1"),
    ],
)
def test_counts_must_be_non_negative_ints(
    name: str, value: object, error: type[Exception], words: str
) -> None:
    run = steadycron.Run(AGENT, RUN_ID)
    fields: dict[str, Any] = {name: value}
    with pytest.raises(error, match=f"report field {name} must be") as caught:
        run.report(**fields)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (True, TypeError, "not bool"),
        ("0.1", TypeError, "not str"),
        (float("nan"), ValueError, "finite"),
        (float("inf"), ValueError, "finite"),
        (Decimal("NaN"), ValueError, "finite"),
        (-0.01, ValueError, ">= 0"),
        (Decimal("-1"), ValueError, ">= 0"),
    ],
)
def test_cost_must_be_a_non_negative_finite_number(
    value: object, error: type[Exception], words: str
) -> None:
    run = steadycron.Run(AGENT, RUN_ID)
    with pytest.raises(error, match="report field cost_usd must be") as caught:
        run.report(cost_usd=value)  # type: ignore[arg-type]
    assert words in str(caught.value)


@pytest.mark.parametrize("name", ["model", "trace_url", "summary"])
@pytest.mark.parametrize("value", [3, b"bytes", ["list"]])
def test_text_fields_must_be_str(name: str, value: object) -> None:
    run = steadycron.Run(AGENT, RUN_ID)
    fields: dict[str, Any] = {name: value}
    with pytest.raises(TypeError, match=f"report field {name} must be a str"):
        run.report(**fields)


def test_a_refused_value_leaves_the_report_as_it_was() -> None:
    with record(keys={AGENT: "agent"}) as pings, steadycron.monitor(AGENT) as run:
        run.report(items=1)
        with pytest.raises(TypeError):
            run.report(steps=2, tokens_in=1.5)  # type: ignore[arg-type]
    assert pings.last_run(AGENT).report == Report(items=1)


def test_int_and_decimal_costs_are_accepted() -> None:
    with record(keys={AGENT: "agent"}) as pings, steadycron.monitor(AGENT) as run:
        run.report(cost_usd=1)
        run.report(cost_usd=Decimal("0.25"))
    assert pings.last_run(AGENT).report.cost_usd == 1.25


def test_a_manual_report_with_an_unknown_field_names_the_right_one() -> None:
    client, transport = agent_client()
    with pytest.raises(
        TypeError, match="unknown report field 'tokensIn'; did you mean 'tokens_in'"
    ):
        client.ping(AGENT, "success", run_id=RUN_ID, report={"tokensIn": 3})
    with pytest.raises(TypeError, match="unknown report field 'itemz'; did you mean 'items'"):
        client.ping(AGENT, "success", run_id=RUN_ID, report={"itemz": 3})
    with pytest.raises(TypeError, match="a report must be a mapping"):
        client.ping(AGENT, "success", report=[("items", 1)])  # type: ignore[arg-type]
    assert transport.requests == []  # refused before anything was resolved or sent


def test_a_report_goes_with_the_outcome_not_the_start() -> None:
    client, transport = agent_client()
    with pytest.raises(ValueError, match="not its start"):
        client.ping(AGENT, "start", run_id=RUN_ID, report={"items": 1})
    assert transport.requests == []


# -- adding up --------------------------------------------------------------------------------


def test_counts_and_cost_add_up_and_text_replaces() -> None:
    client, transport = agent_client()
    with client.monitor(AGENT) as run:
        run.report(tokens_in=1200, tokens_out=300, cost_usd=0.1, model="gpt-x", summary="first")
        run.report(items=5, steps=1, tool_calls=2, cost_usd=0.2, trace_url="https://t/1")
        run.report(items=2, steps=1, tokens_in=10, summary="5 tickets triaged", model="gpt-y")
    assert sent_report(pings_to(transport, AGENT_TOKEN)[-1]) == {
        "itemsProduced": 7,
        "steps": 2,
        "toolCalls": 2,
        "model": "gpt-y",
        "tokensIn": 1210,
        "tokensOut": 300,
        "costUsd": 0.3,  # added as decimals: not 0.30000000000000004
        "traceUrl": "https://t/1",
        "summary": "5 tickets triaged",
    }


def test_reports_from_many_threads_of_one_run_all_count() -> None:
    client, transport = agent_client()
    with client.monitor(AGENT) as run:

        def work() -> None:
            for _ in range(500):
                run.report(items=1, tokens_in=2, cost_usd=0.001)

        workers = [threading.Thread(target=work) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    report = sent_report(pings_to(transport, AGENT_TOKEN)[-1])
    assert (report["itemsProduced"], report["tokensIn"], report["costUsd"]) == (4000, 8000, 4.0)


def test_a_long_summary_is_cut_to_1024_bytes_keeping_its_head() -> None:
    client, transport = agent_client()
    with client.monitor(AGENT) as run:
        run.report(summary="triaged " + "é" * 2000)
    summary = str(sent_report(pings_to(transport, AGENT_TOKEN)[-1])["summary"])
    assert summary.startswith("triaged éé")
    assert summary.endswith("...")
    assert len(summary.encode()) <= 1024


# -- current_run ------------------------------------------------------------------------------


def test_current_run_is_none_outside_a_run() -> None:
    assert steadycron.current_run() is None


def test_current_run_is_the_innermost_open_run() -> None:
    with record(keys={AGENT: "agent", KEY: "heartbeat"}) as pings:
        with steadycron.monitor(AGENT) as outer:
            assert steadycron.current_run() is outer
            with steadycron.monitor(KEY) as inner:
                assert steadycron.current_run() is inner
                steadycron.current_run().report(items=1)  # type: ignore[union-attr]
            assert steadycron.current_run() is outer
            steadycron.current_run().report(items=10)  # type: ignore[union-attr]
        assert steadycron.current_run() is None
    assert pings.last_run(KEY).report.items == 1  # kept for the test kit, not sent
    assert pings.last_run(AGENT).report.items == 10


def test_current_run_inside_a_job_and_for_an_explicit_client() -> None:
    client, transport = agent_client()
    seen = []

    @client.job(AGENT)
    def summarize() -> None:
        run = steadycron.current_run()
        assert run is not None
        seen.append(run)
        run.report(items=3)

    summarize()
    assert seen[0].key == AGENT
    assert f"run_id={seen[0].run_id}" in pings_to(transport, AGENT_TOKEN)[-1].url
    assert sent_report(pings_to(transport, AGENT_TOKEN)[-1]) == {"itemsProduced": 3}


def test_a_job_that_hands_back_an_awaitable_is_current_while_that_runs() -> None:
    async def summarize() -> int:
        steadycron.current_run().report(steps=1)  # type: ignore[union-attr]
        return 1

    @steadycron.job(AGENT)
    def start_summarizing() -> Awaitable[int]:
        steadycron.current_run().report(steps=1)  # type: ignore[union-attr]
        return summarize()

    with record(keys={AGENT: "agent"}) as pings:
        pending = start_summarizing()
        assert steadycron.current_run() is None
        assert asyncio.run(pending) == 1  # type: ignore[arg-type]
    assert pings.last_run(AGENT).report.steps == 2


def test_a_manual_run_reports_too() -> None:
    with record(keys={AGENT: "agent"}) as pings:
        run = steadycron.Monitor(AGENT).start()
        run.report(items=2)
        run.record_usage({"usage": {"input_tokens": 5, "output_tokens": 1}})
        run.success()
    assert pings.last_run(AGENT).states == ["start", "success"]
    assert pings.last_run(AGENT).report == Report(items=2, tokens_in=5, tokens_out=1)


def test_each_thread_sees_its_own_run() -> None:
    client, transport = agent_client()
    barrier = threading.Barrier(4)
    seen: dict[int, tuple[str | None, str]] = {}

    def job(number: int) -> None:
        assert steadycron.current_run() is None
        with client.monitor(AGENT) as run:
            barrier.wait(timeout=10)  # every thread is inside its own run now
            current = steadycron.current_run()
            seen[number] = (None if current is None else current.run_id, run.run_id)
            run.report(items=number)
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=job, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(current == own for current, own in seen.values())
    assert len({own for _, own in seen.values()}) == 4
    items = sorted(sent_report(r)["itemsProduced"] for r in pings_to(transport, AGENT_TOKEN)[4:])
    assert items == [1, 2, 3, 4]


def test_each_asyncio_task_sees_its_own_run() -> None:
    with record(keys={AGENT: "agent"}) as pings:

        @steadycron.job(AGENT)
        async def summarize(items: int, started: asyncio.Event, go: asyncio.Event) -> str:
            run = steadycron.current_run()
            assert run is not None
            started.set()
            await go.wait()  # both tasks are inside their runs at once
            assert steadycron.current_run() is run
            run.report(items=items)
            return run.run_id

        async def main() -> list[str]:
            events = [asyncio.Event(), asyncio.Event()]
            go = asyncio.Event()
            tasks = [
                asyncio.create_task(summarize(n, event, go))
                for n, event in zip((1, 2), events, strict=True)
            ]
            for event in events:
                await event.wait()
            assert steadycron.current_run() is None  # the task awaiting them has none
            go.set()
            return list(await asyncio.gather(*tasks))

        run_ids = asyncio.run(main())
    runs = {run.run_id: run for run in pings.runs(AGENT)}
    assert [runs[run_id].report.items for run_id in run_ids] == [1, 2]


def test_a_task_started_inside_a_run_sees_that_run() -> None:
    async def main() -> None:
        async with steadycron.monitor(AGENT) as run:

            async def child() -> None:
                assert steadycron.current_run() is run
                steadycron.current_run().report(tool_calls=1)  # type: ignore[union-attr]

            await asyncio.gather(child(), child())

    with record(keys={AGENT: "agent"}) as pings:
        asyncio.run(main())
    assert pings.last_run(AGENT).report.tool_calls == 2


# -- record_usage -------------------------------------------------------------------------------


class Usage:
    def __init__(self, **counts: object) -> None:
        self.__dict__.update(counts)


class Response:
    def __init__(self, usage: object, model: str | None = None) -> None:
        self.usage = usage
        self.model = model


USAGES = [
    pytest.param(
        Response(Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150), "gpt-x"),
        (120, 30, "gpt-x"),
        id="openai-chat-object",
    ),
    pytest.param(
        {"model": "gpt-x", "usage": {"prompt_tokens": 120, "completion_tokens": 30}},
        (120, 30, "gpt-x"),
        id="openai-chat-dict",
    ),
    pytest.param(
        Response(Usage(input_tokens=120, output_tokens=30, total_tokens=150), "gpt-x"),
        (120, 30, "gpt-x"),
        id="openai-responses-object",
    ),
    pytest.param(
        {"usage": {"input_tokens": 120, "output_tokens": 30}},
        (120, 30, None),
        id="openai-responses-dict",
    ),
    pytest.param(
        Response(
            Usage(
                input_tokens=100,
                output_tokens=30,
                cache_creation_input_tokens=15,
                cache_read_input_tokens=5,
            ),
            "claude-x",
        ),
        (120, 30, "claude-x"),
        id="anthropic-object-with-cache",
    ),
    pytest.param(
        {
            "model": "claude-x",
            "usage": {
                "input_tokens": 120,
                "output_tokens": 30,
                "cache_creation_input_tokens": None,
                "cache_read_input_tokens": None,
            },
        },
        (120, 30, "claude-x"),
        id="anthropic-dict",
    ),
    pytest.param(Usage(input_tokens=120, output_tokens=30), (120, 30, None), id="usage-block"),
]


@pytest.mark.parametrize(("response", "expected"), USAGES)
def test_record_usage_reads_both_vendors_shapes(
    response: object, expected: tuple[int, int, str | None]
) -> None:
    with record(keys={AGENT: "agent"}) as pings, steadycron.monitor(AGENT) as run:
        run.record_usage(response)
        run.record_usage(response)
    report = pings.last_run(AGENT).report
    tokens_in, tokens_out, model = expected
    assert (report.tokens_in, report.tokens_out, report.model) == (
        2 * tokens_in,
        2 * tokens_out,
        model,
    )


def test_record_usage_keeps_a_model_already_reported() -> None:
    with record(keys={AGENT: "agent"}) as pings, steadycron.monitor(AGENT) as run:
        run.report(model="router")
        run.record_usage(Response(Usage(input_tokens=1, output_tokens=1), "gpt-x"))
    assert pings.last_run(AGENT).report.model == "router"


class Broken:
    @property
    def usage(self) -> object:
        raise RuntimeError("not loaded")


@pytest.mark.parametrize(
    "response",
    [
        None,
        object(),
        {"usage": None},
        {"choices": []},
        Broken(),
        "usage",
        {"usage": {"input_tokens": "12", "output_tokens": True}},
        {"usage": {"input_tokens": -3, "output_tokens": 1.5}},
    ],
    ids=["none", "object", "usage-none", "no-usage", "raises", "str", "not-ints", "bad-ints"],
)
def test_record_usage_ignores_what_it_cannot_read(
    response: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="steadycron")
    with record(keys={AGENT: "agent"}) as pings, steadycron.monitor(AGENT) as run:
        run.record_usage(response)
    assert pings.last_run(AGENT).report == Report()
    notes = [r for r in caplog.records if "record_usage" in r.getMessage()]
    assert notes
    assert all(r.levelno == logging.DEBUG for r in notes)


def test_record_usage_imports_no_vendor_library() -> None:
    for vendor in ("openai", "anthropic"):
        assert vendor not in sys.modules
    with record(keys={AGENT: "agent"}), steadycron.monitor(AGENT) as run:
        run.record_usage({"usage": {"input_tokens": 1, "output_tokens": 1}})
    assert not {"openai", "anthropic"} & set(sys.modules)


# -- what the outcome ping carries --------------------------------------------------------------


def test_an_agent_run_sends_json_on_its_outcome_and_nothing_on_its_start() -> None:
    client, transport = agent_client()
    with client.monitor(AGENT) as run:
        pass
    start, success = pings_to(transport, AGENT_TOKEN)
    assert start.url.endswith(f"/start?run_id={run.run_id}")
    assert start.body is None
    assert success.url.endswith(f"/{AGENT_TOKEN}?run_id={run.run_id}")
    assert sent_report(success) == {}  # an agent outcome always carries a report


def test_a_fail_carries_the_report_so_far_and_the_error_as_summary() -> None:
    client, transport = agent_client(capture_errors=True)
    error = TimeoutError("model did not answer")
    with pytest.raises(TimeoutError, match="model"):
        failing_run(client.monitor(AGENT), error, items=2, cost_usd=0.5, summary="half way")
    fail = pings_to(transport, AGENT_TOKEN)[-1]
    assert "/fail?" in fail.url
    assert sent_report(fail) == {
        "itemsProduced": 2,
        "costUsd": 0.5,
        "summary": "TimeoutError: model did not answer",
    }


def test_without_capture_errors_a_fail_keeps_the_reported_summary() -> None:
    client, transport = agent_client()
    with pytest.raises(TimeoutError, match="model"):
        failing_run(client.monitor(AGENT), TimeoutError("model"), summary="half way")
    assert sent_report(pings_to(transport, AGENT_TOKEN)[-1]) == {"summary": "half way"}


def test_a_heartbeat_run_sends_no_report_but_the_test_kit_keeps_it() -> None:
    steadycron.capture_errors = True
    transport = InMemoryTransport({KEY: TOKEN})
    steadycron.configure(api_key=API_KEY, transport=transport)
    with steadycron.monitor(KEY) as run:
        run.report(items=4, cost_usd=0.01)
    with pytest.raises(OSError, match="disk full"):
        failing_run(steadycron.monitor(KEY), OSError("disk full"), items=1)
    bodies = [request.body for request in pings_to(transport, TOKEN)]
    assert bodies == [None, None, None, b"OSError: disk full"]  # text message, no report

    steadycron.configure(transport=None)
    with record() as pings:
        with steadycron.monitor(KEY) as run:
            run.report(items=4, cost_usd=0.01)
        with pytest.raises(OSError, match="disk full"):
            failing_run(steadycron.monitor(KEY), OSError("disk full"), items=1)
    success, fail = pings.runs(KEY)
    assert success.report == Report(items=4, cost_usd=0.01)
    assert (fail.report, fail.message) == (Report(items=1), "OSError: disk full")


def test_a_run_that_reported_nothing_shows_an_empty_report() -> None:
    with record() as pings, steadycron.monitor(KEY):
        pass
    assert pings.last_run(KEY).report == Report()
    assert pings.pings[0].report is None  # the start


def test_manual_pings_carry_a_report_paired_with_their_start() -> None:
    steadycron.configure(api_key=API_KEY)
    with record(keys={AGENT: "agent"}) as pings:
        monitor = steadycron.Monitor(AGENT)
        monitor.ping(state="start", run_id=RUN_ID)
        monitor.ping(state="success", run_id=RUN_ID, report={"tokens_in": 10, "items": None})
        steadycron.ping(AGENT, "fail", "quota exceeded", run_id="f" * 32, report={"steps": 1})
    first, second = pings.runs(AGENT)
    assert first.states == ["start", "success"]
    assert first.report == Report(tokens_in=10)
    assert second.report == Report(steps=1, summary="quota exceeded")  # the message
    assert second.message is None  # an agent outcome's body is its JSON report


def test_client_ping_takes_a_report_too() -> None:
    client, transport = agent_client()
    client.ping(AGENT, "success", run_id=RUN_ID, report={"items": 1, "cost_usd": Decimal("0.5")})
    assert sent_report(pings_to(transport, AGENT_TOKEN)[-1]) == {"itemsProduced": 1, "costUsd": 0.5}


def test_the_report_never_carries_a_secret_the_client_holds() -> None:
    direct = "direct_token_for_other_9f3"
    client, transport = agent_client(monitors={"other": direct})
    client.resolve(KEY)  # a cached token of another monitor
    with client.monitor(AGENT) as run:
        run.report(
            summary=f"used {API_KEY} and {AGENT_TOKEN}",
            model=f"{TOKEN}-model",
            trace_url=f"https://t/{direct}",
        )
    body = pings_to(transport, AGENT_TOKEN)[-1].body or b""
    for secret in (API_KEY, AGENT_TOKEN, TOKEN, direct):
        assert secret.encode() not in body
    assert sent_report(pings_to(transport, AGENT_TOKEN)[-1]) == {
        "model": "***-model",
        "traceUrl": "https://t/***",
        "summary": "used *** and ***",
    }


def test_the_kind_is_known_when_tokens_are_not_cached() -> None:
    client, transport = agent_client(resolve_cache_ttl=0)
    with client.monitor(KEY) as run:
        run.report(items=1)
    with client.monitor(AGENT) as run:
        run.report(items=2)
    heartbeat, agent = pings_to(transport, TOKEN)[-1], pings_to(transport, AGENT_TOKEN)[-1]
    assert heartbeat.body is None  # a heartbeat's outcome, without the report
    assert sent_report(agent) == {"itemsProduced": 2}


def test_a_direct_token_sends_the_report_when_there_is_one() -> None:
    transport = InMemoryTransport()
    client = SteadyCron(Config(monitors={AGENT: AGENT_TOKEN}), transport=transport)
    with client.monitor(AGENT):
        pass
    with client.monitor(AGENT) as run:
        run.report(items=1)
    bodies = [request.body for request in transport.requests]
    assert bodies[:3] == [None, None, None]  # kind unknown and nothing reported: a heartbeat's
    assert sent_report(transport.requests[3]) == {"itemsProduced": 1}


def test_record_knows_agent_keys_and_still_refuses_unknown_ones() -> None:
    with record(keys={AGENT: "agent", KEY: "heartbeat"}) as pings:
        steadycron.ping(AGENT, "fail", report={"items": 0})
        steadycron.ping(KEY, "fail", "boom", report={"items": 0})
        with pytest.raises(steadycron.MonitorNotFoundError):
            steadycron.ping("nightly-sumarizer")
        with pytest.raises(TypeError, match="not the string"):
            record(keys=AGENT).__enter__()
    agent, heartbeat = pings.pings
    assert (agent.message, agent.report) == (None, Report(items=0))
    assert (heartbeat.message, heartbeat.report) == ("boom", Report(items=0))


# -- a 422 on the outcome, over a real server ---------------------------------------------------


class PairingStandIn(StandIn):
    """Answers an outcome with 422 unless its run's start arrived, as agent monitors do."""

    def __init__(self) -> None:
        super().__init__({AGENT: AGENT_TOKEN}, kinds={AGENT: "agent"})
        self.open: set[str] = set()
        self.lose_starts = False

    def __call__(self, request: Received) -> Answer:
        if request.path == f"/{AGENT_TOKEN}/start":
            if self.lose_starts:
                return Answer(503, b"down")
            self.open.add(request.query.get("run_id", ""))
        elif request.path == f"/{AGENT_TOKEN}" and request.query.get("run_id") not in self.open:
            return Answer.json(422, {"error": "run_not_open", "message": "no open start"})
        return super().__call__(request)


def test_a_422_on_the_outcome_is_logged_as_a_run_not_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="steadycron")
    stand_in = PairingStandIn()
    with LoopbackServer(stand_in) as server:
        config = Config(api_key=API_KEY, api_url=server.url, ping_url=server.url, ping_timeout=1)
        with SteadyCron(config) as client:
            with client.monitor(AGENT) as run:
                run.report(items=1)
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

            stand_in.lose_starts = True  # the start is lost in an outage
            with client.monitor(AGENT) as run:
                run.report(items=2)
        outcomes = [r for r in server.received if r.path == f"/{AGENT_TOKEN}"]
    assert [r.headers["content-type"] for r in outcomes] == ["application/json"] * 2
    assert [json.loads(r.body) for r in outcomes] == [{"itemsProduced": 1}, {"itemsProduced": 2}]
    [warning] = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and "state=success" in r.getMessage()
    ]
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "the run was not open on the server" in text
    assert "HTTP 422" in text
    assert "attempts=1" in text  # final: never retried
    assert AGENT_TOKEN not in text


# -- the manifest-aware fixture ------------------------------------------------------------------


def test_the_manifest_fixture_knows_agent_keys(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        monitors="""
        version: 2
        jobs:
          - id: nightly-summarizer
            name: Nightly summarizer
            kind: agent
            schedule: "0 2 * * *"
          - id: nightly-db-backup
            name: Nightly DB backup
            kind: heartbeat
            schedule: "15 3 * * *"
        """,
    )
    pytester.makepyfile(
        test_jobs="""
        import pytest
        import steadycron

        def fail():
            raise ValueError("model gone")

        @steadycron.job("nightly-summarizer")
        def summarize():
            steadycron.current_run().report(items=5, tokens_in=1200, cost_usd=0.0042)

        @steadycron.job("nightly-db-backup")
        def backup():
            steadycron.current_run().report(items=1)

        def test_agent_run_sends_its_report(steadycron_recorder):
            summarize()
            run = steadycron_recorder.last_run("nightly-summarizer")
            assert (run.report.items, run.report.tokens_in, run.report.cost_usd) == (
                5, 1200, 0.0042
            )
            assert run.report.summary is None and run.report.trace_url is None
            assert run.message is None   # the outcome's body was the JSON report

        @pytest.mark.steadycron(capture_errors=True)
        def test_agent_fail_carries_the_error_as_its_summary(steadycron_recorder):
            with pytest.raises(ValueError):
                steadycron.job("nightly-summarizer")(fail)()
            run = steadycron_recorder.last_run("nightly-summarizer")
            assert (run.report.summary, run.message) == ("ValueError: model gone", None)

        def test_heartbeat_run_keeps_its_report_unsent(steadycron_recorder):
            backup()
            assert steadycron_recorder.last_run("nightly-db-backup").report.items == 1
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--steadycron-manifest", "monitors.yaml"
    )
    result.assert_outcomes(passed=3)
