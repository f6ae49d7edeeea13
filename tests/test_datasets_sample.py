"""A deterministic sample of a dataset, registered as its own dataset linked to the full one."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import firestore, storage
from pyarrow import csv as pacsv
from test_datasets import make_tree
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.data.sample import parse_fraction, sample_dataset, samples_of
from aletheia.data.scan import scan_tree
from aletheia.errors import ValidationError

runner = CliRunner()
ROWS = 20_000
OTHER_FILES = 200


def _store(db: firestore.Client, gcs: storage.Client, bucket: str, project: str, tmp: Path):
    return DatasetStore(
        db, BlobStore(gcs, bucket, project), LocalCache(tmp / "cache"), project, workdir=tmp
    )


def _dataset(root: Path) -> Path:
    # Quoted commas and a text column that looks numeric: values must come back as written.
    lines = ["id,name,score"] + [f'{i},"n, {i}",{i % 7}.50' for i in range(ROWS)]
    files = {"train/rows.csv": ("\n".join(lines) + "\n").encode()}
    files.update({f"img/{i:04d}.txt": f"image {i}".encode() for i in range(OTHER_FILES)})
    make_tree(root, files)
    table = pa.table({"id": list(range(ROWS)), "v": [float(i) / 3 for i in range(ROWS)]})
    pq.write_table(table, root / "eval.parquet")
    return root


def _files(root: Path) -> dict[str, bytes]:
    """The data files under ``root`` (aletheia's own pull state left out)."""
    return {rel: path.read_bytes() for rel, path in scan_tree(root)}


def _csv_rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_sample_is_deterministic_within_bounds_and_linked(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    store = _store(db, gcs, stack.bucket, "smp", tmp_path)
    store.add("big", _dataset(tmp_path / "data"))

    first, counts = sample_dataset(store, "big", 0.1, seed=7)
    _, again = sample_dataset(store, "big", 0.1, seed=7, new_name="big-sample-2")

    assert (first.name, first.version, first.created) == ("big-sample", "v1", True)
    assert counts == again
    a = store.get("big-sample", to=tmp_path / "a").local_path
    b = store.get("big-sample-2", to=tmp_path / "b").local_path
    assert a is not None and b is not None and _files(a) == _files(b)  # same bytes
    assert (
        store.versions("big-sample")[0]["manifest_sha256"]
        == (store.versions("big-sample-2")[0]["manifest_sha256"])
    )
    # Binomial(20000, 0.1): mean 2000, sd 42; the bounds are ~7 sd wide.
    assert counts["tables"] == 2 and 2 * 1700 <= counts["rows_out"] <= 2 * 2300
    assert counts["rows_in"] == 2 * ROWS
    assert 5 <= counts["files_kept"] <= 40 and counts["files_kept"] + counts["files_dropped"] == 200
    rows = _csv_rows(a / "train/rows.csv")
    original = set(_csv_rows(tmp_path / "data/train/rows.csv"))
    assert rows[0] == "id,name,score"  # written back as read: quoted only where needed
    assert 1700 <= len(rows) - 1 <= 2300
    parsed = pacsv.read_csv(a / "train/rows.csv")
    first_id = parsed.column("id")[0].as_py()
    assert f'{first_id},"n, {first_id}",{first_id % 7}.50' in original
    assert parsed.column("score").to_pylist()[0] == float(f"{first_id % 7}.50")
    sampled = pq.read_table(a / "eval.parquet")
    assert sampled.schema.names == ["id", "v"] and 1700 <= sampled.num_rows <= 2300
    ids, values = sampled["id"].to_pylist(), sampled["v"].to_pylist()
    assert all(v == i / 3 for i, v in zip(ids, values, strict=True))

    # Another seed picks other rows; a larger fraction keeps every row a smaller one kept.
    sample_dataset(store, "big", 0.1, seed=8, new_name="big-seed8")
    c = store.get("big-seed8", to=tmp_path / "c").local_path
    assert c is not None and _files(c)["train/rows.csv"] != _files(a)["train/rows.csv"]
    sample_dataset(store, "big", 0.2, seed=7, new_name="big-20")
    d = store.get("big-20", to=tmp_path / "d").local_path
    assert d is not None and set(_csv_rows(a / "train/rows.csv")) <= set(
        _csv_rows(d / "train/rows.csv")
    )

    # Re-sampling the same version with the same seed adds nothing.
    unchanged, _ = sample_dataset(store, "big", 0.1, seed=7)
    assert (unchanged.version, unchanged.created) == ("v1", False)

    # Lineage: the sample's version and document name the full dataset, which lists it.
    link = {"dataset": "big", "version": "v1", "fraction": 0.1, "seed": 7}
    assert store.versions("big-sample")[0]["sampled_from"] == link
    assert store.info("big-sample")["sampled_from"] == link
    assert {s["dataset"] for s in samples_of(store, "big")} == {
        "big-sample",
        "big-sample-2",
        "big-seed8",
        "big-20",
    }


def test_tables_pyarrow_cannot_read_are_sampled_as_files(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    store = _store(db, gcs, stack.bucket, "smp-odd", tmp_path)
    multiline = "a,b\n" + "".join(f'{i},"line\n{i}"\n' for i in range(400))
    odd = {
        "empty.csv": b"",
        "ragged.csv": b"a,b\n1,2\n3\n4,5,6\n",
        "broken.parquet": b"not parquet",
        "multi.csv": multiline.encode(),
    }
    store.add("odd", make_tree(tmp_path / "d", odd))

    _, counts = sample_dataset(store, "odd", 0.5, seed=1)

    assert counts["tables"] == 1 and counts["tables_unreadable"] == 3
    assert 100 <= counts["rows_out"] <= 300 and counts["rows_in"] == 400
    out = store.get("odd-sample", to=tmp_path / "o").local_path
    assert out is not None
    got = _files(out)
    for name in ("empty.csv", "ragged.csv", "broken.parquet"):  # whole, or not at all
        assert got.get(name, odd[name]) == odd[name]
    table = pacsv.read_csv(
        out / "multi.csv", parse_options=pacsv.ParseOptions(newlines_in_values=True)
    )
    assert all(
        b == f"line\n{a}"
        for a, b in zip(table["a"].to_pylist(), table["b"].to_pylist(), strict=True)
    )


def test_fraction_is_checked() -> None:
    assert parse_fraction("1%") == pytest.approx(0.01)
    assert parse_fraction("0.25") == 0.25
    assert parse_fraction("100%") == 1.0
    for bad in ("0", "0%", "150%", "-1", "abc", "nan", "2"):
        with pytest.raises(ValidationError, match="fraction"):
            parse_fraction(bad)


def test_a_sample_that_keeps_nothing_is_refused(
    stack: config.Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    store = _store(db, gcs, stack.bucket, "smp-empty", tmp_path)
    store.add("one", make_tree(tmp_path / "d", {"only.bin": b"x"}))
    seed = next(s for s in range(100) if _drops(s))
    with pytest.raises(ValidationError, match="larger --fraction"):
        sample_dataset(store, "one", 0.01, seed=seed)
    assert samples_of(store, "one") == []


def _drops(seed: int) -> bool:
    from aletheia.data.sample import path_key

    return path_key("only.bin", seed) >= 0.01


def test_datasets_sample_cli_and_show(
    stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_tree(tmp_path / "d", {"t.csv": ("a\n" + "\n".join(map(str, range(500)))).encode()})
    assert runner.invoke(app, ["datasets", "add", "t", str(data), "-p", "smp-cli"]).exit_code == 0
    args = ["datasets", "sample", "t", "--fraction", "20%", "--seed", "3", "-p", "smp-cli"]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    made = json.loads(out.stdout)
    assert made["name"] == "t-sample" and 50 <= made["rows_out"] <= 150
    shown = runner.invoke(app, ["datasets", "show", "t", "-p", "smp-cli"])
    assert shown.exit_code == 0 and "sample: t-sample of v1 (fraction 0.2, seed 3)" in shown.output
    bad = runner.invoke(app, ["datasets", "sample", "t", "--fraction", "0", "-p", "smp-cli"])
    assert bad.exit_code == 2 and "fraction" in bad.output
