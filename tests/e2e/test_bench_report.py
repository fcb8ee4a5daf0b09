"""The benchmark page generator works: in quick mode it runs the chosen benches as subprocesses,
reads each one's JSON figures, and writes a page with the machine and the command of every
figure. The figures themselves are read by people, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.processes import child_env

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_runs_the_benches_and_writes_the_machine_and_each_command(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "report.py"),
            "--quick",
            "--only",
            "emulator_throughput,poster_memory",
            "--output",
            str(page),
        ],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = page.read_text()
    for machine_fact in ("| CPU |", "| Cores |", "| Memory |", "| Python |", "| Load average at start"):
        assert machine_fact in text
    assert "Quick mode" in text
    for script in ("emulator_throughput", "poster_memory"):
        assert f"Command: `python bench/{script}.py --quick --json`" in text
    # The JSON figures reached the page, and the memory headline names its command.
    assert "| rss_queued_mb |" in text and "| put_one_invoice |" in text
    assert "| Poster RSS with 5,000 transactions queued |" in text
    assert "| linked_while_blocked | 0 |" in text
