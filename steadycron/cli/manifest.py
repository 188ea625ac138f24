"""Reading monitor manifests: which keys exist, and what kind of job each names.

Local tooling (the stand-in server, ``steadycron check`` and ``lint``) needs the same
answer the real service would give for a key, so this follows the manifest rules of the
wire protocol: ``${NAME}`` / ``${NAME:-default}`` are filled in before parsing, a
directory is read file by file in path order, and a key may be defined only once.
The SDK itself never imports this module, and PyYAML is imported only when a manifest
is actually read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import yaml

KINDS = ("http", "heartbeat", "agent")
DEFAULT_KIND = "http"
MAX_KEY_LENGTH = 64
MANIFEST_SUFFIXES = (".yaml", ".yml")

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_OUTSIDE_SLUG = re.compile(r"[^a-z0-9]+")


@attrs.frozen
class ManifestJob:
    """One job of a manifest, as far as resolving its key is concerned."""

    key: str
    name: str
    kind: str
    path: str
    line: int | None


class ManifestError(ValueError):
    """A manifest cannot be read; the message says where (file and line) and what."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = path if line is None or path is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.path = path
        self.line = line


def slugify(name: str) -> str:
    """Return the key SteadyCron derives from a job's name when it has no ``id``."""
    slug = _OUTSIDE_SLUG.sub("-", name.lower()).strip("-")
    return slug[:MAX_KEY_LENGTH] or "job"


def load_manifests(
    paths: Iterable[str | os.PathLike[str]], *, environ: Mapping[str, str] | None = None
) -> dict[str, ManifestJob]:
    """Read manifest files and directories into a key -> job mapping.

    Args:
        paths: manifest files, or directories whose ``*.yaml`` / ``*.yml`` files are read
            in path order (not recursively; names starting with ``.`` are skipped).
        environ: where ``${NAME}`` takes its values; ``os.environ`` by default.

    Raises:
        ManifestError: a file is missing or unreadable, is not valid YAML, lacks a job
            ``name``, uses an unset ``${NAME}``, or defines a key already defined.
    """
    try:
        import yaml  # noqa: F401  (only checking that it is there)
    except ImportError:  # pragma: no cover - PyYAML is installed wherever tests run
        raise ManifestError(
            "reading manifests needs PyYAML: pip install 'steadycron[yaml]'"
        ) from None
    values = os.environ if environ is None else environ
    jobs: dict[str, ManifestJob] = {}
    for path in _manifest_files(paths):
        for job in _read_file(path, values):
            first = jobs.get(job.key)
            if first is not None:
                raise ManifestError(
                    f"duplicate job id {job.key!r}, first defined at {_place(first)}",
                    path=job.path,
                    line=job.line,
                )
            jobs[job.key] = job
    return jobs


def _place(job: ManifestJob) -> str:
    return job.path if job.line is None else f"{job.path}:{job.line}"


def _manifest_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
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
                raise ManifestError("directory holds no *.yaml or *.yml manifest", path=path)
        else:
            files = [path]
        for file in files:
            # The same file named twice (or through its directory) must not clash with itself.
            identity = Path(file).resolve()
            if identity not in seen:
                seen.add(identity)
                yield file


def _read_file(path: str, environ: Mapping[str, str]) -> Iterator[ManifestJob]:
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
            line=_line(node),
        )
    job_list = document.get("jobs")
    if job_list is None:
        return
    jobs_node = _value_node(node, "jobs")
    if not isinstance(job_list, list):
        raise ManifestError("'jobs' must be a list of jobs", path=path, line=_line(jobs_node))
    item_nodes = getattr(jobs_node, "value", None) or []
    for index, entry in enumerate(job_list):
        item_node = item_nodes[index] if index < len(item_nodes) else None
        yield _job(entry, path=path, line=_line(item_node), number=index + 1)


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


def _value_node(mapping: yaml.Node | None, key: str) -> yaml.Node | None:
    """Find the node under *key* of a mapping node (the last one wins, as in the values)."""
    found = None
    for key_node, value_node in getattr(mapping, "value", None) or []:
        if getattr(key_node, "value", None) == key:
            found = value_node
    return found


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else int(node.start_mark.line) + 1


def _job(entry: object, *, path: str, line: int | None, number: int) -> ManifestJob:
    if not isinstance(entry, dict):
        raise ManifestError(f"job #{number} must be a mapping with a name", path=path, line=line)
    name = entry.get("name")
    if name is None:
        raise ManifestError(f"job #{number} has no 'name' (it is required)", path=path, line=line)
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(
            f"job #{number}: 'name' must be a non-empty string", path=path, line=line
        )
    job_id = entry.get("id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise ManifestError(f"job {name!r}: 'id' must be a non-empty string", path=path, line=line)
    kind = entry.get("kind")
    if kind is None:
        kind = DEFAULT_KIND
    if kind not in KINDS:
        raise ManifestError(
            f"job {name!r}: 'kind' must be one of {', '.join(KINDS)}, not {kind!r}",
            path=path,
            line=line,
        )
    key = job_id if job_id is not None else slugify(name)
    return ManifestJob(key=key, name=name, kind=kind, path=path, line=line)
