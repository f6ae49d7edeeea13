"""Schema and statistics of a dataset's files, as rich tables or a self-contained HTML page.

Input is what the storage function wrote on each ``Files/{sha256}``
document, or a table of a version's profile
(:mod:`aletheia.stats.versionprofile`) shaped like one (:func:`table_doc`).
The HTML page needs nothing but a browser: styles inline, histograms and
top-value bars as inline SVG, no scripts, no external assets.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from rich.table import Table

FileStats = tuple[str, dict[str, Any]]  # (relative path, Files document)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _distinct(col: dict[str, Any]) -> str:
    """The distinct count, marked ``~`` when it is an estimate."""
    return _fmt(col.get("distinct")) + ("" if col.get("distinct_exact") else "~")


def _columns(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list((doc.get("stats") or {}).get("columns", []))


def file_table(path: str, doc: dict[str, Any]) -> Table:
    """One rich table: a row per column with type, counts, range and top values."""
    status = doc.get("status", "unknown")
    title = f"{path}  [{status}]"
    if status == "done":
        title += f"  {doc.get('rows', 0):,} rows, {doc.get('format', '')}"
    table = Table(title=title, title_justify="left")
    for header in ("column", "type", "count", "missing", "distinct", "min", "max", "mean", "std"):
        table.add_column(header, justify="left" if header in ("column", "type") else "right")
    table.add_column("top / domain")
    for col in _columns(doc):
        top = col.get("domain") or [t["value"] for t in col.get("top", [])[:3]]
        distinct = _distinct(col)
        table.add_row(
            str(col["name"]),
            str(col.get("type", "")),
            _fmt(col.get("count")),
            _fmt(col.get("missing")),
            distinct,
            _fmt(col.get("min")),
            _fmt(col.get("max")),
            _fmt(col.get("mean")),
            _fmt(col.get("std")),
            ", ".join(_fmt(v) for v in top)[:60],
        )
    return table


def table_title(table: dict[str, Any]) -> str:
    """How a version profile's table is named in reports."""
    return f"table {table.get('table')} ({table.get('files')} files merged)"


def table_doc(table: dict[str, Any]) -> dict[str, Any]:
    """A version profile's table in the shape of a ``Files`` document, for these reports."""
    return {
        "status": "done",
        "rows": table.get("rows", 0),
        "format": table.get("format"),
        "warnings": table.get("warnings") or [],
        "schema": {
            "truncated": table.get("truncated", False),
            "columns_in_doc": table.get("columns_in_doc"),
            "columns_total": table.get("columns_total"),
        },
        "stats": {"columns": table.get("stats") or []},
    }


def notes(doc: dict[str, Any]) -> list[str]:
    """Lines to print under a file's table: failures, how it was read, warnings, truncation."""
    out = []
    if doc.get("status") in ("failed", "unsupported", "deferred"):
        out.append(f"{doc['status']}: {doc.get('reason')}")
    out += [f"note: {n}" for n in doc.get("notes") or []]
    out += [f"warning: {w}" for w in doc.get("warnings", [])]
    schema = doc.get("schema") or {}
    if schema.get("truncated"):
        out.append(
            f"{schema.get('columns_in_doc')} of {schema.get('columns_total')} columns shown; "
            f"full profile: {doc.get('profile')}"
        )
    return out


# --------------------------------------------------------------------------- HTML

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right;vertical-align:middle}
td:first-child,th:first-child,td.l{text-align:left}
.bad{color:#b00020}.ok{color:#1b7f3b}.muted{color:#777}
"""


def html_report(
    title: str, files: Sequence[FileStats], validation: dict[str, Any] | None = None
) -> str:
    """A complete HTML page with a section per file and a chart per column."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if validation is not None:
        parts.append(_validation_html(validation))
    for path, doc in files:
        parts.append(_file_html(path, doc))
    parts.append("</body></html>")
    return "".join(parts)


def _e(value: Any) -> str:
    return html.escape(_fmt(value), quote=True)


def _validation_html(validation: dict[str, Any]) -> str:
    cls = "ok" if validation.get("ok") else "bad"
    head = (
        f"<p class='{cls}'>validation against {_e(validation.get('parent'))}: "
        f"{_e(validation.get('anomalies'))} anomalies in "
        f"{_e(validation.get('files_compared'))} files</p>"
    )
    items = [
        f"<li>{_e(f['path'])}: {_e(a['kind'])} {_e(a['column'])} ({_e(a['detail'])})</li>"
        for f in (validation.get("files") or {}).values()
        for a in f.get("anomalies", [])
    ]
    return head + (f"<ul>{''.join(items)}</ul>" if items else "")


def _file_html(path: str, doc: dict[str, Any]) -> str:
    status = doc.get("status", "unknown")
    rows = f" · {doc.get('rows', 0):,} rows · {_e(doc.get('format'))}" if status == "done" else ""
    out = [f"<h2>{_e(path)} <span class='muted'>[{_e(status)}]{rows}</span></h2>"]
    out += [f"<p class='bad'>{_e(line)}</p>" for line in notes(doc)]
    columns = _columns(doc)
    if not columns:
        return "".join(out)
    out.append(
        "<table><tr><th>column</th><th>type</th><th>count</th><th>missing</th>"
        "<th>distinct</th><th>min</th><th>max</th><th>mean</th><th>std</th>"
        "<th>distribution</th></tr>"
    )
    for col in columns:
        cells = [col["name"], col.get("type"), col.get("count"), col.get("missing")]
        cells += [_distinct(col), col.get("min"), col.get("max")]
        cells += [col.get("mean"), col.get("std")]
        tds = "".join(
            f"<td class='l'>{_e(v)}</td>" if i < 2 else f"<td>{_e(v)}</td>"
            for i, v in enumerate(cells)
        )
        out.append(f"<tr>{tds}<td>{_chart(col)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _chart(col: dict[str, Any]) -> str:
    """An inline SVG: a histogram for numbers, horizontal bars of top values otherwise."""
    hist = col.get("histogram")
    if hist and hist.get("counts"):
        return histogram_svg(hist["edges"], hist["counts"])
    top = col.get("top") or []
    if top:
        return bars_svg([(str(t["value"]), int(t["count"])) for t in top[:8]])
    return ""


def histogram_svg(edges: Sequence[float], counts: Sequence[int], width: int = 220) -> str:
    """Vertical bars of equal width, one per bin; hover shows the bin and count."""
    height, peak = 60, max(max(counts), 1)
    bar = width / len(counts)
    rects = []
    for i, count in enumerate(counts):
        h = height * count / peak
        lo, hi = edges[i], edges[min(i + 1, len(edges) - 1)]
        rects.append(
            f"<rect x='{i * bar:.1f}' y='{height - h:.1f}' width='{max(bar - 1, 1):.1f}' "
            f"height='{h:.1f}' fill='#4a7fb5'><title>[{_fmt(lo)}, {_fmt(hi)}): {count}</title>"
            "</rect>"
        )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"class='histogram' role='img'>{''.join(rects)}</svg>"
    )


def bars_svg(items: Sequence[tuple[str, int]], width: int = 220) -> str:
    """Horizontal bars with labels for the most frequent values."""
    row, peak = 14, max((c for _, c in items), default=1) or 1
    parts = []
    for i, (label, count) in enumerate(items):
        w = (width - 80) * count / peak
        y = i * row
        parts.append(
            f"<text x='0' y='{y + 10}' font-size='10'>{html.escape(label[:12])}</text>"
            f"<rect x='80' y='{y + 2}' width='{w:.1f}' height='{row - 4}' fill='#7a9e4a'>"
            f"<title>{html.escape(label)}: {count}</title></rect>"
        )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{row * len(items)}' "
        f"class='bars' role='img'>{''.join(parts)}</svg>"
    )
