"""The firm-month bench keeps working (a small month); its figures are read by people, never
asserted — only that every transaction linked and the books balance, which it reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.processes import child_env

ROOT = Path(__file__).resolve().parents[2]


def test_firm_month_bench_posts_a_small_month_and_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "firm_month.py"), "--quick"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "40 matters" in result.stdout
    assert " 0 not linked" in result.stdout
    assert "debits equal credits: True" in result.stdout
