"""A full run with debug logging: no token, secret or authorization header reaches any log."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from xerolink_cli.exit_codes import ExitCode

from tests.fixtures.processes import child_env, console_script

SECRETS = {
    "an access token (JWT)": re.compile(r"eyJ[A-Za-z0-9_-]{16,}"),
    "a refresh token or 256-bit secret": re.compile(r"\b[0-9a-fA-F]{64}\b"),
    "an authorization header": re.compile(r"(?i)\bbearer\s+\S+|authorization['\"]?\s*[:=]"),
    "a token field": re.compile(r"(?i)(access|refresh|id)_token['\"]?\s*[:=]\s*['\"]?\w"),
    "a client secret": re.compile(r"(?i)client_secret['\"]?\s*[:=]\s*['\"]?\w"),
}


def test_a_debug_run_of_the_demo_logs_no_secret(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [*console_script("xerolink"), "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=child_env(XEROLINK_LOG_LEVEL="DEBUG", XEROLINK_LOG_FORMAT="json", COLUMNS="200"),
        timeout=180,
        check=False,
    )
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    logs = {path.name: path.read_text() for path in workdir.glob("*.log")}
    assert {"emulator.log", "mapper.log", "poster.log"} <= set(logs)
    # The run really logged at debug level, as JSON, so the check below covers the chatty path.
    poster_lines = [json.loads(line) for line in logs["poster.log"].splitlines() if line.startswith("{")]
    assert any(line["level"] == "DEBUG" for line in poster_lines)
    logs["cli stdout"] = result.stdout + result.stderr
    leaks = [
        f"{name}: {what}: {match.group(0)[:12]}…"
        for name, text in logs.items()
        for what, pattern in SECRETS.items()
        for match in pattern.finditer(text)
    ]
    assert not leaks, "\n".join(leaks)
