"""The package's shape: imports point one way, and no module reaches into another's privates.

Read from the source with :mod:`ast`, every import counted, the ones inside
functions included (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aletheia"

#: Subpackages from the bottom up: a module may import from its own layer and the ones below.
LAYERS: list[set[str]] = [
    {"errors"},
    {"cloud"},
    {"stats"},
    {"data"},
    {"models"},
    {"tracking"},
    {"function", "devstack", "integrations", "webui"},
    {"spark"},  # optional (aletheia[spark]): only the CLI may reach it, and only lazily
    {"cli"},
]
#: Areas of one layer that must not import each other.
INDEPENDENT: list[tuple[str, str]] = [
    (a, b) for layer in LAYERS for a in layer for b in layer if a != b and "errors" not in layer
]


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``name`` from module ``target`` (``name`` is None for a module)."""

    source: str
    target: str
    name: str | None
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _edges() -> Iterator[Edge]:
    for source, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("aletheia"):
                        yield Edge(source, alias.name, None, node.lineno)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if not node.module.startswith("aletheia"):
                    continue
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    if submodule in MODULES:
                        yield Edge(source, submodule, None, node.lineno)
                    else:
                        yield Edge(source, node.module, alias.name, node.lineno)


EDGES = list(_edges())


def _area(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: ``aletheia.data.cache`` → data."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(area: str) -> int | None:
    return next((i for i, names in enumerate(LAYERS) if area in names), None)


def test_every_area_has_a_layer() -> None:
    """A new subpackage must say where it sits before it can be imported."""
    areas = {_area(m) for m in MODULES} - {""}
    missing = sorted(a for a in areas if _layer(a) is None)
    assert not missing, f"add {missing} to LAYERS in {Path(__file__).name}"


def test_imports_only_point_down() -> None:
    """Top calls down: no module imports from a layer above its own."""
    upward = []
    for edge in EDGES:
        src, dst = _area(edge.source), _area(edge.target)
        if not src or not dst or src == dst:  # the package's own __init__ re-exports the API
            continue
        if (src, dst) in INDEPENDENT or (_layer(dst) or 0) > (_layer(src) or 0):
            upward.append(f"{edge.source}:{edge.line} imports {edge.target}")
    assert not upward, "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or around a loop (lazy imports count)."""
    graph: dict[str, set[str]] = {}
    for edge in EDGES:
        # A package's __init__ is imported by every module in it; only its own imports count.
        if edge.target in MODULES and edge.target != edge.source:
            graph.setdefault(edge.source, set()).add(edge.target)
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle() -> None:
    """The check above is not vacuous."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names() -> None:
    """``_name`` is a module's own business; share it by making it public."""
    private = [
        f"{e.source}:{e.line} imports {e.target}.{e.name}"
        for e in EDGES
        if e.name and e.name.startswith("_") and e.target != e.source
    ]
    assert not private, "\n".join(private)


def test_spark_is_optional() -> None:
    """pyspark is an extra: only ``aletheia.spark`` imports it, and the CLI reaches that lazily.

    An import at the top of any other module would make every ``aletheia``
    command (and the storage function) fail without pyspark installed.
    """
    wrong = []
    for source, path in MODULES.items():
        area = _area(source)
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                spark = name == "pyspark" or name.startswith(("pyspark.", "aletheia.spark"))
                if not spark or area == "spark":
                    continue
                if area != "cli" or id(node) in top_level:
                    wrong.append(f"{source}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_has_a_docstring(module: str) -> None:
    """Every module says what it is for: the folder tree and these lines are the map."""
    assert ast.get_docstring(ast.parse(MODULES[module].read_text())), module
