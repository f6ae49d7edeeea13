"""docs/DESIGN.md stays true: its module map names every module, and only those that exist;
its Firestore hierarchy names every collection ``aletheia/cloud/layout.py`` builds."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DESIGN = (REPO / "docs" / "DESIGN.md").read_text()


def _block_after(heading: str) -> str:
    """The first fenced code block after ``heading``."""
    rest = DESIGN[DESIGN.index(heading) :]
    start = rest.index("```\n") + 4
    return rest[start : rest.index("```", start)]


def _mapped_modules() -> set[str]:
    """``aletheia/...py`` paths the module map lists."""
    found: set[str] = set()
    package = ""
    for line in _block_after("## Layers and module map").splitlines():
        name = line.split()[0] if line.strip() else ""
        if not line.startswith(" ") and name.startswith("aletheia/"):
            if name.endswith("/"):
                package = name
            else:
                found.add(name)
        elif line.startswith("  ") and name.endswith(".py") and package:
            found.add(package + name)
    return found


def _modules() -> set[str]:
    return {
        str(p.relative_to(REPO))
        for p in (REPO / "aletheia").rglob("*.py")
        if p.name != "__init__.py" or p.parent.name == "aletheia"
    }


def test_the_module_map_lists_every_module() -> None:
    missing = sorted(_modules() - _mapped_modules())
    assert not missing, f"add a line for each to the module map in docs/DESIGN.md: {missing}"


def test_the_module_map_lists_nothing_that_does_not_exist() -> None:
    stale = sorted(m for m in _mapped_modules() if not (REPO / m).is_file())
    assert not stale, f"remove from the module map in docs/DESIGN.md: {stale}"


def _collections() -> set[str]:
    """The collection names layout.py defines: its string constants before ``MAX_ID_LENGTH``."""
    names: set[str] = set()
    for node in ast.parse((REPO / "aletheia" / "cloud" / "layout.py").read_text()).body:
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        if node.targets[0].id == "MAX_ID_LENGTH":
            break
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            names.add(node.value.value)
    return names


def test_the_firestore_hierarchy_lists_every_collection() -> None:
    hierarchy = _block_after("## Firestore layout")
    shown = set(re.findall(r"^\s*([A-Za-z]+)/\{", hierarchy, flags=re.MULTILINE))
    assert _collections(), "layout.py defines no collection names: the parser is wrong"
    missing = sorted(_collections() - shown)
    assert not missing, f"add to the Firestore layout in docs/DESIGN.md: {missing}"
    gone = sorted(shown - _collections())
    assert not gone, f"no longer in aletheia/cloud/layout.py, remove from docs/DESIGN.md: {gone}"
