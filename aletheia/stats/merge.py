"""Profiles of parts of a table merged into the profile of the whole, without re-reading data.

The parts are profiles as :meth:`aletheia.stats.profiling.Profile.to_dict`
gives them (and as the profile blob stores them): files of one dataset
version, or partitions of a Spark DataFrame. Counts, missing values,
minimum, maximum, mean and standard deviation merge exactly (Chan's
pairwise update for the moments); distinct counts (HyperLogLog, exact while
every part kept its few hashes), quantiles and histograms (KLL) and top
values (frequent items) merge within the error bounds each merged column
states in ``error``. The result has the same format as its parts (sketches
included, so it merges again) plus ``parts``, how many profiles it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aletheia.stats.columnstats import ColumnStats, ProfileOptions
from aletheia.stats.formats import ProfileMergeError

#: Warnings and notes kept in a merged profile (the rest are counted).
MAX_MESSAGES = 20


def merge_profiles(
    profiles: Sequence[dict[str, Any]], options: ProfileOptions | None = None
) -> dict[str, Any]:
    """One profile of all ``profiles`` (same columns, in the same order), in their format.

    :class:`ProfileMergeError` when there is nothing to merge, a profile has
    no sketches (stored before profiles had them: profile that file again),
    or the columns differ (group the parts by schema first, see
    :func:`schema_key`).
    """
    if not profiles:
        raise ProfileMergeError("no profiles to merge")
    opts = options or ProfileOptions()
    stats0, sketches0 = _parts(profiles[0], 0)
    try:
        columns = [
            ColumnStats.from_profile(c, k, opts) for c, k in zip(stats0, sketches0, strict=True)
        ]
        for index, other in enumerate(profiles[1:], start=1):
            stats, sketches = _parts(other, index)
            if len(stats) != len(columns):
                raise ProfileMergeError(
                    f"profile {index} has {len(stats)} columns, not {len(columns)}",
                    "merge only profiles of the same table (group them by schema_key)",
                )
            for mine, stat, sketch in zip(columns, stats, sketches, strict=True):
                _check_same(mine, stat)
                mine.merge_profile(stat, sketch)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProfileMergeError(
            f"a profile has sketches this version cannot read: {exc!r}",
            "profile the file again with this version",
        ) from exc
    results = [c.result(opts) for c in columns]
    formats = sorted({str(p.get("format")) for p in profiles})
    return {
        "format": formats[0] if len(formats) == 1 else "mixed",
        "gzip": all(bool(p.get("gzip")) for p in profiles),
        "rows": sum(int(p.get("rows", 0)) for p in profiles),
        "columns_total": max(int(p.get("columns_total", 0)) for p in profiles),
        "columns_profiled": len(columns),
        "schema": [_schema_entry(r) for r in results],
        "stats": results,
        "warnings": _messages(p.get("warnings") for p in profiles),
        "notes": _messages(p.get("notes") for p in profiles),
        "sketches": [c.to_sketch() for c in columns],
        "parts": sum(int(p.get("parts", 1)) for p in profiles),
    }


def schema_key(profile: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """What parts of one table share: each column's name and kind, in order.

    Kinds rather than types, so a part whose column was read as integers
    merges with one where it was read as floats.
    """
    return tuple((str(c["name"]), str(c.get("kind"))) for c in profile.get("stats") or [])


def _parts(profile: dict[str, Any], index: int) -> tuple[list[dict], list[dict]]:
    stats = profile.get("stats") or []
    sketches = profile.get("sketches")
    if not isinstance(sketches, list) or len(sketches) != len(stats):
        raise ProfileMergeError(
            f"profile {index} has no sketches to merge (it was stored before profiles had them)",
            "profile the file again: `aletheia datasets reprofile NAME`",
        )
    return stats, sketches


def _check_same(mine: ColumnStats, stat: dict[str, Any]) -> None:
    if stat["name"] != mine.name or stat.get("kind") != mine.kind:
        raise ProfileMergeError(
            f"column {mine.name!r} ({mine.kind}) meets {stat['name']!r} ({stat.get('kind')})",
            "merge only profiles of the same table (group them by schema_key)",
        )
    if stat["type"] != mine.type:
        # Parts inferred differently (int64 in one file, double where a 1.5 appeared).
        mine.type = "double" if mine.kind == "numeric" else mine.type


def _schema_entry(stat: dict[str, Any]) -> dict[str, Any]:
    entry = {"name": stat["name"], "type": stat["type"], "nullable": stat["missing"] > 0}
    if "domain" in stat:
        entry["domain"] = stat["domain"]
    return entry


def _messages(lists: Any) -> list[str]:
    """Distinct messages in first-seen order, the rest counted."""
    seen: dict[str, None] = {}
    for messages in lists:
        for message in messages or []:
            seen.setdefault(str(message), None)
    out = list(seen)[:MAX_MESSAGES]
    if len(seen) > MAX_MESSAGES:
        out.append(f"{len(seen) - MAX_MESSAGES} more messages")
    return out
