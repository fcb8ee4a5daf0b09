"""The throughput bench keeps working (a small run against the real console script); its figures
are read by people, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.processes import child_env

ROOT = Path(__file__).resolve().parents[2]


def test_mapper_bench_runs_and_prints_figures_for_stream_and_unary() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "mapper_throughput.py"),
            "--quick",
            "--batches",
            "100",
            "--in-flight",
            "1,4",
            "--stream-processes",
            "0,1",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for workload in ("mixed", "bills"):
        for processes in (0, 1):
            assert f"== workload {workload}, server with --stream-processes {processes}" in result.stdout
    # Per workload: one stream figure per server configuration, two unary figures in-thread only.
    assert result.stdout.count("transactions/s") == 2 * (2 + 2)
    assert "decide + map (domain)" in result.stdout
