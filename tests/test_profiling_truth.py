"""The profiler's numbers against DuckDB reading the same bytes (no stack needed).

Each case writes a real file, profiles it with :func:`aletheia.stats.profiling.profile`
exactly as the storage function does, and asks DuckDB the same questions.
Distinct counts flagged exact must equal DuckDB's ``count(distinct)``; the
approximate ones must stay within HyperLogLog's error and never exceed the
number of values.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from aletheia.stats.formats import Detected, ProfileError, detect_format
from aletheia.stats.options import ProfileOptions
from aletheia.stats.profiling import Profile, profile


def _profile(path: Path) -> Profile:
    head = path.read_bytes()[:8]
    return profile(lambda: path.open("rb"), detect_format(path.name, None, head))


def _columns(result: Profile) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.columns}


def _duck(sql: str) -> Any:
    row = duckdb.connect().execute(sql).fetchone()
    assert row is not None
    return row


def _write_csv(path: Path, columns: dict[str, Any]) -> Path:
    pa_csv.write_csv(pa.table(columns), path)
    return path


def _write_json(path: Path, records: list[dict[str, Any]], as_array: bool) -> Path:
    """``records`` as one JSON array, or as JSON Lines."""
    if as_array:
        path.write_text(json.dumps(records))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --------------------------------------------------------------------------- distinct counts


def test_distinct_counts_match_duckdb_and_say_exact_only_when_they_are(tmp_path: Path) -> None:
    n = 400_000
    rng = np.random.default_rng(5)
    path = _write_csv(
        tmp_path / "ids.csv",
        {
            "id": np.arange(n),  # all distinct: HyperLogLog said 415,263 of 400,000
            "user": np.array([f"user-{i}" for i in range(n)]),
            "item": rng.integers(0, 3376, n),  # spans many blocks, more values than counters
            "shop": np.array([f"shop-{i % 3376}" for i in range(n)]),
            "flag": np.array(["yes", "no"])[rng.integers(0, 2, n)],
        },
    )

    stats = _columns(_profile(path))

    for name, column in stats.items():
        truth = _duck(f"select count(distinct {name}), count({name}) from '{path}'")
        distinct, present = truth
        assert column["distinct"] <= present, name
        if column["distinct_exact"]:
            assert column["distinct"] == distinct, name
        else:
            assert abs(column["distinct"] - distinct) <= 0.05 * distinct, name
    assert stats["id"]["distinct"] <= n
    assert (stats["item"]["distinct"], stats["item"]["distinct_exact"]) == (3376, True)
    assert (stats["shop"]["distinct"], stats["shop"]["distinct_exact"]) == (3376, True)
    # 3,376 values do not fit 1,000 counters: the top counts are lower bounds, and say so.
    assert stats["shop"]["top_exact"] is False
    assert stats["flag"]["top_exact"] is True and stats["flag"]["domain"] == ["no", "yes"]


def test_a_single_block_with_more_values_than_counters_is_not_exactly_the_cap(
    tmp_path: Path,
) -> None:
    path = _write_csv(
        tmp_path / "one-block.csv",
        {"code": np.array([f"c{i % 3376}" for i in range(30_000)]), "n": np.arange(30_000)},
    )

    stats = _columns(_profile(path))

    assert stats["code"]["distinct"] == 3376 and stats["code"]["distinct_exact"] is True
    assert stats["n"]["distinct"] == 30_000 and stats["n"]["distinct_exact"] is True
    assert stats["code"]["top_exact"] is False and "domain" not in stats["code"]


# --------------------------------------------------------------------------- empty fields


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_empty_text_fields_are_missing_as_in_duckdb(tmp_path: Path, delimiter: str) -> None:
    lines = ["id,city,note", "1,Paris,", '2,,""', "3,Oslo,NA", "4,,x", "5,Rome,y"]
    text = "\n".join(line.replace(",", delimiter) for line in lines) + "\n"
    path = tmp_path / ("places.csv" if delimiter == "," else "places.tsv")
    path.write_text(text, encoding="utf-8")

    result = _profile(path)
    stats = _columns(result)

    for name in ("city", "note"):
        total, present = _duck(
            f"select count(*), count({name}) from read_csv('{path}', delim='{delimiter}')"
        )
        assert stats[name]["missing"] == total - present, name
    assert stats["city"]["missing"] == 2 and stats["note"]["missing"] == 2
    schema = {c["name"]: c for c in result.schema()}
    assert schema["city"]["nullable"] is True and schema["id"]["nullable"] is False
    assert "NA" in [t["value"] for t in stats["note"]["top"]]  # text, as in DuckDB


# --------------------------------------------------------------------------- odd first lines


def _r_style(path: Path, rows: int = 300) -> Path:
    """R's write.csv: a row-name column whose header has no name."""
    lines = ['"height","weight","team"']
    lines += [f'"{i + 1}",{150 + i % 50},{50.5 + i % 30},"t{i % 4}"' for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_header_without_the_row_name_column_is_read_with_every_row(tmp_path: Path) -> None:
    path = _r_style(tmp_path / "r-style.csv")

    result = _profile(path)

    (rows,) = _duck(f"select count(*) from '{path}'")
    assert result.rows == rows == 300
    assert [c["name"] for c in result.columns] == ["index", "height", "weight", "team"]
    stats = _columns(result)
    assert stats["height"]["min"] == 150 and stats["height"]["max"] == 199
    assert stats["team"]["domain"] == ["t0", "t1", "t2", "t3"]
    assert any("no name" in n for n in result.notes)
    assert not result.warnings


def test_title_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    body = "\n".join(f"{i},{i * 2.5},{'abc'[i % 3]}" for i in range(200))
    path = tmp_path / "titled.csv"
    path.write_text(f"Sales export\nGenerated 2026-11-30\nday,amount,region\n{body}\n")

    result = _profile(path)

    (rows,) = _duck(f"select count(*) from '{path}'")
    assert result.rows == rows == 200
    assert [c["name"] for c in result.columns] == ["day", "amount", "region"]
    assert _columns(result)["amount"]["max"] == 199 * 2.5
    assert any("2 line(s) before the header" in n for n in result.notes)


def test_rows_that_end_in_a_delimiter_keep_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "trailing.csv"
    path.write_text("a,b\n" + "".join(f"{i},x{i % 5},\n" for i in range(100)))

    result = _profile(path)

    assert result.rows == 100
    assert [c["name"] for c in result.columns] == ["a", "b"]
    assert _columns(result)["b"]["distinct"] == 5


def test_a_file_whose_rows_mostly_do_not_fit_its_header_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.csv"
    rows = [f"{i},{i},{i}" if i % 2 else f"{i},{i},{i},{i}" for i in range(400)]
    path.write_text("a,b\n" + "\n".join(rows) + "\n")

    with pytest.raises(ProfileError, match="400 of 400 rows") as info:
        _profile(path)
    assert "2 fields" in str(info.value)


def test_a_few_ragged_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    rows = [f"{i},x" for i in range(50)] + ["50,x,extra"]
    path.write_text("a,b\n" + "\n".join(rows) + "\n")

    result = _profile(path)

    assert result.rows == 50
    assert result.warnings == ["1 row(s) with the wrong number of fields were skipped"]


# --------------------------------------------------------------------------- JSON arrays


def _records(n: int = 3000) -> list[dict[str, Any]]:
    return [
        {"id": i, "score": i / 7 if i % 9 else None, "tag": ["a", "b", "c"][i % 3]}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("records.json", lambda r: json.dumps(r).encode()),
        ("pretty.json", lambda r: json.dumps(r, indent=2).encode()),
        ("records.json.gz", lambda r: gzip.compress(json.dumps(r).encode())),
    ],
)
def test_a_json_array_of_records_is_profiled_as_its_json_lines(
    tmp_path: Path, name: str, encode: Any
) -> None:
    records = _records()
    path = tmp_path / name
    path.write_bytes(encode(records))
    lines = tmp_path / "records.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))

    result = _profile(path)
    reference = _profile(lines)

    assert result.rows == reference.rows == 3000
    assert result.columns == reference.columns
    assert any("JSON array" in n for n in result.notes)
    assert not result.warnings
    rows, mean = _duck(f"select count(*), avg(score) from read_json('{lines}')")
    assert result.rows == rows
    assert _columns(result)["score"]["mean"] == pytest.approx(mean)


def test_json_that_is_neither_lines_nor_an_array_of_records_fails_clearly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "numbers.json"
    path.write_text("[1, 2, 3]")

    with pytest.raises(ProfileError, match="array"):
        _profile(path)


def test_json_lines_are_still_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(10)))

    result = profile(lambda: path.open("rb"), Detected("jsonl"))

    assert result.rows == 10 and not result.notes


def test_an_unnamed_row_name_column_gets_a_name(tmp_path: Path) -> None:
    path = tmp_path / "rdatasets.csv"
    rows = "".join(f'"car {i}",{20 + i % 7},{4 + 2 * (i % 3)}\n' for i in range(50))
    path.write_text(f'"","mpg","cyl"\n{rows}')

    result = _profile(path)

    (count,) = _duck(f"select count(*) from '{path}'")
    assert result.rows == count == 50
    assert [c["name"] for c in result.columns] == ["index", "mpg", "cyl"]
    assert _columns(result)["mpg"]["max"] == 26


def test_repeated_header_names_get_names_of_their_own_as_in_duckdb(tmp_path: Path) -> None:
    # Keyed by name, the columns of one repeated name were one: the row sample kept the
    # last one's values under "a" and lost the others, and drift compared one of them.
    path = tmp_path / "export.csv"
    rows = "".join(f"{i},{100 + i},{i % 3},{-i}\n" for i in range(30))
    path.write_text(f"a,a,b,a\n{rows}")

    result = _profile(path)

    described = duckdb.connect().execute(f"select * from '{path}'").description
    assert [c["name"] for c in result.columns] == [d[0] for d in described]
    assert [c["name"] for c in result.columns] == ["a", "a_1", "b", "a_2"]
    maxima = _duck(f"select max(a), max(a_1), max(b), max(a_2) from '{path}'")
    assert tuple(c["max"] for c in result.columns) == maxima == (29, 129, 2, 0)
    assert all(len(row) == 4 and row["a_1"] == row["a"] + 100 for row in result.sample)
    assert result.notes == [
        "header names that repeat an earlier one were renamed: 'a_1' (column 2), 'a_2' (column 4)"
    ]


@pytest.mark.parametrize("parts", [1, 3])
def test_repeated_parquet_column_names_get_names_of_their_own_as_in_duckdb(
    tmp_path: Path, parts: int
) -> None:
    # Parquet allows two columns of one name (pandas writes them from a frame whose
    # columns repeat). Keyed by name, the row sample kept the last one's values only.
    path = tmp_path / "frame.parquet"
    n = 3_000
    table = pa.Table.from_arrays(
        [
            pa.array(range(n)),
            pa.array(range(100, 100 + n)),
            pa.array([f"x{i % 3}" for i in range(n)]),
        ],
        names=["a", "a", "b"],
    )
    pq.write_table(table, path, row_group_size=1_000)
    options = ProfileOptions(parts=parts, min_part_bytes=1)

    result = profile(lambda: path.open("rb"), detect_format(path.name, None, b"PAR1"), options)

    described = duckdb.connect().execute(f"select * from '{path}'").description
    assert [c["name"] for c in result.columns] == [d[0] for d in described] == ["a", "a_1", "b"]
    assert tuple(c["max"] for c in result.columns[:2]) == (n - 1, n + 99)
    assert all(row["a_1"] == row["a"] + 100 for row in result.sample)
    assert result.notes == [
        "column names that repeat an earlier one were renamed: 'a_1' (column 2)"
    ]


@pytest.mark.parametrize("separator", [";", ",", "\t"])
@pytest.mark.parametrize("parts", [1, 3])
def test_excels_separator_line_names_the_separator_as_in_duckdb(
    tmp_path: Path, separator: str, parts: int
) -> None:
    # Excel writes (and reads) a first line "sep=;" naming the separator. It was taken for
    # the header: one column named "sep=;", and most rows skipped as ragged.
    path = tmp_path / "export.csv"
    rows = "".join(
        separator.join([str(i), f"city {i % 7}", str(i * 3)]) + "\r\n" for i in range(3_000)
    )
    path.write_text(
        f"sep={separator}\r\n" + separator.join(["id", "city", "total"]) + f"\r\n{rows}"
    )
    options = ProfileOptions(parts=parts, min_part_bytes=1)

    result = profile(lambda: path.open("rb"), detect_format(path.name, None, b"sep="), options)

    described = duckdb.connect().execute(f"select * from '{path}'").description
    assert [c["name"] for c in result.columns] == [d[0] for d in described]
    assert [c["name"] for c in result.columns] == ["id", "city", "total"]
    count, cities, total = _duck(f"select count(*), count(distinct city), max(total) from '{path}'")
    assert (result.rows, _columns(result)["city"]["distinct"]) == (count, cities) == (3_000, 7)
    assert _columns(result)["total"]["max"] == total
    assert result.read_parts == parts
    line = f"sep={separator}"
    assert result.notes[0] == f"the first line {line!r} names the separator (Excel's convention)"


def test_a_written_nan_is_a_value_as_in_parquet_and_duckdb(tmp_path: Path) -> None:
    # numpy's savetxt and many tools write NaN as "nan". The CSV reader took it for a
    # missing value while the same data in Parquet counted it non-finite: one file's
    # profile depended on its format. Empty fields and NA stay missing.
    values = [1.5, float("nan"), 2.5, None, float("nan"), 4.0]
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("x,n\n1.5,1\nnan,2\n2.5,NA\n,4\nNaN,5\n4.0,-nan\n")
    parquet_path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"x": pa.array(values)}), parquet_path)

    from_csv, from_parquet = (
        _columns(_profile(csv_path))["x"],
        _columns(_profile(parquet_path))["x"],
    )

    counted, nans = _duck(f"select count(x), count(*) filter (where isnan(x)) from '{csv_path}'")
    for column in (from_csv, from_parquet):
        assert (column["missing"], column["non_finite"]) == (6 - counted, nans) == (1, 2)
    n = _columns(_profile(csv_path))["n"]
    assert (n["type"], n["missing"], n["non_finite"]) == ("double", 1, 1)


IRIS_ROWS = [
    "5.1,3.5,1.4,0.2,Iris-setosa",
    "4.9,3.0,1.4,0.2,Iris-setosa",
    "4.7,3.2,1.3,0.2,Iris-setosa",
    "7.0,3.2,4.7,1.4,Iris-versicolor",
    "6.4,3.2,4.5,1.5,Iris-versicolor",
    "6.3,3.3,6.0,2.5,Iris-virginica",
]


@pytest.mark.parametrize(
    "lines",
    [
        IRIS_ROWS,  # UCI's iris: numbers and a class, no header
        [",".join(str(i * j + 1) for j in range(12)) for i in range(2, 8)],  # numbers, wide
        ["0.5", "1.5", "2", "7", "3.25"],  # one column of scores
    ],
    ids=["iris", "wide numbers", "one column"],
)
def test_a_file_without_a_header_keeps_its_first_row_as_in_duckdb(
    tmp_path: Path, lines: list[str]
) -> None:
    # The first row was taken for the header: a row lost, and values as column names.
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")

    result = _profile(path)

    described = duckdb.connect().execute(f"select * from '{path}'").description
    assert [c["name"] for c in result.columns] == [d[0] for d in described]
    assert result.rows == len(lines) == _duck(f"select count(*) from '{path}'")[0]
    first = result.columns[0]["name"]
    assert result.columns[0]["max"] == _duck(f"select max({first}) from '{path}'")[0]
    assert result.notes[0].startswith("the file has no header (its first line is a row)")


@pytest.mark.parametrize(
    "text",
    [
        "country,1990,1991\nUS,1,2\nFR,3,4\nDE,5,6\n",  # years as names: DuckDB takes a row
        "name,city\nada,paris\nbob,rome\ncy,oslo\n",  # text alone
        "id,x\n1,2.5\n2,3.5\n3,4.5\n",
        ",0,1\n0,0.25,0.5\n1,0.75,1.5\n2,2.25,3.5\n",  # pandas' to_csv of a bare frame
        "0,1,2\n0.25,0.5,7.5\n0.75,1.5,8.5\n2.25,3.5,9.5\n",  # the same, index=False
        "label\n0\n1\n1\n",
    ],
    ids=[
        "years as names",
        "text only",
        "plain",
        "pandas frame",
        "pandas frame, no index",
        "one column",
    ],
)
def test_a_header_that_could_be_names_stays_the_header(tmp_path: Path, text: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(text)

    result = _profile(path)

    header = text.split("\n", 1)[0].split(",")
    assert [c["name"] for c in result.columns] == [name or "index" for name in header]
    assert result.rows == 3


def test_semicolon_separated_values_are_split_into_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    rows = "".join(f"{i};{i % 9},5;Zone {i % 4}\n" for i in range(100))
    path.write_text(f"id;price;zone\n{rows}")

    result = _profile(path)

    count, zones = _duck(f"select count(*), count(distinct zone) from '{path}'")
    assert result.rows == count == 100
    assert [c["name"] for c in result.columns] == ["id", "price", "zone"]
    assert _columns(result)["zone"]["distinct"] == zones == 4
    assert result.notes == ["fields are separated by ';', not ','"]


def test_a_windows_file_keeps_its_euro_signs_and_curly_quotes(tmp_path: Path) -> None:
    # What Excel writes for "CSV" on a Western Windows machine. Read as Latin-1, the
    # euro sign, curly quotes and dashes were recorded as invisible control characters.
    quotes = ["\u201cfast\u201d \u2013 5 \u20ac", "it\u2019s \u2026 ok", "plain", "Z\u00fcrich"]
    path = tmp_path / "export.csv"
    rows = "".join(f"{i},{quotes[i % 4]}\n" for i in range(40))
    path.write_bytes(f"id,comment\n{rows}".encode("cp1252"))

    result = _profile(path)

    assert result.rows == 40
    comment = _columns(result)["comment"]
    assert sorted(t["value"] for t in comment["top"]) == sorted(quotes)
    assert {row["comment"] for row in result.sample} <= set(quotes)
    assert result.warnings == ["text is not valid UTF-8: decoded as Windows-1252 (Latin-1)"]


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_a_utf16_file_with_its_byte_order_mark_is_read_as_its_text(
    tmp_path: Path, suffix: str
) -> None:
    # Excel's "Unicode text" export. Read byte by byte, every character sat between NULs.
    # Big enough to be read in parts, it is still read right (a cut after a line-end byte
    # would fall inside a character).
    delimiter = "\t" if suffix == ".tsv" else ","
    rows = "".join(f"{i}{delimiter}Zürich {i % 7}{delimiter}{i / 4}\n" for i in range(20_000))
    path = tmp_path / f"unicode{suffix}"
    path.write_bytes(f"id{delimiter}city{delimiter}x\n{rows}".encode("utf-16"))
    in_parts = ProfileOptions(parts=2, min_part_bytes=4096)

    result = profile(lambda: path.open("rb"), detect_format(path.name, None, b""), in_parts)

    assert result.rows == 20_000 and result.warnings == []
    assert [c["name"] for c in result.columns] == ["id", "city", "x"]
    columns = _columns(result)
    assert columns["id"]["max"] == 19_999 and columns["x"]["max"] == 19_999 / 4
    assert columns["city"]["distinct"] == 7 and columns["city"]["min"] == "Zürich 0"
    assert result.notes == ["text is UTF-16 (it starts with a byte-order mark)"]


@pytest.mark.parametrize("as_array", [False, True])
def test_json_whole_numbers_then_a_fraction_are_read_as_floats(
    tmp_path: Path, as_array: bool
) -> None:
    records = [{"price": i % 50, "qty": i} for i in range(150_000)] + [{"price": 2.5, "qty": 1}]
    path = _write_json(tmp_path / "prices.json", records, as_array)

    result = _profile(path)

    rows, top, mean = _duck(f"select count(*), max(price), avg(price) from read_json('{path}')")
    assert result.rows == rows == 150_001
    price = _columns(result)["price"]
    assert price["max"] == top and price["mean"] == pytest.approx(mean)
    assert result.warnings == ["integer fields read as float64: a later value has a fraction"]


@pytest.mark.parametrize("as_array", [False, True])
def test_a_json_field_of_more_than_one_kind_is_read_as_text(tmp_path: Path, as_array: bool) -> None:
    # Ids mostly numeric, then codes; a nested value that changes kind; and, past the
    # first block, a fraction among whole numbers. The reader gave up on the whole file.
    records: list[dict[str, Any]] = [
        {"id": i % 1000, "meta": {"x": i}, "qty": i % 50} for i in range(150_000)
    ]
    records += [{"id": "7a", "meta": {"x": "odd"}, "qty": 2.5}, {"id": None, "meta": None}]
    path = _write_json(tmp_path / "orders.json", records, as_array)

    result = _profile(path)

    whole = f"read_json('{path}', sample_size=-1)"  # DuckDB too stops at "7a" otherwise
    rows, ids, top = _duck(f"select count(*), count(distinct id::varchar), max(qty) from {whole}")
    assert result.rows == rows == 150_002
    columns = _columns(result)
    assert columns["id"]["type"] == "string" and columns["id"]["distinct"] == ids == 1001
    assert columns["id"]["missing"] == 1
    assert columns["meta"]["type"] == "string" and columns["meta"]["missing"] == 1
    assert columns["qty"]["max"] == top == 49 and columns["qty"]["type"] == "double"
    assert sorted(result.warnings) == [
        "field 'id' holds both numbers and strings: read as text",
        "field 'meta' holds both numbers and strings (at /meta/x): read as text",
        "integer fields read as float64: a later value has a fraction",
    ]


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_a_quote_that_never_closes_does_not_swallow_the_rows_after_it(
    tmp_path: Path, suffix: str
) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    rows = [sep.join([f"pkg-{i}", f"1.{i}", "2026-01", f"summary {i}"]) for i in range(3000)]
    rows[1000] = sep.join(["pkg-1000", "1.0", "2026-01", '"A summary cut off mid-sentence'])
    path = tmp_path / f"packages{suffix}"
    path.write_text(sep.join(["name", "version", "month", "summary"]) + "\n" + "\n".join(rows))

    result = _profile(path)

    assert result.rows == 3000
    assert _columns(result)["name"]["distinct"] == 3000
    assert any("never closes" in w for w in result.warnings)
