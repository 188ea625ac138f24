"""Reading monitor manifests: which keys exist, what kind of job each names, and what is
wrong with them.

Local tooling (the stand-in server, ``steadycron check`` and ``lint``) needs the same
answer the real service would give for a key, so this follows the manifest rules of the
wire protocol: ``${NAME}`` / ``${NAME:-default}`` are filled in before parsing, a
directory is read file by file in path order, and a key may be defined only once. The
fields of each job are checked too (``manifest_rules``), and every problem of every file
is reported at once, so one run shows all there is to fix.
The SDK itself never imports this module, and PyYAML is imported only when a manifest
is actually read.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs

from .manifest_rules import (
    DEFAULT_KIND,
    KINDS,
    Problem,
    Problems,
    check_job,
    check_top_level,
    line_of,
    value_node,
)

if TYPE_CHECKING:
    import yaml

__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "Manifest",
    "ManifestError",
    "ManifestJob",
    "Problem",
    "load_manifests",
    "read_for_command",
    "read_manifests",
    "slugify",
    "substitute_variables",
]

MAX_KEY_LENGTH = 64
MANIFEST_SUFFIXES = (".yaml", ".yml")

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_OUTSIDE_SLUG = re.compile(r"[^a-z0-9]+")


@attrs.frozen
class ManifestJob:
    """One job of a manifest, as far as resolving its key and comparing its schedule with
    a scheduler's are concerned (``schedule``, ``interval`` and ``timezone`` as written)."""

    key: str
    name: str
    kind: str
    path: str
    line: int | None
    schedule: object = None
    interval: object = None
    timezone: object = None


@attrs.frozen
class Manifest:
    """The jobs of some manifests by key, and the warnings their reading raised."""

    jobs: dict[str, ManifestJob]
    warnings: tuple[Problem, ...] = ()


class ManifestError(ValueError):
    """A manifest cannot be used; the message says where (file and line) and what.

    ``reason``, ``path`` and ``line`` describe the first error; ``problems`` holds every
    error and warning found, in order, and the message lists every error.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        problems: Sequence[Problem] = (),
    ):
        first = Problem("error", message, path, line)
        problems = tuple(problems) or (first,)
        errors = [problem for problem in problems if problem.severity == "error"] or [first]
        super().__init__("\n".join(map(str, errors)))
        self.reason = errors[0].message
        self.path = errors[0].path
        self.line = errors[0].line
        self.problems = problems

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> ManifestError:
        """The error for *problems*, which hold at least one error."""
        first = next(problem for problem in problems if problem.severity == "error")
        return cls(first.message, path=first.path, line=first.line, problems=problems)


def slugify(name: str) -> str:
    """Return the key SteadyCron derives from a job's name when it has no ``id``."""
    slug = _OUTSIDE_SLUG.sub("-", name.lower()).strip("-")
    return slug[:MAX_KEY_LENGTH] or "job"


def load_manifests(
    paths: Iterable[str | os.PathLike[str]], *, environ: Mapping[str, str] | None = None
) -> dict[str, ManifestJob]:
    """Read manifest files and directories into a key -> job mapping (warnings dropped).

    See :func:`read_manifests`.
    """
    return read_manifests(paths, environ=environ).jobs


def read_manifests(
    paths: Iterable[str | os.PathLike[str]], *, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read manifest files and directories: their jobs by key, and what to warn about.

    Args:
        paths: manifest files, or directories whose ``*.yaml`` / ``*.yml`` files are read
            in path order (not recursively; names starting with ``.`` are skipped).
        environ: where ``${NAME}`` takes its values; ``os.environ`` by default.

    Raises:
        ManifestError: anything SteadyCron would refuse: a file missing, unreadable or not
            valid YAML, no ``version: 2``, a job without ``name``, an unknown ``kind``, a
            heartbeat job without ``schedule`` or ``interval``, an invalid cron expression
            or number of seconds, an unset ``${NAME}``, a key defined twice. It lists
            every error (and carries the warnings) of every file.
    """
    try:
        import yaml  # noqa: F401  (only checking that it is there)
    except ImportError:  # pragma: no cover - PyYAML is installed wherever tests run
        raise ManifestError(
            "reading manifests needs PyYAML: pip install 'steadycron[yaml]'"
        ) from None
    values = os.environ if environ is None else environ
    jobs: dict[str, ManifestJob] = {}
    found: list[Problem] = []
    for path in _manifest_files(paths, found):
        problems = Problems(path)
        try:
            for job in _read_file(path, values, problems):
                first = jobs.get(job.key)
                if first is None:
                    jobs[job.key] = job
                else:
                    problems.error(
                        f"duplicate job id {job.key!r}, first defined at {_place(first)}",
                        job.line,
                    )
        except ManifestError as exc:  # this file cannot be read further
            problems.error(exc.reason, exc.line)
        found += problems.found
    if any(problem.severity == "error" for problem in found):
        raise ManifestError.of(found)
    return Manifest(jobs, tuple(found))


def read_for_command(
    paths: Iterable[str | os.PathLike[str]], command: str, stream: IO[str] | None = None
) -> dict[str, ManifestJob] | None:
    """Read manifests for a subcommand, printing each warning and error on *stream*.

    Returns the jobs, or None when there was an error (the command then exits 2).
    """
    stream = sys.stderr if stream is None else stream
    try:
        manifest = read_manifests(paths)
    except ManifestError as exc:
        problems = exc.problems
        jobs = None
    else:
        problems = manifest.warnings
        jobs = manifest.jobs
    for problem in problems:
        print(f"steadycron {command}: {problem.severity}: {problem}", file=stream, flush=True)
    return jobs


def _place(job: ManifestJob) -> str:
    return job.path if job.line is None else f"{job.path}:{job.line}"


def _manifest_files(paths: Iterable[str | os.PathLike[str]], found: list[Problem]) -> Iterator[str]:
    """Yield each manifest file once, expanding directories in path order."""
    seen: set[Path] = set()
    for given in paths:
        path = os.fspath(given)
        if os.path.isdir(path):
            names = sorted(
                name
                for name in os.listdir(path)
                if name.endswith(MANIFEST_SUFFIXES) and not name.startswith(".")
            )
            files = [os.path.join(path, name) for name in names]
            files = [file for file in files if os.path.isfile(file)]
            if not files:
                found.append(Problem("error", "directory holds no *.yaml or *.yml manifest", path))
        else:
            files = [path]
        for file in files:
            # The same file named twice (or through its directory) must not clash with itself.
            identity = Path(file).resolve()
            if identity not in seen:
                seen.add(identity)
                yield file


def _read_file(path: str, environ: Mapping[str, str], problems: Problems) -> Iterator[ManifestJob]:
    """Yield the jobs of one file, noting what is wrong with it in *problems*.

    Raises:
        ManifestError: the file cannot be read any further (unreadable, not YAML...).
    """
    try:
        with open(path, encoding="utf-8-sig") as file:
            raw = file.read()
    except FileNotFoundError:
        raise ManifestError("no such file", path=path) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text ({exc.reason})", path=path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None
    text = substitute_variables(raw, environ, path=path)
    node, document = _parse(text, path)
    if document is None:
        return
    if not isinstance(document, dict):
        raise ManifestError(
            "the top level must be a mapping (version, namespace, jobs, ...)",
            path=path,
            line=line_of(node),
        )
    check_top_level(document, node, problems)
    job_list = document.get("jobs")
    if job_list is None:
        return
    jobs_node = value_node(node, "jobs")
    if not isinstance(job_list, list):
        raise ManifestError("'jobs' must be a list of jobs", path=path, line=line_of(jobs_node))
    item_nodes = getattr(jobs_node, "value", None) or []
    for index, entry in enumerate(job_list):
        item_node = item_nodes[index] if index < len(item_nodes) else None
        job = _job(entry, item_node, number=index + 1, problems=problems)
        if job is not None:
            yield job


def substitute_variables(text: str, environ: Mapping[str, str], *, path: str | None = None) -> str:
    """Fill ``${NAME}`` and ``${NAME:-default}`` from *environ*, as a shell would.

    The default is used when NAME is unset or empty; an unset ``${NAME}`` without a
    default is an error naming the line it is on.
    """

    def fill(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:
            return value
        line = text.count("\n", 0, match.start()) + 1
        raise ManifestError(
            f"${{{name}}} is not set; set it in the environment or write ${{{name}:-default}}",
            path=path,
            line=line,
        )

    return _VARIABLE.sub(fill, text)


def _parse(text: str, path: str) -> tuple[yaml.Node | None, object]:
    """Parse once, keeping both the node tree (for line numbers) and the plain values."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(
            f"invalid YAML: {problem}", path=path, line=None if mark is None else mark.line + 1
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", path=path) from None
    finally:
        loader.dispose()
    return node, document


def _job(
    entry: object, node: yaml.Node | None, *, number: int, problems: Problems
) -> ManifestJob | None:
    """The job *entry* declares, or None when it cannot be one (the errors say why)."""
    line = line_of(node)
    if not isinstance(entry, dict):
        problems.error(f"job #{number} must be a mapping with a name", line)
        return None
    before = len(problems.found)
    name = entry.get("name")
    if name is None:
        problems.error(f"job #{number} has no 'name' (it is required)", line)
    elif not isinstance(name, str) or not name.strip():
        problems.error(f"job #{number}: 'name' must be a non-empty string", line)
    label = f"job {name!r}" if isinstance(name, str) and name.strip() else f"job #{number}"
    job_id = entry.get("id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        problems.error(f"{label}: 'id' must be a non-empty string", line)
    kind = entry.get("kind")
    if kind is None:
        kind = DEFAULT_KIND
    if kind not in KINDS:
        problems.error(f"{label}: 'kind' must be one of {', '.join(KINDS)}, not {kind!r}", line)
    identified = len(problems.found) == before
    check_job(entry, label, node, problems)
    if not identified or not isinstance(name, str):
        return None
    key = job_id if job_id is not None else slugify(name)
    return ManifestJob(
        key=key,
        name=name,
        kind=kind,
        path=problems.path,
        line=line,
        schedule=entry.get("schedule"),
        interval=entry.get("interval"),
        timezone=entry.get("timezone"),
    )
