"""The folders are the architecture: imports point inward, and ``api`` is imported by nobody.

Reads every module's imports (function-local ones too: a lazy import is still a dependency) with
:mod:`ast`, so nothing is imported to check. ``python -m tests.test_layers`` prints the graph by
folder. Also: no SQL text outside ``storage/`` and ``projections/`` (the runtime and the HTTP
layer ask those layers).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Innermost first: each folder may import those before it, never those after it.
FOLDERS = ("storage", "engine", "projections", "runtime", "api")
NOT_IMPORTING_API = ("storage", "engine", "projections", "runtime")
# Statements and SQLite's error text: either one outside storage/ and projections/ is SQL there.
SQL = re.compile(
    r"\b(SELECT\s|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|BEGIN\b|COMMIT\b|ROLLBACK\b"
    r"|PRAGMA\s|CREATE\s+(TABLE|INDEX|TRIGGER))|no such table"
)


def _modules() -> Iterator[tuple[str, Path]]:
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> set[str]:
    """The modules ``path`` imports (absolute names; relative imports resolved)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from api import x`
    return names


def module_graph() -> dict[str, set[str]]:
    """Each of our modules -> our modules it imports."""
    ours = dict(_modules())
    graph: dict[str, set[str]] = {}
    for module, path in ours.items():
        graph[module] = {name for name in _imports(module, path) if name in ours} - {module}
    return graph


def folder_graph() -> dict[str, set[str]]:
    """Each folder -> the other folders its modules import."""
    graph: dict[str, set[str]] = {folder: set() for folder in FOLDERS}
    for module, imported in module_graph().items():
        folder = module.split(".")[0]
        graph[folder].update(name.split(".")[0] for name in imported)
        graph[folder].discard(folder)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def describe(graph: dict[str, set[str]]) -> str:
    """The folder graph, one line per folder: ``api -> engine, projections, runtime, storage``."""
    return "\n".join(f"{f} -> {', '.join(sorted(graph[f])) or '(nothing)'}" for f in FOLDERS)


def test_the_folders_import_each_other_without_a_cycle() -> None:
    graph = folder_graph()
    print(describe(graph))
    assert find_cycle(graph) is None, describe(graph)
    # And inward only: a folder imports only folders listed before it in FOLDERS.
    for folder, imported in graph.items():
        inner = set(FOLDERS[: FOLDERS.index(folder)])
        assert imported <= inner, (folder, imported - inner)


def test_nothing_outside_api_imports_api() -> None:
    graph = folder_graph()
    for folder in NOT_IMPORTING_API:
        assert "api" not in graph[folder], describe(graph)
    offenders = [
        f"{module} imports {name}"
        for module, imported in module_graph().items()
        if module.split(".")[0] in NOT_IMPORTING_API
        for name in imported
        if name.split(".")[0] == "api"
    ]
    assert offenders == []


def test_no_module_cycle_even_through_lazy_imports() -> None:
    # The old api.server <-> api.worker circle was dodged with an import inside a function.
    assert find_cycle(module_graph()) is None


def test_no_sql_in_the_runtime_or_the_http_layer() -> None:
    found = []
    for module, path in _modules():
        if module.split(".")[0] not in ("runtime", "api"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if SQL.search(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_the_checks_see_what_they_look_for() -> None:
    # Guards against a checker that passes because it reads nothing.
    graph = module_graph()
    assert "runtime.process" in graph["api.cli"] or "runtime.process" in _imports(
        "api.cli", ROOT / "api" / "cli.py"
    )
    assert "storage.log" in graph["runtime.process"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert SQL.search("BEGIN IMMEDIATE") and SQL.search("no such table: x")
    assert not SQL.search("the beginning of a session")


if __name__ == "__main__":
    print(describe(folder_graph()))
