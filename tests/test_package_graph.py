"""The package graph of airflow_bridge has no cycle, and no private name crosses a package.

A node is a subpackage or top-level module of ``airflow_bridge`` (``airflow_bridge.spec``,
``airflow_bridge.config``...); an edge is any import of one from another: at module level, inside a
function, or under ``if TYPE_CHECKING`` alike. Parsed with ``ast``, nothing is imported. The layers the
rule produces are drawn in docs/architecture.md.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_bridge"
ROOT = "airflow_bridge"
ALLOWED_PRIVATE: set[tuple[str, str]] = set()
"""(importing file, imported private name) pairs accepted on purpose; none today."""


@dataclass(frozen=True)
class Import:
    source: str
    """The importing node (``spec``; ``airflow_bridge`` for the package's own ``__init__``)."""
    target: str
    where: str
    """``file:line`` of the import statement."""
    name: str
    """What is imported, as written (``airflow_bridge.spec.loader.load_spec``)."""


def _node(parts: list[str]) -> str:
    """``airflow_bridge.X...`` -> ``X`` (a subpackage or top-level module); ``airflow_bridge`` itself -> root."""
    return parts[1] if len(parts) > 1 else ROOT


def _is_node(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


@functools.cache
def _imports() -> tuple[Import, ...]:
    return tuple(_scan())


def _scan() -> Iterator[Import]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
        package = parts[:-1]  # what a relative import starts from (a module's package, or __init__'s own)
        module = parts if parts[-1] != "__init__" else parts[:-1]
        source = _node(module)
        where = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=where)):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".") for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                prefix = base + (node.module.split(".") if node.module else [])
                names = [[*prefix, alias.name] for alias in node.names]
            else:
                continue
            for name in names:
                if name[0] != ROOT:
                    continue
                # ``from airflow_bridge import spec`` imports the node ``spec``; ``import __version__`` the root.
                target = name[1] if len(name) > 1 and _is_node(name[1]) else ROOT
                yield Import(source, target, f"{where}:{node.lineno}", ".".join(name))


def _graph() -> dict[str, dict[str, list[Import]]]:
    graph: dict[str, dict[str, list[Import]]] = {}
    for imp in _imports():
        if imp.source != imp.target:
            graph.setdefault(imp.source, {}).setdefault(imp.target, []).append(imp)
    return graph


def _cycle(graph: dict[str, dict[str, list[Import]]]) -> list[str] | None:
    """One cycle of the graph as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph = _graph()
    assert len(graph) > 10, f"the graph looks wrong: {sorted(graph)}"
    cycle = _cycle(graph)
    if cycle is not None:
        steps = []
        for a, b in itertools.pairwise(cycle):
            evidence = graph[a][b]
            steps.append(f"  {a} -> {b}: " + "; ".join(f"{i.where} {i.name}" for i in evidence[:3]))
        raise AssertionError(
            f"import cycle {' -> '.join(cycle)}:\n"
            + "\n".join(steps)
            + "\nmove the shared piece to the package that owns it (see docs/architecture.md), "
            "not into a function-level import"
        )


def test_no_private_name_imported_across_packages() -> None:
    crossing = []
    for imp in _imports():
        inside = imp.name.split(".")[2:]  # below the node: submodules, then the imported name
        private = any(p.startswith("_") and not p.startswith("__") for p in inside)
        allowed = (imp.where.split(":")[0], imp.name.rsplit(".", 1)[-1]) in ALLOWED_PRIVATE
        if imp.source != imp.target and private and not allowed:
            crossing.append(f"{imp.where}: {imp.name}")
    assert not crossing, "private names imported from another package (make them public or move them):\n" + (
        "\n".join(crossing)
    )


def test_function_level_imports_count_and_a_cycle_is_found() -> None:
    graph = _graph()
    assert "governance" in graph["registry"]  # registry/guard.py imports governance inside functions only
    edge = {
        "a": {"b": [Import("a", "b", "a.py:1", "airflow_bridge.b.x")]},
        "b": {"a": [Import("b", "a", "b.py:2", "y")]},
    }
    assert _cycle(edge) == ["a", "b", "a"]
    assert _cycle({"a": edge["a"]}) is None
