"""bench/compare.py reads every numeric figure a bench prints, keyed so both sides line up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("bench_compare", Path(__file__).parents[2] / "bench" / "compare.py")
assert SPEC and SPEC.loader
compare = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare)


def test_numeric_leaves_are_keyed_by_path_and_open_loop_runs_by_offered_rate() -> None:
    figures = {
        "benchmark": "poster",
        "closed_loop": {"p50_ms": 190.1, "callers": 100},
        "open_loop": [{"offered_per_s": 100.0, "p99_ms": 8.7}, {"offered_per_s": 200.0, "p99_ms": 56}],
        "flag": True,
    }
    assert dict(compare.flatten(figures)) == {
        "closed_loop.p50_ms": 190.1,
        "closed_loop.callers": 100.0,
        "open_loop[100.0].offered_per_s": 100.0,
        "open_loop[100.0].p99_ms": 8.7,
        "open_loop[200.0].offered_per_s": 200.0,
        "open_loop[200.0].p99_ms": 56.0,
    }


def test_the_base_revision_is_exported_as_files(tmp_path: Path) -> None:
    tree = compare.export("HEAD", tmp_path)
    assert (tree / "pyproject.toml").is_file()
    assert (tree / "services" / "poster").is_dir()
    assert not (tree / ".git").exists()
