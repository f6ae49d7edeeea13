"""Deterministic splits of tabular files (no emulator needed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from aletheia.errors import ValidationError
from aletheia.stats import splits


def _source(root: Path, n: int = 5000) -> Path:
    table = pa.table({"id": list(range(n)), "label": [f"l{i % 7}" for i in range(n)]})
    (root / "train").mkdir(parents=True)
    pa_csv.write_csv(table, root / "train" / "a.csv")
    pq.write_table(table, root / "train" / "b.parquet")
    buffer = root / "c.csv"
    pa_csv.write_csv(table, buffer)
    (root / "c.csv.gz").write_bytes(gzip.compress(buffer.read_bytes(), mtime=0))
    buffer.unlink()
    (root / "README.txt").write_text("notes\n")
    return root


FILES = ["train/a.csv", "train/b.parquet", "c.csv.gz", "README.txt"]


def _ids(path: Path) -> list[int]:
    if path.name.endswith(".parquet"):
        return pq.read_table(path).column("id").to_pylist()
    return pa_csv.read_csv(path).column("id").to_pylist()


def test_split_is_deterministic_complete_and_close_to_the_ratios(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    outs = [tmp_path / "train", tmp_path / "test"]

    result = splits.split_tree(src, FILES, outs, [0.7, 0.3], seed=42)

    assert result.copied == ["README.txt"]
    assert (outs[0] / "README.txt").read_text() == "notes\n"
    for relpath in FILES[:3]:
        part_a, part_b = _ids(outs[0] / relpath), _ids(outs[1] / relpath)
        assert sorted(part_a + part_b) == list(range(5000))  # every row exactly once
        assert 0.66 < len(part_a) / 5000 < 0.74
        assert result.rows[relpath] == [len(part_a), len(part_b)]

    again = [tmp_path / "again0", tmp_path / "again1"]
    splits.split_tree(src, FILES, again, [0.7, 0.3], seed=42)
    assert (again[1] / "train/a.csv").read_bytes() == (outs[1] / "train/a.csv").read_bytes()
    assert (again[1] / "c.csv.gz").read_bytes() == (outs[1] / "c.csv.gz").read_bytes()

    other = [tmp_path / "o0", tmp_path / "o1"]
    splits.split_tree(src, FILES, other, [0.7, 0.3], seed=7)
    assert _ids(other[1] / "train/a.csv") != _ids(outs[1] / "train/a.csv")


@pytest.mark.parametrize("text", ["0.7", "0.7,0.2", "a,b", "1.2,-0.2"])
def test_bad_ratios_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        splits.parse_ratios(text)
