"""`bench/run.py` end to end, in its shortest form: it starts the suite's real processes as `make
run` does, measures every row, prints its table and the issue's goals, and leaves no process,
temporary folder or PostgreSQL database behind. The figures themselves are not checked: a
test must not time anything on a shared machine; only that each row answered calls.

Runs in the lane of tests that run one at a time beside the others (the `serial` marker),
with two calls in flight, so that its load stays small."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import POSTGRES_SKIP, POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "bare grpc.aio echo",
    "GetSigningKey: auth, no database",
    "GetPayment, SQLite",
    "GetPayment, PostgreSQL",
    "CreatePayment, PostgreSQL",
    "bare uvicorn HTTP echo",
    "gateway → GetSigningKey",
    "GetSigningKey, 1 process",
    "GetSigningKey, 2 processes",
    "mixed through the gateway",
)

pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(not POSTGRES_URL, reason=POSTGRES_SKIP),
    pytest.mark.skipif(
        not (shutil.which("wrk") and shutil.which("h2load")),
        reason="the benchmark's load generators are missing: wrk and h2load (Debian: wrk, nghttp2-client;"
        " .ci/run installs them)",
    ),
]


def bench_databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'asan_bench_%'"
        ).fetchall()
    return {row[0] for row in rows}


def processes_started_from(folder: Path) -> list[int]:
    """Processes whose environment names `folder` (the benchmark gives its own var folder there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if str(folder).encode() in environment:
            found.append(int(entry.name))
    return found


def test_a_short_run_measures_every_row_prints_the_goals_and_leaves_nothing_behind(tmp_path: Path) -> None:
    server_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    before = bench_databases(server_url)
    environment = {
        **os.environ,
        "TMPDIR": str(tmp_path),  # the benchmark's temporary folder, under this test's
        "ASAN_BENCH_POSTGRES_URL": server_url,
    }
    finished = subprocess.run(
        [sys.executable, "bench/run.py", "--seconds", "0.2", "--rounds", "1", "--concurrency", "2"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr

    table: dict[str, list[str]] = {}
    for line in finished.stdout.splitlines():
        for row in ROWS:
            if line.startswith(row + " "):
                table.setdefault(row, []).append(line)
    assert sorted(table) == sorted(ROWS), finished.stdout
    for row, lines in table.items():
        for line in lines:  # calls/s is the first figure after the client's name
            rate = re.search(r"\s(\d+)\s+[\d.]+\s+[\d.]+\s", line)
            assert rate is not None and int(rate.group(1)) > 0, f"{row}: no calls measured: {line}"
    assert "Goals of the issue:" in finished.stdout
    goals = [line for line in finished.stdout.splitlines() if line.startswith(("  met ", "  MISS "))]
    assert len(goals) == 10, finished.stdout

    assert list(tmp_path.glob("asan-bench-*")) == []
    assert processes_started_from(tmp_path) == []
    assert bench_databases(server_url) == before
