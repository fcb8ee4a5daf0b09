"""Runs bench scripts on two revisions side by side and prints each figure as a ratio, so a
refactor can be checked against main on this noisy shared machine in one run.

    python bench/compare.py --base main~5                       # mapper and poster benches
    python bench/compare.py --base 7ae52fc --benches mapper_throughput --rounds 3 -- --quick

The base revision is exported with `git archive` into a temporary folder; both sides run with the
same interpreter and virtual environment, each with PYTHONPATH set to its own source roots (the
editable install comes after PYTHONPATH, so each side imports its own code, console scripts
included). Runs alternate base, head, base, head ... so drift in the machine's load falls on
both; each figure is the median of its rounds. Only numeric figures are compared; for a figure
where lower is better (latencies, memory, calls), a ratio below 1 is the head doing better.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    "gen/python",
    "services/common",
    "services/mapper",
    "services/poster",
    "services/xero_emulator",
    "services/cli",
]
DEFAULT_BENCHES = "mapper_throughput,poster_throughput"
DEFAULT_ARGS = {
    "mapper_throughput": ["--profile", "0", "--transactions", "20000", "--unary", "2000"],
    "poster_throughput": ["--rates", "100,200,400"],
}


def export(revision: str, into: Path) -> Path:
    """The tree of `revision` as files under `into` (no .git, nothing installed)."""
    archive = into / "base.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), revision], cwd=ROOT, check=True)
    tree = into / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of a bench's JSON figures; a list of runs is keyed by its offered rate."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            tag = item.get("offered_per_s", index) if isinstance(item, dict) else index
            yield from flatten(item, f"{prefix}[{tag}]")


def run(tree: Path, bench: str, args: list[str]) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tree / s) for s in SOURCES))
    done = subprocess.run(
        [sys.executable, f"bench/{bench}.py", *args, "--json"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{bench} failed in {tree} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    figures = json.loads(lines[-1])
    return {k: v for k, v in flatten(figures) if not k.startswith("load_average")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="main", help="git revision to compare against")
    parser.add_argument("--benches", default=DEFAULT_BENCHES, help="comma-separated bench script names")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    parser.add_argument("extra", nargs="*", help="arguments after -- go to every bench, replacing its defaults")
    args = parser.parse_args()
    base_sha = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        base = export(args.base, Path(tmp))
        for bench in [b.strip() for b in args.benches.split(",") if b.strip()]:
            bench_args = args.extra or DEFAULT_ARGS.get(bench, [])
            sides: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
            for round_ in range(args.rounds):
                for side, tree in (("base", base), ("head", ROOT)):
                    print(f"# {bench} round {round_ + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                    sides[side].append(run(tree, bench, bench_args))
            print(f"\n## {bench} ({' '.join(bench_args)}), median of {args.rounds} rounds")
            print(f"{'figure':<64} {'base ' + base_sha:>14} {'head':>14} {'head/base':>10}")
            for key in sides["base"][0]:
                values = {s: [r[key] for r in runs if key in r] for s, runs in sides.items()}
                if not values["base"] or not values["head"]:
                    continue
                b, h = statistics.median(values["base"]), statistics.median(values["head"])
                ratio = f"{h / b:.2f}" if b else "-"
                print(f"{key[:64]:<64} {b:>14,.2f} {h:>14,.2f} {ratio:>10}")


if __name__ == "__main__":
    main()
