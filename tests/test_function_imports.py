"""The storage function's cold start: it imports only what the object's format needs.

Counted, never timed: each check runs a fresh interpreter and reads which
modules ended up in ``sys.modules``. Loading the function must not load the
profiler's libraries (Arrow, NumPy, DuckDB, DataSketches): an object that is
not a table never needs them. Profiling a Parquet file must not load the
CSV or JSON readers, nor a CSV file the Parquet reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]

#: What importing the function's entry module may not import.
PROFILER_LIBRARIES = ("pyarrow", "numpy", "duckdb", "datasketches", "ijson", "pandas")
#: Format-specific readers, by the format that needs them.
READERS = {
    "csv": ("pyarrow.csv",),
    "json": ("pyarrow.json", "ijson"),
    "parquet": ("pyarrow.parquet",),
}

IMPORT_FUNCTION = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("function_main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
# What an event of an object that is not a table loads besides (completing its versions).
import aletheia.data.manifests, aletheia.stats.versioncheck, aletheia.stats.versionprofile
print(json.dumps(sorted(sys.modules)))
"""

PROFILE_FILE = """
import json, sys
from aletheia.stats import formats, profiling
path = sys.argv[1]
with open(path, "rb") as fh:
    head = fh.read(8)
detected = formats.detect_format(path, None, head)
result = profiling.profile(lambda: open(path, "rb"), detected)
assert result.rows == 3, result.rows
print(json.dumps(sorted(sys.modules)))
"""


def _modules(script: str, *args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_the_function_and_its_event_path_for_non_tables_load_no_profiler_library() -> None:
    modules = _modules(IMPORT_FUNCTION, str(REPO / "functions" / "main.py"))
    assert "aletheia.function.fileevents" in modules  # the entry point is really loaded
    assert _loaded(modules, PROFILER_LIBRARIES) == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_profiling_a_file_loads_only_its_formats_reader(tmp_path: Path, fmt: str) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)

    modules = _modules(PROFILE_FILE, str(path))

    assert _loaded(modules, READERS[fmt]) == list(READERS[fmt][:1])
    others = tuple(n for f, names in READERS.items() if f != fmt for n in names)
    assert _loaded(modules, others) == []
