"""Celery in one process: eager tasks, beat's stamping on the in-memory broker, and the
hooks' refusal to break anything. The real worker and beat processes are in
``test_celery_workers.py``."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import steadycron
from steadycron.testing import record
from steadycron.transports import InMemoryTransport

celery = pytest.importorskip("celery")
from celery import Celery, signals  # noqa: E402
from celery.beat import Scheduler, Service  # noqa: E402
from celery.exceptions import (  # noqa: E402
    Ignore,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    WorkerLostError,
)

from steadycron.integrations import _celery_worker as worker  # noqa: E402
from steadycron.integrations import celery as integration  # noqa: E402
from steadycron.integrations.celery import entry_key, instrument  # noqa: E402


@pytest.fixture
def app() -> Iterator[Any]:
    app = Celery("unit", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    app.conf.broker_connection_retry_on_startup = True
    try:
        yield app
    finally:
        app.close()


def _task(app: Any, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``app.task`` for one app only, typed for mypy (Celery ships no types)."""
    decorate: Callable[[Callable[..., Any]], Any] = app.task(shared=False, **options)
    return decorate


def _hex(task_id: str) -> str:
    return uuid.UUID(task_id).hex


# -- what is monitored, under which key ------------------------------------------------


def test_an_entry_is_keyed_by_option_then_keys_then_its_task_then_its_name(app: Any) -> None:
    @_task(app, steadycron_key="declared-key")
    def declared() -> None: ...

    instrument(app, keys={"mapped": "mapped-key", "both": "mapped-key"})
    task = declared.name
    assert entry_key(app, "plain", "other", {}) == "plain"
    assert entry_key(app, "plain", task, {}) == "declared-key"
    assert entry_key(app, "mapped", task, {}) == "mapped-key"
    assert entry_key(app, "both", task, {"steadycron_key": "option-key"}) == "option-key"
    headers = {"headers": {"steadycron_key": "header-key"}}  # django-celery-beat's JSON field
    assert entry_key(app, "both", task, headers) == "header-key"


def test_excluded_and_celerys_own_entries_are_not_monitored(app: Any) -> None:
    instrument(app, exclude=["quiet"])
    assert entry_key(app, "quiet", "t", {"steadycron_key": "k"}) is None
    assert entry_key(app, "celery.backend_cleanup", "celery.backend_cleanup", {}) is None
    instrument(app, keys={"celery.backend_cleanup": "cleanup"})
    assert entry_key(app, "celery.backend_cleanup", "celery.backend_cleanup", {}) == "cleanup"


def test_an_app_never_instrumented_has_no_monitored_entries(app: Any) -> None:
    assert entry_key(app, "plain", "t", {}) is None


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        ({"keys": {"entry": ""}}, ValueError, "keys['entry']"),
        ({"keys": {"entry": 3}}, TypeError, "keys['entry']"),
        ({"keys": ["entry"]}, TypeError, "keys must map"),
        ({"exclude": "entry"}, TypeError, "collection of beat entry names"),
        ({"exclude": [3]}, TypeError, "entry names must be str"),
        ({"client": object()}, TypeError, "SteadyCron client"),
    ],
)
def test_instrument_refuses_bad_arguments_saying_what_to_fix(
    app: Any, arguments: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[")):
        instrument(app, **arguments)


def test_instrument_refuses_what_is_not_a_celery_app() -> None:
    with pytest.raises(TypeError, match="needs a Celery app"):
        instrument(object())


# -- beat --------------------------------------------------------------------------------


class _Published:
    """Headers and properties of every message published while connected."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def __call__(self, headers: Any = None, properties: Any = None, **_: Any) -> None:
        self.messages.append((dict(headers), dict(properties)))


def test_beat_stamps_key_and_fresh_run_id_and_makes_no_network_call(app: Any) -> None:
    app.conf.task_always_eager = False
    app.conf.beat_schedule = {
        "nightly": {"task": "t.nightly", "schedule": 60.0},
        "keyed": {"task": "t.keyed", "schedule": 60.0, "options": {"steadycron_key": "k"}},
        "quiet": {"task": "t.quiet", "schedule": 60.0},
    }
    transport = InMemoryTransport()
    client = steadycron.SteadyCron(steadycron.Config(api_key="sc_ro_x"), transport=transport)
    instrument(app, client=client, exclude=["quiet"])
    published = _Published()
    signals.before_task_publish.connect(published, weak=False)
    try:
        service = Service(app, scheduler_cls=Scheduler, schedule_filename=None)
        signals.beat_init.send(sender=service)
        scheduler = service.scheduler
        for name in ("nightly", "nightly", "keyed", "quiet"):
            scheduler.apply_entry(scheduler.schedule[name], producer=None)
    finally:
        signals.before_task_publish.disconnect(published)
    (first, _), (second, _), (keyed, properties), (quiet, _) = published.messages
    assert (first["steadycron_key"], second["steadycron_key"]) == ("nightly", "nightly")
    assert first["steadycron_run_id"] != second["steadycron_run_id"]
    assert len(first["steadycron_run_id"]) == 32
    assert keyed["steadycron_key"] == "k"
    assert "steadycron_key" not in properties  # the entry option is not sent along
    assert "steadycron_key" not in quiet
    assert transport.requests == []


def test_an_invalid_key_in_an_entry_is_logged_and_the_entry_still_sent(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.task_always_eager = False
    app.conf.beat_schedule = {
        "odd": {"task": "t.odd", "schedule": 60.0, "options": {"steadycron_key": 42}}
    }
    instrument(app)
    published = _Published()
    signals.before_task_publish.connect(published, weak=False)
    try:
        service = Service(app, scheduler_cls=Scheduler, schedule_filename=None)
        signals.beat_init.send(sender=service)
        with caplog.at_level(logging.ERROR, "steadycron"):
            service.scheduler.apply_entry(service.scheduler.schedule["odd"])
    finally:
        signals.before_task_publish.disconnect(published)
    ((headers, _),) = published.messages
    assert "steadycron_key" not in headers
    assert "beat entry 'odd'" in caplog.text


# -- workers (eager) -----------------------------------------------------------------------


def test_retries_send_one_start_and_one_success_under_the_task_id(app: Any) -> None:
    @_task(app, bind=True, steadycron_key="flaky", max_retries=3, default_retry_delay=0)
    def flaky(self: Any) -> str:
        if self.request.retries < 2:
            raise self.retry()
        return "done"

    instrument(app)
    with record() as pings:
        result = flaky.delay()
    assert result.get() == "done"
    (run,) = pings.runs("flaky")
    assert run.states == ["start", "success"]
    assert run.run_id == _hex(result.id)


def test_a_task_that_fails_for_good_after_retries_fails_once(app: Any) -> None:
    @_task(app, bind=True, steadycron_key="doomed", max_retries=1, default_retry_delay=0)
    def doomed(self: Any) -> None:
        raise self.retry(exc=OSError("disk full"))

    steadycron.capture_errors = True
    instrument(app)
    with record() as pings:
        doomed.delay()
    assert pings.last_run("doomed").states == ["start", "fail"]
    assert pings.last_run("doomed").message == "OSError: disk full"


def test_without_capture_errors_a_fail_carries_no_message(app: Any) -> None:
    @_task(app, steadycron_key="boom")
    def boom() -> None:
        raise OSError("secret detail")

    instrument(app)
    with record() as pings:
        boom.delay()
    assert pings.last_run("boom").states == ["start", "fail"]
    assert pings.last_run("boom").message is None


def test_a_task_that_raises_ignore_ends_its_run_as_a_success(app: Any) -> None:
    @_task(app, steadycron_key="skipper")
    def skipper() -> None:
        raise Ignore()

    instrument(app)
    with record() as pings:
        skipper.delay()
    assert pings.last_run("skipper").states == ["start", "success"]


def test_tasks_without_a_key_are_untouched(app: Any) -> None:
    @_task(app)
    def plain() -> int:
        return 7

    instrument(app)
    with record() as pings:
        assert plain.delay().get() == 7
    assert pings.pings == []


def test_an_undeclared_key_is_logged_once_and_the_task_runs(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    @_task(app, steadycron_key="nobody-declared-this")
    def lonely() -> None:
        calls.append(1)

    instrument(app)
    with record(keys=["something-else"]), caplog.at_level(logging.ERROR, "steadycron"):
        for _ in range(3):
            lonely.delay()
    assert len(calls) == 3
    errors = [r for r in caplog.records if "nobody-declared-this" in r.getMessage()]
    assert len(errors) == 1


def test_a_task_declared_with_an_invalid_key_runs_unmonitored(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @_task(app, steadycron_key="")
    def blank() -> int:
        return 1

    instrument(app)
    with record() as pings, caplog.at_level(logging.ERROR, "steadycron"):
        assert blank.delay().get() == 1
    assert pings.pings == []
    assert "invalid monitor key" in caplog.text


# -- the hooks never break Celery ----------------------------------------------------------


def test_a_silent_steadycron_holds_a_task_up_by_one_ping_timeout_at_most(app: Any) -> None:
    from loopback import silent_listener

    @_task(app, steadycron_key="patient")
    def patient() -> str:
        return "ran"

    with silent_listener() as url:
        config = steadycron.Config(api_key="sc_ro_x", api_url=url, ping_url=url, ping_timeout=0.3)
        with steadycron.SteadyCron(config) as client:
            instrument(app, client=client)
            started = time.monotonic()
            assert patient.delay().get() == "ran"
            elapsed = time.monotonic() - started
    # The start ping waits out its budget; the outcome finds the circuit breaker open.
    assert elapsed < 0.3 + 0.5


class _NoRequest:
    """A task whose ``request`` is None, or whose every attribute read fails."""

    def __init__(self, app: Any, *, broken: bool = False) -> None:
        self.app = app
        self.name = "odd"
        self.steadycron_key = "odd-key"
        self._broken = broken

    @property
    def request(self) -> Any:
        if self._broken:
            raise RuntimeError("no request here")
        return None


@pytest.mark.parametrize("broken", [False, True])
def test_hooks_tolerate_a_missing_request_and_broken_tasks(app: Any, broken: bool) -> None:
    instrument(app)
    task = _NoRequest(app, broken=broken)
    task_id = str(uuid.uuid4())
    with record() as pings:
        worker.on_prerun(sender=task, task_id=task_id, task=task)
        worker.on_failure(sender=task, task_id=task_id, exception=OSError("x"))
        worker.on_success(sender=task)
        worker.on_postrun(sender=task, task_id=task_id, task=task, state="IGNORED")
        worker.on_revoked(sender=task, request=None)
        worker.on_received(sender=None, request=None)
        integration._on_publish(headers=None)
        integration._on_beat_init(sender=None)
    # With no request, the run is keyed by the task's key and the task id of the signal.
    assert [ping.state for ping in pings.pings] == ["start", "success"]
    assert {ping.run_id for ping in pings.pings} == {_hex(task_id)}


def test_a_hook_that_breaks_logs_and_returns(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        @property
        def app(self) -> Any:
            raise RuntimeError("kaboom")

    with caplog.at_level(logging.WARNING, "steadycron"):
        worker.on_prerun(sender=None, task_id="x", task=Exploding())
    assert "task_prerun hook skipped: RuntimeError: kaboom" in caplog.text


@pytest.mark.parametrize(
    ("exception", "message"),
    [
        (SoftTimeLimitExceeded(), "time limit: soft time limit exceeded"),
        (TimeLimitExceeded(30), "time limit: hard time limit (30 s) exceeded, the task was killed"),
        (WorkerLostError("signal 9 (SIGKILL)"), "worker lost: signal 9 (SIGKILL)"),
    ],
)
def test_time_limits_fail_the_run_saying_so_without_capture_errors(
    app: Any, exception: BaseException, message: str
) -> None:
    @_task(app, steadycron_key="slow")
    def slow() -> None: ...

    instrument(app)
    task_id = str(uuid.uuid4())
    request = type("Request", (), {"id": task_id, "task": slow, "headers": None})()
    with record() as pings:
        worker.on_received(request=request)  # the main process: no request later
        worker.on_failure(sender=slow, task_id=task_id, exception=exception)
        # Celery may report it again, this time with the task's request in place.
        slow.push_request(id=task_id)
        try:
            worker.on_failure(sender=slow, task_id=task_id, exception=exception)
        finally:
            slow.pop_request()
    assert [(p.state, p.message, p.run_id) for p in pings.pings] == [
        ("fail", message, _hex(task_id))
    ]


def test_a_revoked_message_fails_its_stamped_run(app: Any) -> None:
    @_task(app)
    def victim() -> None: ...

    instrument(app)
    run_id = uuid.uuid4().hex
    request = celery.app.task.Context(
        id=str(uuid.uuid4()), headers={"steadycron_key": "stamped", "steadycron_run_id": run_id}
    )
    with record() as pings:
        worker.on_revoked(sender=victim, request=request)
    assert [(p.key, p.state, p.message, p.run_id) for p in pings.pings] == [
        ("stamped", "fail", "revoked", run_id)
    ]


def test_a_retry_published_by_a_running_task_carries_its_run(app: Any) -> None:
    """Celery copies custom headers to a retry; the hook does it where a version does not."""
    from celery._state import _task_stack

    @_task(app, steadycron_key="carried")
    def carried() -> None: ...

    instrument(app)
    task_id = str(uuid.uuid4())
    carried.push_request(id=task_id, called_directly=False)
    _task_stack.push(carried)
    try:
        headers: dict[str, Any] = {"id": task_id, "task": carried.name}
        integration._on_publish(headers=headers, properties={})
        other: dict[str, Any] = {"id": str(uuid.uuid4()), "task": carried.name}
        integration._on_publish(headers=other, properties={})
    finally:
        _task_stack.pop()
        carried.pop_request()
    assert headers["steadycron_key"] == "carried"
    assert headers["steadycron_run_id"] == _hex(task_id)
    assert "steadycron_key" not in other


# -- imports -------------------------------------------------------------------------------


def test_neither_the_sdk_nor_the_command_line_imports_celery() -> None:
    code = (
        "import sys, steadycron, steadycron.cli, steadycron.integrations.celery as c\n"
        "from steadycron.cli import build_parser; build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
