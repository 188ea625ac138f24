"""What tests/run.py did on each interpreter, told as a table and one pytest-style line."""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _pythons import ROOT, Interpreter, Missing, version_key

#: pytest's words for outcomes, in the order of its summary line.
OUTCOMES = ("failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "warnings", "errors")
_COUNT = re.compile(r"(\d+) (failed|passed|skipped|deselected|xfailed|xpassed|warning|error)")
_SUMMARY = re.compile(r"(?:no tests ran|\d+ \w+(?:, \d+ \w+)*) in \d+(?:\.\d+)?s(?: \([\d:]+\))?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Part:
    """One thing done on one interpreter (an install, a lint, a test run), and how it went."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    #: Where a test run's output was kept, and whether it also went to the terminal.
    log: Path | None = None
    shown: bool = True


@dataclass
class Report:
    """Everything done on one interpreter; ``problem`` is what a failed install printed."""

    interpreter: Interpreter
    parts: list[Part] = field(default_factory=list)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return all(part.ok for part in self.parts)


def pytest_summary(output: str) -> tuple[str, Counter[str]] | None:
    """pytest's summary line at the end of *output*, and its counts by outcome."""
    for line in reversed(_ANSI.sub("", output).splitlines()):
        match = _SUMMARY.search(line)
        if match:
            counts: Counter[str] = Counter()
            for number, word in _COUNT.findall(match.group(0)):
                counts[word + "s" if word in ("warning", "error") else word] += int(number)
            return match.group(0), counts
    return None


def summary_line(counts: Counter[str], seconds: float) -> str:
    """``=== 1 failed, 2188 passed, 36 deselected in 301.52s (0:05:01) ===``, as pytest says it."""
    words = []
    for outcome in OUTCOMES:
        if counts[outcome]:
            singular = counts[outcome] == 1 and outcome in ("warnings", "errors")
            words.append(f"{counts[outcome]} {outcome[:-1] if singular else outcome}")
    took = f"{seconds:.2f}s"
    if seconds >= 60:
        whole = round(seconds)
        took += f" ({whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d})"
    text = f" {', '.join(words) or 'no tests ran'} in {took} "
    return text.center(max(len(text) + 2, 80), "=")


def summarize(reports: Sequence[Report], missing: Sequence[Missing], seconds: float) -> str:
    """A line per claimed interpreter, then pytest's kind of line for all of them.

    A failed step that is not a test run (an install, a lint, a type check) counts as an
    error on the last line, so that line never reads as a pass when something failed.
    """
    rows: list[tuple[str, str]] = []
    totals: Counter[str] = Counter()
    for report in reports:
        parts = []
        for part in report.parts:
            text = f"{part.name} {part.seconds:.1f}s" + (f" ({part.detail})" if part.detail else "")
            parts.append(text if part.ok else f"{text} FAILED")
            totals.update(part.counts)
            totals["errors"] += part.name != "pytest" and not part.ok
        verdict = "PASSED " if report.ok else "FAILED "
        rows.append((report.interpreter.release, verdict + "; ".join(parts)))
    rows += [(gone.version, f"SKIPPED not found: {gone.reason}") for gone in missing]
    rows.sort(key=lambda row: version_key(row[0]))
    title = f" Python {', '.join(version for version, _ in rows)} "
    lines = [f"{title:=^80}", *(f"{version:<8} {text}" for version, text in rows)]
    lines.append(summary_line(totals, seconds))
    return "\n".join(lines)


def show_problems(reports: Sequence[Report]) -> None:
    """What each failure printed, where it did not reach the terminal as it happened."""
    for report in reports:
        if report.problem:
            print(report.problem, flush=True)
        for part in report.parts:
            if not part.ok and part.log is not None and not part.shown:
                print(f"\n{' ' + str(part.log.relative_to(ROOT)) + ' ':-^80}", flush=True)
                sys.stdout.buffer.write(part.log.read_bytes())
                sys.stdout.buffer.flush()
