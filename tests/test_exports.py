"""The public surface: complete, sorted, importable."""

from __future__ import annotations

import ast
import traceback
from pathlib import Path

import steadycron
import steadycron.testing
import steadycron.transports


def test_all_is_sorted_and_complete() -> None:
    for module in (steadycron, steadycron.transports, steadycron.testing):
        names = module.__all__
        assert list(names) == sorted(names), module.__name__
        for name in names:
            assert getattr(module, name) is not None, name


def test_the_documented_names_are_exported() -> None:
    documented = {
        "Config", "SteadyCron", "Monitor", "job", "monitor", "configure", "default_client",
        "clear_cache", "SteadyCronError", "ConfigurationError", "AuthenticationError",
        "MonitorNotFoundError", "AmbiguousJobKeyError", "InvalidMonitorKindError",
        "ResolutionUnavailableError", "ManualRun", "__version__",
    }  # fmt: skip
    assert documented <= set(steadycron.__all__)
    transports = {
        "Transport", "Request", "Response", "TransportError", "Urllib3Transport",
        "StdlibTransport", "InMemoryTransport", "NullTransport",
    }  # fmt: skip
    assert transports <= set(steadycron.transports.__all__)


def test_every_error_derives_from_steadycron_error() -> None:
    errors = [
        getattr(steadycron, name)
        for name in steadycron.__all__
        if name.endswith("Error") and isinstance(getattr(steadycron, name), type)
    ]
    assert len(errors) >= 8
    assert all(issubclass(error, steadycron.SteadyCronError) for error in errors)
    assert issubclass(steadycron.transports.TransportError, steadycron.SteadyCronError)


def test_public_errors_show_the_name_users_import() -> None:
    errors = [
        getattr(steadycron, name)
        for name in steadycron.__all__
        if name.endswith("Error") and isinstance(getattr(steadycron, name), type)
    ]
    assert all(error.__module__ == "steadycron" for error in errors), errors
    transport_errors = ["ConnectError", "TransportTimeoutError", "ProtocolError"]
    for name in transport_errors:
        assert getattr(steadycron.transports, name).__module__ == "steadycron.transports"
    shown = traceback.format_exception_only(steadycron.MonitorNotFoundError("k"))
    assert shown[-1].startswith("steadycron.MonitorNotFoundError: monitor key 'k'")


def imported_modules(path: Path, module: str, modules: set[str]) -> set[str]:
    """The *modules* that *module* (at *path*) imports, at its top or inside a function,
    leaving out imports for type checkers. ``from package import name`` counts as an
    import of the submodule *name* where there is one, else of *package*."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    checked_only = {
        id(node)
        for test in ast.walk(tree)
        if isinstance(test, ast.If) and "TYPE_CHECKING" in ast.unparse(test.test)
        for statement in test.body
        for node in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in checked_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return (found & modules) - {module}


def test_no_module_of_the_package_imports_itself_back_in_a_circle() -> None:
    """The package itself (``steadycron``) is left out: it is the public face every
    submodule's import passes through, and a module may look a public name up there when
    it runs (``Monitor`` finds the default client so)."""
    root = Path(steadycron.__file__).parent
    paths = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    modules = set(paths) - {"steadycron"}
    graph = {name: imported_modules(paths[name], name, modules) for name in sorted(modules)}
    assert "steadycron._run" in graph["steadycron._client"]  # the walk sees imports at all

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph[path[-1]]):
            if target == start:
                return [*path, target]
            if target not in path:
                found = cycle_from(start, [*path, target])
                if found:
                    return found
        return None

    cycles = [cycle for name in sorted(graph) if (cycle := cycle_from(name, [name]))]
    assert not cycles, cycles
