"""The pytest plugin (entry point ``pytest11``): the ``steadycron_recorder`` fixture.

- ``--steadycron-manifest PATH`` (repeatable; files or directories) or the ini option
  ``steadycron_manifest``: the recorder knows exactly the manifest's keys, so a misspelt
  key fails the test with ``MonitorNotFoundError``, as it would in production. The
  command-line option, when given, replaces the ini option.
- ``@pytest.mark.steadycron(keys=[...], capture_errors=True, environment="staging")``
  adjusts one test (and gives it the recorder): ``keys`` are then the keys that resolve
  (``keys=None``: any key), the other arguments are module settings for that test.
- Module settings changed during a test that uses the recorder are restored after it,
  pass or fail.

pytest loads this module; ``import steadycron`` never does. The manifest reader (and
PyYAML) is imported only when a manifest is configured.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from ._config import SETTING_NAMES
from ._default import configure, save_settings
from .testing import Recorder, record

MARKER = "steadycron"


@attrs.frozen
class _Manifest:
    """What the session's manifests declare: key -> job kind, and what to warn about."""

    kinds: dict[str, str]
    warnings: tuple[str, ...]
    sources: tuple[str, ...]


_MANIFEST = pytest.StashKey[_Manifest]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("steadycron")
    group.addoption(
        "--steadycron-manifest",
        action="append",
        default=[],
        metavar="PATH",
        dest="steadycron_manifest",
        help="monitor manifest file or directory; the steadycron_recorder fixture then "
        "resolves exactly its keys (repeatable; replaces the steadycron_manifest ini option)",
    )
    parser.addini(
        "steadycron_manifest",
        type="paths",
        default=[],
        help="monitor manifests (files or directories) whose keys steadycron_recorder knows",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(keys=[...], capture_errors=..., environment=..., ...): the monitor keys "
        "that resolve in this test, and module settings for it (restored afterwards)",
    )
    paths = _manifest_paths(config)
    if paths:
        _read_manifests(config, paths)


def _manifest_paths(config: pytest.Config) -> list[Path]:
    given: list[str] = config.getoption("steadycron_manifest") or []
    if given:
        base = config.invocation_params.dir
        return [base / os.path.expanduser(path) for path in given]
    return list(config.getini("steadycron_manifest"))


def _read_manifests(config: pytest.Config, paths: list[Path]) -> None:
    """Read the manifests once per session; a broken one stops the run, naming file and line."""
    from steadycron.cli.manifest import ManifestError, read_manifests

    try:
        manifest = read_manifests(paths)
    except ManifestError as exc:
        problems = "\n".join(f"  {p.severity}: {p}" for p in exc.problems)
        raise pytest.UsageError(
            f"steadycron: cannot use the monitor manifest:\n{problems}"
        ) from None
    config.stash[_MANIFEST] = _Manifest(
        kinds={key: job.kind for key, job in manifest.jobs.items()},
        warnings=tuple(f"steadycron: warning: {warning}" for warning in manifest.warnings),
        sources=tuple(map(str, paths)),
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    manifest = config.stash.get(_MANIFEST, None)
    if manifest is None:
        return []
    sources = ", ".join(manifest.sources)
    summary = f"steadycron: steadycron_recorder knows the {len(manifest.kinds)} keys of {sources}"
    return [summary, *manifest.warnings]


@pytest.fixture
def steadycron_recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Record the default client's pings for one test; restored afterwards, pass or fail.

    With a monitor manifest configured only its keys resolve, each with its job kind; the
    ``steadycron`` marker adjusts the keys and settings of one test.
    """
    manifest = request.config.stash.get(_MANIFEST, None)
    keys: Mapping[str, str] | None = None if manifest is None else manifest.kinds
    settings: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        keys, settings = _read_marker(marker, keys)
    restore = save_settings()
    try:
        configure(**settings)
        with record(keys=keys) as recorder:
            yield recorder
    finally:
        restore()


@pytest.fixture(autouse=True)
def _steadycron_marked(request: pytest.FixtureRequest) -> None:
    """A test marked ``steadycron`` records, whether or not it asks for the fixture."""
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("steadycron_recorder")


def _read_marker(
    marker: pytest.Mark, manifest: Mapping[str, str] | None
) -> tuple[Mapping[str, str] | None, dict[str, Any]]:
    """The keys and the module settings a ``steadycron`` marker asks for."""
    if marker.args:
        raise TypeError(
            f"@pytest.mark.{MARKER} takes keyword arguments only, e.g. "
            f"@pytest.mark.{MARKER}(keys=['nightly-db-backup'], capture_errors=True)"
        )
    settings = dict(marker.kwargs)
    keys = manifest
    if "keys" in settings:
        chosen = settings.pop("keys")
        if chosen is None or isinstance(chosen, Mapping):
            keys = chosen
        elif isinstance(chosen, str):
            raise TypeError(f"@pytest.mark.{MARKER}(keys=...) takes a list of keys, not {chosen!r}")
        else:
            known = manifest or {}
            keys = {key: known.get(key, "heartbeat") for key in chosen}
    for name in settings:
        if name not in SETTING_NAMES:
            close = difflib.get_close_matches(name, [*SETTING_NAMES, "keys"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"@pytest.mark.{MARKER} got an unknown argument {name!r}{hint}")
    return keys, settings
