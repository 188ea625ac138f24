"""``steadycron check --celery module:app``: which beat entries are monitored under which
key, and whether the monitor manifests agree with them.

It imports the app the way ``celery -A`` does (the current folder first on the path),
reads ``beat_schedule`` from its configuration and the keys ``instrument(app)`` gives each
entry, and sends nothing anywhere. Celery is imported only here, so ``steadycron run`` in
a crontab never pays for it.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from steadycron._protocol import PINGABLE_KINDS

from .celery_schedule import Schedule, compare, describe
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, say
from .manifest import ManifestJob, read_for_command

#: The job kinds the SDK pings.


class AppNotFoundError(ValueError):
    """``--celery`` names no importable Celery app; the message says what was tried."""


@attrs.frozen
class Entry:
    """One beat entry: its key (None when it is not monitored, ``why`` says why)."""

    name: str
    task: str
    key: str | None
    why: str
    schedule: Schedule


@attrs.frozen
class Finding:
    severity: str
    text: str


def run(target: str, manifest_paths: Iterable[str]) -> int:
    """List the entries of the app *target*, judge them against the manifests, and return
    the exit status of ``check``."""
    jobs = None
    if manifest_paths:
        jobs = read_for_command(manifest_paths, "check")
        if jobs is None:
            return EXIT_USAGE
    try:
        app = load_app(target)
    except AppNotFoundError as exc:
        say("error", str(exc))
        return EXIT_USAGE
    entries, findings = read_entries(app)
    tasks = keyed_tasks(app, findings)
    _print_table(entries, tasks)
    findings += judge(entries, tasks, jobs)
    for finding in findings:
        print(f"{finding.severity}: {finding.text}")
    errors = sum(finding.severity == "error" for finding in findings)
    monitored = sum(entry.key is not None for entry in entries)
    print(
        f"beat entries: {len(entries)}, monitored: {monitored}, tasks declared with a key: "
        f"{len(tasks)}; errors: {errors}, warnings: {len(findings) - errors}"
    )
    return EXIT_FAILED if errors else EXIT_OK


def load_app(target: str) -> Any:
    """Import ``module:attribute`` (or ``module``, then its ``app`` or ``celery``)."""
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise AppNotFoundError(f"--celery takes module:app, not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AppNotFoundError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for name in [attribute] if attribute else ["app", "celery"]:
        found: Any = module
        for part in name.split("."):
            found = getattr(found, part, None)
        if hasattr(found, "conf") and hasattr(found, "tasks"):
            return found
    tried = attribute or "app or celery"
    raise AppNotFoundError(f"{module_name!r} has no Celery app named {tried}")


def read_entries(app: Any) -> tuple[list[Entry], list[Finding]]:
    """The entries of ``beat_schedule``, keyed as beat keys them."""
    from celery.schedules import maybe_schedule

    from steadycron.integrations.celery import BUILTIN_ENTRIES, entry_key, is_instrumented

    entries: list[Entry] = []
    findings: list[Finding] = []
    instrumented = is_instrumented(app)
    if not instrumented:
        findings.append(
            Finding(
                "error",
                "the app is not instrumented, so nothing is monitored: call "
                "steadycron.integrations.celery.instrument(app) where the app is defined",
            )
        )
    for name, spec in (app.conf.beat_schedule or {}).items():
        try:
            task = str(spec["task"])
            schedule = describe(
                maybe_schedule(spec["schedule"], spec.get("relative", False), app=app), app
            )
            key = entry_key(app, name, task, spec.get("options"))
        except (KeyError, TypeError, ValueError) as exc:
            findings.append(Finding("error", f"entry {name!r}: {type(exc).__name__}: {exc}"))
            continue
        why = ""
        if key is None:
            why = (
                "not instrumented"
                if not instrumented
                else "Celery's own"
                if name in BUILTIN_ENTRIES
                else "excluded"
            )
        entries.append(Entry(name, task, key, why, schedule))
    return entries, findings


def keyed_tasks(app: Any, findings: list[Finding]) -> dict[str, str]:
    """Task name -> key, for the tasks declared with ``steadycron_key``."""
    try:
        tasks = dict(app.tasks)
    except Exception as exc:  # autodiscovery may need a framework set up first
        findings.append(
            Finding("warning", f"cannot list the app's tasks: {type(exc).__name__}: {exc}")
        )
        return {}
    keyed = {name: getattr(task, "steadycron_key", None) for name, task in sorted(tasks.items())}
    return {name: key for name, key in keyed.items() if isinstance(key, str)}


def judge(
    entries: list[Entry], tasks: Mapping[str, str], jobs: Mapping[str, ManifestJob] | None
) -> list[Finding]:
    """Findings about keys and schedules; without manifests, only what Celery means."""
    findings: list[Finding] = []
    used: set[str] = set(tasks.values())
    for entry in entries:
        if entry.key is None:
            continue
        used.add(entry.key)
        job = None if jobs is None else jobs.get(entry.key)
        notes = list(entry.schedule.notes)
        if job is not None and entry.schedule.interval is not None and job.interval is not None:
            notes = []  # the manifest says interval too: compare() judges it
        label = _label(entry)
        findings += [Finding("warning", f"{label}: {note}") for note in notes]
        if jobs is None:
            continue
        problem = _key_problem(entry.key, jobs)
        if problem:
            findings.append(Finding("error", f"{label}: {problem}"))
        elif job is not None:
            findings += [
                Finding("error", f"{label}: {difference}")
                for difference in compare(entry.schedule, job)
            ]
    if jobs is not None:
        for task, key in tasks.items():
            problem = _key_problem(key, jobs)
            if problem:
                findings.append(Finding("error", f"task {task!r}: {problem}"))
        findings += [
            Finding(
                "warning",
                f"job {key!r} ({_place(job)}) is declared but no beat entry or task uses it",
            )
            for key, job in jobs.items()
            if job.kind in PINGABLE_KINDS and key not in used
        ]
    return findings


def _key_problem(key: str, jobs: Mapping[str, ManifestJob]) -> str | None:
    job = jobs.get(key)
    if job is None:
        candidates = [name for name, job in jobs.items() if job.kind in PINGABLE_KINDS]
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"key {key!r} is not declared in the manifests{hint}"
    if job.kind not in PINGABLE_KINDS:
        where = _place(job)
        return f"key {key!r} names an {job.kind!r} job ({where}), not a heartbeat or agent job"
    return None


def _label(entry: Entry) -> str:
    if entry.key == entry.name:
        return f"entry {entry.name!r}"
    return f"entry {entry.name!r} (key {entry.key!r})"


def _place(job: ManifestJob) -> str:
    return job.path if job.line is None else f"{job.path}:{job.line}"


def _print_table(entries: list[Entry], tasks: Mapping[str, str]) -> None:
    rows = [("ENTRY", "KEY", "SCHEDULE", "TASK")]
    rows += [
        (entry.name, entry.key or f"- ({entry.why})", entry.schedule.text, entry.task)
        for entry in entries
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for *padded, last in rows:
        cells = [cell.ljust(width) for cell, width in zip(padded, widths, strict=True)]
        print("  ".join([*cells, last]))
    for task, key in tasks.items():
        print(f"task {task} is monitored on every call under {key!r}")
