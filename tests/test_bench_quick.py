"""Smoke test of ``make bench-quick``: every benchmark runs at small sizes on the real stack.

It checks what does not depend on the machine's speed: how many points,
documents, write RPCs, bytes, rows and runs each benchmark saw. Times are
printed by the benchmarks, never asserted here. Peers (MLflow, DVC, pandas)
are not installed in the test environment; the benchmarks must say so.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aletheia.tracking.runmodel import CHUNK_POINTS

REPO = Path(__file__).resolve().parents[1]
# Six benchmarks (one drives a browser) in one subprocess: more than the default per-test ceiling.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def quick(
    stack_state: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], str, str]:
    """Run ``python -m bench.run --quick`` once against the session's stack."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--json",
            str(out / "counts.json"),
            "--results",
            str(out / "RESULTS.md"),
            "--work-dir",
            str(out / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    counts = json.loads((out / "counts.json").read_text())
    return counts, proc.stdout, (out / "RESULTS.md").read_text()


def test_logging_batches_points_into_few_commits(quick: tuple[dict[str, Any], str, str]) -> None:
    counts = quick[0]["logging"]["counts"]
    writer = counts["aletheia_writer"]
    assert writer["points_logged"] == counts["aletheia_calls"] == 2_000
    assert writer["failed_commits"] == 0
    # Run creation, a few background flushes and the final one: never one RPC per point.
    assert 1 <= writer["commits"] <= 10


def test_ingest_stores_every_point_in_bounded_chunks(
    quick: tuple[dict[str, Any], str, str],
) -> None:
    counts = quick[0]["ingest"]["counts"]
    assert counts["points_stored"] == counts["points_logged"] == 10_000
    assert counts["documents"] == 2 * math.ceil(5_000 / CHUNK_POINTS)
    assert 1 <= counts["write_rpcs"] <= 10
    # Three numbers per point (step, value, time) at 8 bytes each, plus chunk overhead.
    assert 16 <= counts["bytes"] / counts["points_stored"] <= 40


def test_stats_profiles_every_row_like_duckdb(quick: tuple[dict[str, Any], str, str]) -> None:
    counts = quick[0]["stats"]["counts"]
    for kind in ("csv", "parquet"):
        assert counts[f"{kind} aletheia profiler rows"] == counts[f"{kind} rows"] == 20_000
        assert counts[f"{kind} duckdb SUMMARIZE rows"] == 20_000


def test_query_lists_every_seeded_run(quick: tuple[dict[str, Any], str, str]) -> None:
    counts = quick[0]["query"]["counts"]
    assert counts["query_runs"] == counts["cli_json_runs"] == 200
    assert counts["cli_top_rows"] == 20


def test_startup_loads_no_client_library_for_help_or_import(
    quick: tuple[dict[str, Any], str, str],
) -> None:
    counts = quick[0]["startup"]["counts"]
    assert counts["help_heavy_modules"] == counts["import_heavy_modules"] == []
    assert "aletheia --help" in quick[1] and "runs list" in quick[1]


def test_dashboard_views_read_one_document_per_row_and_per_chunk(
    quick: tuple[dict[str, Any], str, str],
) -> None:
    counts = quick[0]["dashboard"]["counts"]
    assert counts["table_reads"] == 50  # the first page of 120 runs: one read per row
    assert counts["chart_reads"] == 1 + math.ceil(3_000 / CHUNK_POINTS)  # the run + its chunks
    assert 0 < counts["chart_drawn"] <= 3_000


def test_datasets_upload_each_file_once_and_nothing_again(
    quick: tuple[dict[str, Any], str, str],
) -> None:
    counts = quick[0]["datasets"]["counts"]["small"]
    assert counts["file_documents"] == counts["files"] == 100
    # Every file's bytes once, plus at most the version's manifest.
    assert counts["files"] <= counts["uploaded_objects"] <= counts["files"] + 1
    assert counts["bytes"] <= counts["uploaded_bytes"] <= counts["bytes"] + 300 * counts["files"]
    assert counts["readd_objects"] == counts["readd_bytes"] == 0
    assert "sha256sum" in quick[1] and "hashlib" in quick[1] and "storage floor" in quick[1]
    assert "multipart PUT" in quick[1]  # the floor in the add's own request shape


def test_missing_peers_are_named_not_skipped(quick: tuple[dict[str, Any], str, str]) -> None:
    stdout = quick[1].replace("\n", " ")
    for module, label in (("mlflow", "mlflow file store"), ("pandas", "pandas describe()")):
        if importlib.util.find_spec(module) is None:
            assert f"{label}: peer not installed" in stdout
        else:  # a peer that is installed is measured
            assert f"{label}: peer not installed" not in stdout
    if not (Path(sys.executable).parent / "dvc").exists():
        assert "dvc: peer not installed" in stdout


def test_results_file_records_machine_versions_and_command(
    quick: tuple[dict[str, Any], str, str],
) -> None:
    results = quick[2]
    assert "- command: `python -m bench.run --quick" in results
    assert "CPUs" in results and "RAM" in results and "- python: " in results
    assert "google-cloud-firestore" in results and "dvc " in results
    titles = (
        "1. Logging",
        "2. Ingest",
        "3. Dataset add",
        "4. Statistics",
        "5. Query",
        "6. Start-up",
    )
    for title in titles:
        assert f"### {title}" in results
