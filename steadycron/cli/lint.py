"""``steadycron lint``: catch monitor keys the manifests do not back before they deploy.

A misspelt key only shows itself when the job first runs in production (as a
``MonitorNotFoundError``), so this reads the Python sources with :mod:`ast` (it never
imports them), finds every key passed to ``job``, ``monitor``, ``Monitor`` and ``ping``,
and compares them with the monitor manifests.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from steadycron._protocol import PINGABLE_KINDS

if TYPE_CHECKING:
    from steadycron.cli.manifest import ManifestJob

#: Code -> (severity, meaning). Codes are stable: scripts and noqa comments name them.
CODES = {
    "SC001": ("error", "monitor key not declared in any manifest"),
    "SC002": ("error", "monitor key names a job that takes no pings (not heartbeat or agent)"),
    "SC003": ("error", "file could not be read or parsed"),
    "SC101": ("warning", "monitor key is not a string literal, so it cannot be checked"),
    "SC102": ("warning", "heartbeat or agent job that no scanned code references"),
}

#: The SDK callables whose first argument (or ``key=``) is a monitor key.
KEY_TAKERS = frozenset({"job", "monitor", "Monitor", "ping"})
#: The SDK callables that make a client (its methods take keys too).
CLIENT_FACTORIES = frozenset({"SteadyCron", "default_client"})
#: ``Monitor.ping`` takes a state first, not a key.
STATES = frozenset({"start", "success", "fail"})
SKIPPED_DIRECTORIES = frozenset({"__pycache__"})

_NOQA = re.compile(rb"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.I)

_EPILOG = f"""\
examples:
  steadycron lint --manifest monitors/
  steadycron lint src/ scripts/backup.py --manifest monitors/billing.yaml
  steadycron lint --manifest monitors/ --format json

Keys are found where they are passed as a string literal (first argument or key=) to
steadycron.job / monitor / Monitor / ping, to names imported from steadycron, and to
.job / .monitor / .Monitor / .ping of any other object (a client). Directories are
searched for *.py files, skipping hidden directories and __pycache__.

codes:
{chr(10).join(f"  {code}  {severity:<7}  {meaning}" for code, (severity, meaning) in CODES.items())}

Silence a finding with '# noqa: SC001' (or a bare '# noqa') on the line of the key.
exit status: 1 when there is an error, 0 otherwise (warnings alone included), 2 when a
manifest has errors or a path does not exist. Manifest warnings (an unknown field) are
printed on stderr and do not change the status.
"""


@attrs.frozen
class KeyUse:
    """A place where code passes a monitor key; ``key`` is None when it is not a literal."""

    path: str
    line: int
    col: int
    key: str | None


@attrs.frozen
class Finding:
    """One line of the report, positioned like other Python linters (1-based column)."""

    path: str
    line: int
    col: int
    code: str
    message: str

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``steadycron lint``."""
    summary = "check the monitor keys in Python code against the manifests"
    parser = subparsers.add_parser(
        "lint",
        help=summary,
        description=summary,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", default=["."], metavar="PATH", help="files or directories (default: .)"
    )
    parser.add_argument(
        "--manifest",
        action="append",
        required=True,
        metavar="PATH",
        help="monitor manifest file or directory (repeatable)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Lint, print the findings, and return the exit status."""
    import json
    import sys

    from steadycron.cli.manifest import read_for_command

    jobs = read_for_command(args.manifest, "lint")
    if jobs is None:
        return 2
    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        print(f"steadycron lint: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2

    files = list(python_files(args.paths))
    findings = lint(files, jobs)
    if args.format == "json":
        print(json.dumps([finding.as_dict() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
    errors = sum(finding.severity == "error" for finding in findings)
    if findings and args.format == "text":
        warnings = len(findings) - errors
        print(
            f"steadycron lint: {errors} error(s), {warnings} warning(s) in {len(files)} file(s)",
            file=sys.stderr,
        )
    return 1 if errors else 0


def python_files(paths: Iterable[str]) -> Iterator[str]:
    """Yield the files named in *paths* and the ``*.py`` files under its directories."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
            continue
        for root, directories, names in os.walk(path):
            directories[:] = sorted(
                name
                for name in directories
                if not name.startswith(".") and name not in SKIPPED_DIRECTORIES
            )
            for name in sorted(names):
                if name.endswith(".py"):
                    yield os.path.normpath(os.path.join(root, name))


def lint(files: Iterable[str], jobs: Mapping[str, ManifestJob]) -> list[Finding]:
    """Check the keys used in *files* against *jobs*; report what is wrong."""
    findings: list[Finding] = []
    referenced: set[str] = set()
    for path in files:
        try:
            with open(path, "rb") as file:
                source = file.read()
            uses = find_key_uses(source, path)
        except SyntaxError as exc:
            line, col = exc.lineno or 1, exc.offset or 1
            findings.append(Finding(path, line, col, "SC003", f"cannot parse: {exc.msg}"))
            continue
        except (OSError, ValueError) as exc:
            findings.append(Finding(path, 1, 1, "SC003", f"cannot read: {exc}"))
            continue
        lines = source.splitlines()
        for use in uses:
            if use.key is not None:
                referenced.add(use.key)
            finding = _judge(use, jobs)
            if finding is not None and not _silenced(finding, lines):
                findings.append(finding)

    for key, job in jobs.items():
        if job.kind in PINGABLE_KINDS and key not in referenced:
            message = f"{job.kind} job {key!r} is not referenced by any scanned code"
            findings.append(Finding(job.path, job.line or 1, 1, "SC102", message))
    return findings


def _judge(use: KeyUse, jobs: Mapping[str, ManifestJob]) -> Finding | None:
    if use.key is None:
        message = "monitor key is not a string literal, so it cannot be checked"
        return Finding(use.path, use.line, use.col, "SC101", message)
    job = jobs.get(use.key)
    if job is None:
        message = f"monitor key {use.key!r} is not declared in any manifest"
        suggestion = _closest(use.key, jobs)
        if suggestion is not None:
            message += f"; did you mean {suggestion!r}?"
        return Finding(use.path, use.line, use.col, "SC001", message)
    if job.kind not in PINGABLE_KINDS:
        where = job.path if job.line is None else f"{job.path}:{job.line}"
        message = (
            f"monitor key {use.key!r} names an {job.kind!r} job ({where}), "
            "not a heartbeat or agent monitor"
        )
        return Finding(use.path, use.line, use.col, "SC002", message)
    return None


def _closest(key: str, jobs: Mapping[str, ManifestJob]) -> str | None:
    """The declared key most like *key*, preferring jobs that can be pinged."""
    import difflib

    pingable = [name for name, job in jobs.items() if job.kind in PINGABLE_KINDS]
    for candidates in (pingable, list(jobs)):
        matches = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        if matches:
            return matches[0]
    return None


def _silenced(finding: Finding, lines: Sequence[bytes]) -> bool:
    if not 0 < finding.line <= len(lines):
        return False
    match = _NOQA.search(lines[finding.line - 1])
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or finding.code.encode() in re.split(rb"[\s,]+", codes.upper())


# -- finding keys in a module ----------------------------------------------------------------


def find_key_uses(source: str | bytes, path: str = "<source>") -> list[KeyUse]:
    """Return every monitor key passed in *source*, in source order.

    Raises:
        SyntaxError: *source* is not valid Python.
    """
    import warnings

    with warnings.catch_warnings():
        # Invalid escapes and the like are the scanned code's business, not ours.
        warnings.simplefilter("ignore")
        tree = ast.parse(source, filename=path)
    names = _SteadycronNames.collect(tree)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and names.takes_key(node):
            use = _key_use(node, path, names)
            if use is not None:
                uses.append(use)
    uses.sort(key=lambda use: (use.line, use.col))
    return uses


@attrs.define
class _SteadycronNames:
    """What the names in one module stand for, as far as finding keys needs to know.

    Flow-insensitive on purpose: a lint that guesses a little is more useful than one that
    misses the usual ``import steadycron as sc`` or ``from steadycron import job as j``.
    """

    #: Names bound to the steadycron module (``import steadycron as sc``).
    modules: set[str] = attrs.Factory(set)
    #: Names bound to its functions (``from steadycron import job as track``) -> real name.
    functions: dict[str, str] = attrs.Factory(dict)
    #: Names bound to other modules (``import ping3``): their ``.ping()`` is not ours.
    other_modules: set[str] = attrs.Factory(set)
    #: Names bound to ``Monitor(...)`` objects, whose ``.ping()`` takes a state, not a key.
    monitors: set[str] = attrs.Factory(set)
    #: Names bound to ``SteadyCron(...)`` or ``default_client()``, whose ``.ping()`` is ours.
    clients: set[str] = attrs.Factory(set)

    @classmethod
    def collect(cls, tree: ast.AST) -> _SteadycronNames:
        names = cls()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.asname or alias.name.partition(".")[0]
                    if alias.name == "steadycron" or (
                        alias.asname is None and alias.name.startswith("steadycron.")
                    ):
                        names.modules.add(name)
                    else:
                        names.other_modules.add(name)
            elif isinstance(node, ast.ImportFrom) and node.module == "steadycron":
                for alias in node.names:
                    if alias.name in KEY_TAKERS | CLIENT_FACTORIES:
                        names.functions[alias.asname or alias.name] = alias.name
        names.other_modules -= names.modules
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                bound = {target.id for target in targets if isinstance(target, ast.Name)}
                made = names.callee(node.value)
                if made == "Monitor":
                    names.monitors |= bound
                elif made in CLIENT_FACTORIES:
                    names.clients |= bound
        return names

    def callee(self, call: ast.Call) -> str | None:
        """The SDK name *call* calls (``job``, ``ping``...), or None when it is not one."""
        func = call.func
        if isinstance(func, ast.Name):
            return self.functions.get(func.id)
        if not isinstance(func, ast.Attribute):
            return None
        receiver = func.value
        if isinstance(receiver, ast.Name) and receiver.id in self.modules:
            return func.attr if func.attr in KEY_TAKERS | CLIENT_FACTORIES else None
        if isinstance(receiver, ast.Name) and receiver.id in self.other_modules:
            return None
        return func.attr if func.attr in KEY_TAKERS else None

    def takes_key(self, call: ast.Call) -> bool:
        name = self.callee(call)
        if name not in KEY_TAKERS:
            return False
        return name != "ping" or not self._is_monitor_ping(call)

    def _is_monitor_ping(self, call: ast.Call) -> bool:
        """Whether ``x.ping(...)`` is ``Monitor.ping(state, ...)`` rather than a client's."""
        func = call.func
        if not isinstance(func, ast.Attribute):
            return False
        receiver = func.value
        if isinstance(receiver, ast.Name) and receiver.id in self.monitors:
            return True
        if isinstance(receiver, ast.Call) and self.callee(receiver) == "Monitor":
            return True
        if isinstance(receiver, ast.Name) and receiver.id in self.modules | self.clients:
            return False
        if any(keyword.arg == "key" for keyword in call.keywords):
            return False
        # Any other object may be either: a client's ping takes the key first, a
        # Monitor's a state. Without a literal to tell them apart, leave the call alone.
        first = call.args[0] if call.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value in STATES
        return True


def _key_use(call: ast.Call, path: str, names: _SteadycronNames) -> KeyUse | None:
    """The key argument of *call*, or None when the call passes no key at all."""
    argument: ast.expr | None = None
    if call.args:
        argument = call.args[0]
    else:
        for keyword in call.keywords:
            if keyword.arg == "key" or keyword.arg is None:
                argument = keyword.value
                if keyword.arg == "key":
                    break
    if argument is None:
        return None
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        key: str | None = argument.value
    else:
        key = None
    return KeyUse(path, argument.lineno, argument.col_offset + 1, key)
