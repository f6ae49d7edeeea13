"""A dataset version's profile, shown as HTML in a notebook (``_repr_html_``).

The storage function profiles every data file it can read
(``Projects/{p}/Files/{sha256}``: status, rows, schema, per-column stats),
and each version gets its own profile, its files merged per table
(:mod:`aletheia.stats.versionprofile`). :class:`VersionProfile` gathers
both for one version and renders them as tables Jupyter displays when the
object is the last value of a cell: the version's tables first, then per
file its rows and status; per column its type, missing and distinct
counts, min, max and mean. Everything shown is escaped: column names and
values come from the data.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from aletheia.data.catalog import DatasetCatalog
from aletheia.data.getversion import DatasetHandle
from aletheia.data.manifests import FileEntry

#: Columns of the per-column table, as named in the stats the function writes.
STAT_KEYS = ("type", "missing", "distinct", "min", "max", "mean")
#: Files rendered in full; the rest are counted (a version can hold thousands).
MAX_FILES_SHOWN = 20


@dataclass(frozen=True)
class VersionProfile:
    """The profile of dataset ``name`` at ``version``: its tables, its files and their records.

    ``tables``: the version's tables (files of one schema merged), every
    column included; empty while a file is not profiled yet.
    """

    name: str
    version: str
    files: list[FileEntry]
    records: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    tables: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The version's ``tables`` (table, files, rows, column stats), then per file:
        path, size, status, rows and column stats (``None`` when not profiled)."""
        tables = [
            {k: t.get(k) for k in ("table", "files", "paths", "rows", "stats")} for t in self.tables
        ]
        out = []
        for e in self.files:
            rec = self.records.get(e.sha256, {})
            stats = (rec.get("stats") or {}).get("columns")
            out.append(
                {
                    "path": e.path,
                    "size": e.size,
                    "status": rec.get("status"),
                    "rows": rec.get("rows"),
                    "columns": stats,
                }
            )
        return {"name": self.name, "version": self.version, "tables": tables, "files": out}

    def _repr_html_(self) -> str:
        parts = [f"<h4>{_e(self.name)} {_e(self.version)}</h4>"]
        shown = self.to_dict()
        for table in shown["tables"]:
            if (table["files"] or 0) > 1:  # a table of one file is that file, shown below
                what = f"{table['files']} files merged, {table['rows']} rows"
                parts.append(f"<p><b>table {_e(table['table'])}</b> ({what})</p>")
                parts.append(_columns_html(table["stats"] or []))
        for entry in shown["files"][:MAX_FILES_SHOWN]:
            rows = "" if entry["rows"] is None else f", {entry['rows']} rows"
            status = entry["status"] or "not profiled"
            size = f"{entry['size']} bytes{rows}; {_e(status)}"
            parts.append(f"<p><b>{_e(entry['path'])}</b> ({size})</p>")
            columns = entry["columns"] or []
            if columns:
                parts.append(_columns_html(columns))
        hidden = len(self.files) - MAX_FILES_SHOWN
        if hidden > 0:
            parts.append(f"<p>… and {hidden} more file(s)</p>")
        return "\n".join(parts)


def profile(catalog: DatasetCatalog, handle: DatasetHandle) -> VersionProfile:
    """The profile of a resolved version: its tables and its files' records (batched reads)."""
    records = catalog.file_records(handle.files)
    own = catalog.version_profile(handle.name, handle.version) or {}
    return VersionProfile(
        handle.name, handle.version, handle.files, records, own.get("tables") or []
    )


def _columns_html(columns: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{k}</th>" for k in ("column", *STAT_KEYS))
    body = "".join(
        "<tr>"
        + f"<td>{_e(c.get('name'))}</td>"
        + "".join(f"<td>{_e(_fmt(c.get(k)))}</td>" for k in STAT_KEYS)
        + "</tr>"
        for c in columns
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))
