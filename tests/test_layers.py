"""The package's floors: the SDK runtime below, the tools and integrations above it."""

from __future__ import annotations

import ast
from pathlib import Path

import steadycron

PACKAGE = Path(steadycron.__file__).resolve().parent
#: What sits above the runtime and may import it, never the other way round.
UPPER_FLOORS = ("cli", "integrations")
#: ``python -m steadycron`` is the command line's own door; pytest's plugin reads monitor
#: manifests with the tools' reader. ``import steadycron`` loads neither.
DOORS = ("__main__.py", "_pytest_plugin.py")


def _imported_modules(path: Path) -> set[str]:
    """Every module *path* imports, as absolute dotted names."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            prefix = f"{base}.{node.module}" if node.level and node.module else base
            target = prefix if node.level else (node.module or "")
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _runtime_modules() -> list[Path]:
    return [
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in (*UPPER_FLOORS, *DOORS)
    ]


def test_the_runtime_never_imports_the_tools_or_the_integrations() -> None:
    runtime = _runtime_modules()
    assert len(runtime) >= 10
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name
            for name in _imported_modules(path)
            if any(name.startswith(f"steadycron.{floor}") for floor in UPPER_FLOORS)
        )
        for path in runtime
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_walker_sees_relative_imports_of_the_tools() -> None:
    # The check above is only as good as its walker: it must see a tool's own imports.
    imported = _imported_modules(PACKAGE / "cli" / "check.py")
    assert "steadycron.cli.common" in imported
