"""The operator CLI as a script would run it: real console script, real services."""

from __future__ import annotations

import subprocess
from pathlib import Path

from xerolink_cli.exit_codes import ExitCode

from tests.fixtures.processes import child_env, console_script


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script("xerolink"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(COLUMNS="200"),
        timeout=60,
        check=False,
    )


def test_matrix_lists_every_kind_with_its_decision(mapper_process_target: str) -> None:
    result = run_cli("--mapper", mapper_process_target, "matrix", "--profile", "compatible")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "client bill" in result.stdout
    assert "general journal" in result.stdout
    assert "EXTENDED_ONLY" in result.stdout
    assert "PRE_INTEGRATION" in result.stdout


def test_unreadable_input_exits_2_and_sends_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"header": {"id": "1"}, "clientBill": {"lines": "not a list"}}\n')
    # The poster address is closed: exit 2 proves the input was refused before any call.
    result = run_cli("--poster", "127.0.0.1:9", "post", str(bad), "--connection", "c1")
    assert result.returncode == ExitCode.USAGE
    assert "bad.ndjson:1" in result.stdout


def test_an_unreachable_service_exits_3() -> None:
    result = run_cli("--mapper", "127.0.0.1:9", "matrix")
    assert result.returncode == ExitCode.UNAVAILABLE
    assert "unavailable" in result.stdout
