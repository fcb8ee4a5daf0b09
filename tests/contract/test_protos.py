"""The contracts' own guards: Buf STANDARD lint, no breaking change against the released
baseline, and generated Python code that matches the protos."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "contracts" / "baseline.binpb"


@pytest.fixture(scope="module")
def buf() -> str:
    path = ROOT / "node_modules" / ".bin" / "buf"
    if not path.exists():
        pytest.fail("buf is not installed: run `./dev setup` (it runs `npm ci` for @bufbuild/buf)")
    return str(path)


def run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_buf_lint_passes_standard_rules(buf: str) -> None:
    result = run([buf, "lint"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_contract_has_no_breaking_change_against_the_released_baseline(buf: str) -> None:
    assert BASELINE.exists(), "contracts/baseline.binpb is missing"
    result = run([buf, "breaking", "--against", str(BASELINE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_breaking_check_fails_on_a_deliberately_broken_copy(buf: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    money = tmp_path / "protos" / "xerolink" / "type" / "v1" / "money.proto"
    text = money.read_text()
    # Changing a field's type is the classic wire break: old readers misread new writers.
    broken = text.replace("int64 units = 2;", "string units = 2;")
    assert broken != text, "the money contract changed shape; update this test's edit"
    money.write_text(broken)
    result = run([buf, "breaking", "--against", str(BASELINE)], cwd=tmp_path)
    assert result.returncode == 100, result.stdout + result.stderr
    assert "units" in result.stdout and "type" in result.stdout.lower()


def test_removing_an_rpc_is_caught_as_breaking(buf: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    mapper = tmp_path / "protos" / "xerolink" / "mapper" / "v1" / "mapper_service.proto"
    lines = [ln for ln in mapper.read_text().splitlines() if "rpc ListSupportMatrix(" not in ln]
    mapper.write_text("\n".join(lines) + "\n")
    result = run([buf, "breaking", "--against", str(BASELINE)], cwd=tmp_path)
    assert result.returncode == 100
    assert "ListSupportMatrix" in result.stdout


def test_generated_code_is_not_stale() -> None:
    result = run([sys.executable, "tools/gen_protos.py", "--check"])
    assert result.returncode == 0, result.stdout + result.stderr
