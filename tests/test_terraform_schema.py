"""Every argument and block in terraform/ exists in the google provider's schema.

``terraform validate`` needs the provider binary, which cannot be downloaded
here. The provider's schema is also published on npm, as the generated
bindings of ``@cdktf/provider-google`` (16.12.1 is google provider 6.50.0,
inside the ``>= 5.30, < 7.0`` that terraform/versions.tf allows):
one TypeScript interface per resource and nested block, each property with
its Terraform name and whether it is optional. ``make test-deps`` unpacks
those declarations into ``.tools/provider-google``; these tests walk each
resource of terraform/ against them, so a misspelt argument, a block at the
wrong level or a missing required argument fails here, as it would fail
``terraform validate``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "terraform"
SCHEMA = ROOT / ".tools" / "provider-google" / "package" / "lib"
# Firebase Hosting is in the google-beta provider only (@cdktf/provider-google-beta 16.12.1,
# whose directories carry a ``google-`` prefix).
SCHEMA_BETA = (
    Path(os.environ.get("ALETHEIA_BETA_SCHEMA", ROOT / ".tools" / "provider-google-beta"))
    / "package"
    / "lib"
)
# Terraform's own meta-arguments, valid on any resource.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}

_INTERFACE = re.compile(r"^export interface (\w+)(?: extends [\w.]+)? \{\n(.*?)^\}", re.M | re.S)
_PROPERTY = re.compile(
    r"#(\w+) [^\n]*\n(?:\s*\*[^\n]*\n)*?\s*\*/\n\s*readonly (\w+)(\?)?: ([^;]+);", re.S
)


@dataclass
class Block:
    """One interface: Terraform argument name -> (type name, required)."""

    arguments: dict[str, tuple[str, bool]] = field(default_factory=dict)


def load_schema(type_name: str, kind: str, beta: bool = False) -> tuple[str, dict[str, Block]]:
    """The root interface name and every interface of one resource or data source."""
    short = type_name.removeprefix("google_").replace("_", "-")
    if beta:
        directory = SCHEMA_BETA / (f"data-google-{short}" if kind == "data" else f"google-{short}")
    else:
        directory = SCHEMA / (f"data-google-{short}" if kind == "data" else short)
    source = (directory / "index.d.ts").read_text(encoding="utf-8")
    blocks: dict[str, Block] = {}
    for name, body in _INTERFACE.findall(source):
        block = Block()
        for tf_name, _js_name, optional, type_expr in _PROPERTY.findall(body):
            type_id = re.sub(r"[^\w].*$", "", type_expr.strip().split(" | ")[0], flags=re.S)
            block.arguments[tf_name] = (type_id, not optional)
        blocks[name] = block
    root = next(n for n in blocks if n.endswith("Config") and not n.endswith("ConfigA"))
    return root, blocks


def check_body(
    body: dict[str, Any], block: Block, blocks: dict[str, Block], where: str
) -> list[str]:
    """Unknown arguments, and required ones missing, in ``body`` and its nested blocks."""
    problems = []
    body = _expand_dynamic(body)
    for key, value in body.items():
        if key in ("__is_block__", "__comments__") or key in META_ARGUMENTS:
            continue
        if key not in block.arguments:
            problems.append(f"{where}: unknown argument {key!r}")
            continue
        nested = blocks.get(block.arguments[key][0])
        if nested is not None and isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    problems += check_body(item, nested, blocks, f"{where}.{key}")
    for key, (_type, required) in block.arguments.items():
        if required and key not in body:
            problems.append(f"{where}: required argument {key!r} is missing")
    return problems


def _expand_dynamic(body: dict[str, Any]) -> dict[str, Any]:
    """``dynamic "x" { content { ... } }`` checked as the ``x`` blocks it generates."""
    expanded = {k: v for k, v in body.items() if k != "dynamic"}
    for item in body.get("dynamic", []):
        for label, spec in item.items():
            expanded.setdefault(label.strip('"'), []).extend(spec.get("content", []))
    return expanded


def resources() -> list[tuple[str, str, str, dict[str, Any]]]:
    """``(kind, type, name, body)`` of every google resource and data source in terraform/."""
    found = []
    for path in sorted(TF.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            doc = hcl2.load(handle)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    rtype = rtype.strip('"')
                    for name, body in named.items():
                        if rtype.startswith("google_"):
                            found.append((kind, rtype, name.strip('"'), body))
    return found


@pytest.fixture(scope="module", autouse=True)
def _schema_present() -> None:
    for schema in (SCHEMA, SCHEMA_BETA):
        if not schema.is_dir():
            pytest.fail(
                f"{schema} is missing: run `make test-deps` (it unpacks the provider schema)"
            )


@pytest.mark.parametrize(
    ("kind", "rtype", "name", "body"),
    resources(),
    ids=[f"{k}.{t}.{n}" for k, t, n, _ in resources()],
)
def test_arguments_match_the_provider_schema(
    kind: str, rtype: str, name: str, body: dict[str, Any]
) -> None:
    beta = "google-beta" in str(body.get("provider", ""))
    root, blocks = load_schema(rtype, kind, beta)
    assert check_body(body, blocks[root], blocks, f"{rtype}.{name}") == []


def test_the_schema_check_catches_misspelt_misplaced_and_missing_arguments() -> None:
    root, blocks = load_schema("google_storage_bucket", "resource")
    good = {
        "name": "b",
        "location": "EU",
        "soft_delete_policy": [{"retention_duration_seconds": 1}],
    }
    assert check_body(good, blocks[root], blocks, "b") == []
    misspelt = {**good, "soft_delete_polcy": [{}]}
    misplaced = {**good, "soft_delete_policy": [{"retention_days": 1}]}
    missing = {"name": "b"}
    assert check_body(misspelt, blocks[root], blocks, "b") == [
        "b: unknown argument 'soft_delete_polcy'"
    ]
    assert check_body(misplaced, blocks[root], blocks, "b") == [
        "b.soft_delete_policy: unknown argument 'retention_days'"
    ]
    assert check_body(missing, blocks[root], blocks, "b") == [
        "b: required argument 'location' is missing"
    ]
