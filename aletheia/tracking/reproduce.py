"""Reproduce a run's environment: read its requirements, compare them with this one.

A run stores its installed packages as ``name==version`` lines (see
:meth:`aletheia.tracking.envinfo.EnvInfo.requirements_text`). :func:`diff_env`
compares them and the python version with the local environment and says
what is **missing**, installed in **other versions**, **extra** here, and
whether **python** differs. The local environment can run the recorded code
as recorded when nothing is missing, no version differs and python matches
(:attr:`EnvDiff.matches`); extra local packages are reported but harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from aletheia.errors import ValidationError
from aletheia.tracking.envinfo import EnvInfo, normalize_name

# name, optional [extras], then == / === version, or @ url; env markers after ';'.
_PINNED = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?:(?:===|==)\s*(?P<version>[^\s;]+)|@\s*(?P<url>[^\s;]+))\s*(?:;.*)?$"
)


def parse_requirements(text: str) -> dict[str, str]:
    """``{normalized name: version}`` from pinned requirement lines.

    Reads what :meth:`EnvInfo.requirements_text` and ``pip freeze`` write:
    ``name==version`` (also ``===``, extras and environment markers),
    ``name @ url`` (the version is then ``@ url``), blank lines, ``#``
    comments and pip options such as ``-e`` or ``--index-url``, which are
    skipped. An unpinned line (``numpy>=1.26``) cannot say what was installed
    and raises :class:`~aletheia.errors.ValidationError` naming the line.
    """
    packages: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line or line.startswith("-"):
            continue
        match = _PINNED.match(line)
        if not match:
            raise ValidationError(
                f"requirements line {number} is not pinned: {raw.strip()!r}",
                "expected 'name==version' lines, as `pip freeze` writes them",
            )
        version = match["version"] or f"@ {match['url']}"
        packages[normalize_name(match["name"])] = version
    return packages


def _strip_comment(line: str) -> str:
    # pip treats '#' as a comment at line start or after white space (URLs keep fragments).
    if line.lstrip().startswith("#"):
        return ""
    return re.split(r"\s+#", line, maxsplit=1)[0]


@dataclass(frozen=True)
class EnvDiff:
    """Where the local environment differs from a recorded one.

    ``missing``: recorded name → version, not installed here. ``changed``:
    name → (recorded, local). ``extra``: installed here only, name → local
    version. ``python``: (recorded, local) when the versions differ, else None.
    """

    missing: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    python: tuple[str, str] | None = None

    @property
    def matches(self) -> bool:
        """Every recorded package is here in its recorded version, on the same python."""
        return not (self.missing or self.changed or self.python)

    @property
    def identical(self) -> bool:
        """:attr:`matches`, and nothing extra is installed either."""
        return self.matches and not self.extra

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for ``--json``)."""
        return {
            "matches": self.matches,
            "python": (
                {"recorded": self.python[0], "local": self.python[1]} if self.python else None
            ),
            "missing": self.missing,
            "changed": {n: {"recorded": r, "local": lo} for n, (r, lo) in self.changed.items()},
            "extra": self.extra,
        }


def diff_env(recorded_packages: dict[str, str], recorded_python: str, current: EnvInfo) -> EnvDiff:
    """Compare a recorded package list and python version with ``current``.

    Names are compared PEP 503 normalized, so ``PyYAML`` and ``pyyaml`` are one
    package; an empty ``recorded_python`` means "not recorded" and is not a
    difference.
    """
    recorded = {normalize_name(n): v for n, v in recorded_packages.items()}
    local = {normalize_name(n): v for n, v in current.packages.items()}
    missing = {n: v for n, v in sorted(recorded.items()) if n not in local}
    changed = {
        n: (v, local[n]) for n, v in sorted(recorded.items()) if n in local and local[n] != v
    }
    extra = {n: v for n, v in sorted(local.items()) if n not in recorded}
    here = current.python.version
    python = (recorded_python, here) if recorded_python and recorded_python != here else None
    return EnvDiff(missing=missing, changed=changed, extra=extra, python=python)


def render_table(diff: EnvDiff, *, show_extra: bool = False) -> Table:
    """A rich table of the differences: what, recorded, local, status.

    Extra local packages are counted in the caption, or listed with
    ``show_extra``.
    """
    table = Table("package", "recorded", "local", "status", title="environment differences")
    if diff.python:
        table.add_row("python", diff.python[0], diff.python[1], "[yellow]other python[/]")
    for name, version in diff.missing.items():
        table.add_row(name, version, "-", "[red]missing[/]")
    for name, (recorded, local) in diff.changed.items():
        table.add_row(name, recorded, local, "[yellow]other version[/]")
    if show_extra:
        for name, version in diff.extra.items():
            table.add_row(name, "-", version, "[dim]extra[/]")
    table.caption = _caption(diff)
    return table


def _caption(diff: EnvDiff) -> str:
    counts = [
        f"{len(diff.missing)} missing",
        f"{len(diff.changed)} other version(s)",
        f"{len(diff.extra)} extra",
        "other python" if diff.python else "same python",
    ]
    return ", ".join(counts)
