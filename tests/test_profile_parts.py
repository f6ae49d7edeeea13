"""A file profiled in parts side by side gives the profile one pass gives (no stack needed).

Each case writes a real file and profiles it twice with
:func:`aletheia.stats.profiling.profile`: in one pass (``parts=1``) and cut
into parts (small ``min_part_bytes`` so that small files are cut). Every
exact statistic must be the same; means and standard deviations are sums
added in another order, so they agree to rounding. What is counted is how
many parts were read and how many rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aletheia.stats import fileparts
from aletheia.stats.formats import detect_format
from aletheia.stats.options import ProfileOptions
from aletheia.stats.profiling import Profile, profile

#: Statistics that are sums of floats: equal up to the order they were added in.
_ROUNDED = ("mean", "std", "mean_length")


def _profile(path: Path, parts: int, **options: Any) -> Profile:
    head = path.read_bytes()[:8]
    opts = ProfileOptions(parts=parts, min_part_bytes=2048, block_size=4096, **options)
    return profile(lambda: path.open("rb"), detect_format(path.name, None, head), opts)


def _assert_same(split: Profile, single: Profile) -> None:
    """Every statistic of ``split`` is ``single``'s (sums of floats to rounding)."""
    a, b = split.to_dict(), single.to_dict()
    a.pop("sketches"), b.pop("sketches")
    stats_a, stats_b = a.pop("stats"), b.pop("stats")
    assert a == b
    assert len(stats_a) == len(stats_b)
    for col_a, col_b in zip(stats_a, stats_b, strict=True):
        for key in _ROUNDED:
            x, y = col_a.pop(key, None), col_b.pop(key, None)
            assert (x is None) == (y is None), (col_a["name"], key)
            if x is not None:
                assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12), (col_a["name"], key)
        assert col_a == col_b
    assert len(split.sample) == len(single.sample)


def _last_field(row: str) -> str:
    """A row of :func:`_rows` with its label moved to the end."""
    i, x, rest = row.split(",", 2)
    label, flag, when = rest.rsplit(",", 2)
    return f"{i},{x},{flag},{when},{label}"


def _both(path: Path, parts: int = 3, **options: Any) -> Profile:
    split, single = _profile(path, parts, **options), _profile(path, 1, **options)
    _assert_same(split, single)
    assert single.read_parts == 1
    return split


def _rows(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    labels = ["red", "green", 'say "hi"', "a,b", ""]
    out = []
    for i in range(n):
        label = labels[int(rng.integers(0, len(labels)))]
        quoted = '"' + label.replace('"', '""') + '"' if label else ""
        x = "" if i % 17 == 0 else f"{rng.normal():.6f}"
        flag = "true" if rng.random() < 0.3 else "false"
        out.append(f"{i},{x},{quoted},{flag},2024-01-{1 + i % 28:02d}T10:00:00")
    return out


def test_parts_give_the_single_pass_profile(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    body = "\n".join(_rows(3000))  # the last line has no line end
    path.write_text('"id","x","label","flag","when"\n' + body)
    split = _both(path)
    assert split.read_parts == 3
    assert split.rows == 3000
    stats = {c["name"]: c for c in split.columns}
    assert stats["id"]["max"] == 2999 and stats["label"]["top_exact"]


def test_a_title_line_before_the_header_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Export of 2024-05-01\n\nid,x,label,flag,when\n" + "\n".join(_rows(2500)) + "\n"
    )
    split = _both(path, parts=2)
    assert split.read_parts == 2
    assert split.rows == 2500
    assert split.notes == ["1 line(s) before the header (fewer fields than the rows) were skipped"]


def test_a_file_smaller_than_one_part_is_read_in_one(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("id,x,label,flag,when\n" + "\n".join(_rows(40)) + "\n")
    assert path.stat().st_size < 2 * 2048
    split = _both(path)
    assert split.read_parts == 1
    assert split.rows == 40


def test_quoted_line_ends_read_the_file_in_one_pass(tmp_path: Path) -> None:
    rows = _rows(3000)
    # Values spanning lines all through the file: some cut falls inside one or near.
    for i in range(100, 3000, 97):
        rows[i] = f'{i},1.5,"first line\nsecond line",true,2024-01-01T10:00:00'
    path = tmp_path / "notes.csv"
    path.write_text("id,x,label,flag,when\n" + "\n".join(rows) + "\n")
    split = _both(path)
    assert split.read_parts == 1
    assert split.rows == 3000


@pytest.mark.parametrize("last", [False, True], ids=["inner-field", "last-field"])
def test_a_cut_inside_a_quoted_value_is_not_trusted(tmp_path: Path, last: bool) -> None:
    """The one quoted line end is where the cut falls: rows must not be torn there.

    Cut inside its inner field, the part's last row is a bad row; inside its
    last field, a row whose value ends the part.
    """
    header = "id,x,flag,when,label\n" if last else "id,x,label,flag,when\n"
    first, second = "word " * 40, "more " * 40
    for at in range(1000, 2000):
        rows = _rows(3000)
        value = f'"{first}\n{second}"'
        rows[at] = (
            f"{at},2.5,false,2024-01-01T10:00:00,{value}"
            if last
            else f"{at},2.5,{value},false,2024-01-01T10:00:00"
        )
        if last:  # the other rows in the header's order
            rows = [r if k == at else _last_field(r) for k, r in enumerate(rows)]
        text = header + "\n".join(rows) + "\n"
        inside = text.index(first + "\n")
        # The cut is the first line end at or after the middle byte's predecessor.
        if inside <= len(text) // 2 - 1 < inside + len(first):
            break
    path = tmp_path / "cut.csv"
    path.write_text(text)
    assert fileparts.csv_cuts(path.open("rb"), len(text), 2, 0) == [inside + len(first) + 1]
    split = _both(path, parts=2)
    assert split.read_parts == 1
    assert split.rows == 3000
    assert not split.warnings


def test_a_float_in_a_later_part_widens_the_column_as_one_pass_does(tmp_path: Path) -> None:
    n = 3000
    values = [str(i) for i in range(n)]
    values[n - 5] = "1.5"  # in the last part only
    path = tmp_path / "widen.csv"
    path.write_text("id,count\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    split = _both(path)
    assert split.read_parts == 3
    count = {c["name"]: c for c in split.columns}["count"]
    assert count["type"] == "double" and count["max"] == n - 1
    assert any("read as float64" in w for w in split.warnings)


def test_a_column_empty_in_one_part_only(tmp_path: Path) -> None:
    n = 3000
    lines = []
    for i in range(n):
        early = "" if i < 1000 else f"e{i % 7}"  # missing in the first part only
        late = f"{i % 11}" if i < 2000 else ""  # missing in the last part only
        lines.append(f"{i},{early},{late}\n")
    path = tmp_path / "sparse.csv"
    path.write_text("id,early,late\n" + "".join(lines))
    split = _both(path)
    assert split.read_parts == 3
    stats = {c["name"]: c for c in split.columns}
    assert stats["early"]["missing"] == 1000 and stats["late"]["missing"] == 1000
    assert stats["early"]["distinct"] == 7 and stats["late"]["distinct"] == 11


def test_parquet_row_groups_are_read_side_by_side(tmp_path: Path) -> None:
    n = 4000
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "id": np.arange(n),
            "x": rng.normal(size=n),
            "label": np.array(["a", "b", None, "c"], dtype=object)[rng.integers(0, 4, n)],
        }
    )
    path = tmp_path / "table.parquet"
    pq.write_table(table, path, row_group_size=500)
    split = _both(path, parts=2)
    assert split.read_parts == 2
    assert split.rows == n


@pytest.mark.parametrize(
    ("rows", "n", "runs"),
    [
        ([500] * 8, 2, [(0, 1, 2, 3), (4, 5, 6, 7)]),
        ([100, 900], 2, [(0, 1)]),
        ([1000], 4, [(0,)]),
    ],
)
def test_row_groups_are_shared_by_rows(rows: list[int], n: int, runs: list[tuple]) -> None:
    assert fileparts.row_group_parts(rows, n) == runs
