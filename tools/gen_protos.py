"""Regenerate the Python code for every proto under protos/ into gen/python/.

The one documented command for code generation:  python tools/gen_protos.py
`--check` regenerates into a temporary directory and exits 1 when gen/python differs,
which is how the test suite catches stale generated code.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen" / "python"


def _plugin(name: str) -> str:
    """mypy-protobuf's plugins live beside the interpreter in the same environment."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install -e '.[dev]' first")
    return found


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    # mypy-protobuf narrates every file it writes; keep the output for failures only.
    result = subprocess.run(cmd, cwd=PROTOS, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stdout}{result.stderr}")
    # Generated modules import each other as xerolink.<area>.v1; make every level a
    # regular package so mypy and setuptools find them without namespace tricks.
    for directory in [p for p in out.rglob("*") if p.is_dir()]:
        (directory / "__init__.py").touch()
    (out / "py.typed").touch()


def _differences(left: Path, right: Path) -> list[str]:
    cmp = filecmp.dircmp(left, right, ignore=["__pycache__"])
    diffs: list[str] = []

    def walk(c: filecmp.dircmp[str], prefix: str) -> None:
        diffs.extend(f"only in generated: {prefix}{n}" for n in c.right_only)
        diffs.extend(f"only in gen/python: {prefix}{n}" for n in c.left_only)
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        diffs.extend(f"differs: {prefix}{n}" for n in mismatch + errors)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(cmp, "")
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gen/python is stale")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "python"
            generate(fresh)
            diffs = _differences(OUT, fresh) if OUT.exists() else ["gen/python is missing"]
        if diffs:
            print("generated code is stale; run: python tools/gen_protos.py", file=sys.stderr)
            print("\n".join(diffs), file=sys.stderr)
            return 1
        print("generated code is up to date")
        return 0
    if OUT.exists():
        shutil.rmtree(OUT)
    generate(OUT)
    print(f"generated {sum(1 for _ in OUT.rglob('*.py'))} modules into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
