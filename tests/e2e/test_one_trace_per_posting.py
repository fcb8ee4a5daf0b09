"""One trace per posted transaction: caller -> poster -> mapper -> Xero, across real gRPC and HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.processes import ROOT, child_env


def run_scenario(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "e2e" / "scenarios" / "traced_post.py"),
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return lines[0], lines[1:]


def test_the_caller_poster_mapper_and_xero_call_share_one_trace(tmp_path: Path) -> None:
    outcome, spans = run_scenario(tmp_path)
    assert outcome["state"] == "LINK_STATE_LINKED"
    in_trace = [s for s in spans if s["trace_id"] == outcome["root_trace"]]
    names = {(s["name"], s["kind"]) for s in in_trace}
    assert ("/xerolink.poster.v1.PosterService/PostTransaction", "CLIENT") in names
    assert ("/xerolink.poster.v1.PosterService/PostTransaction", "SERVER") in names
    assert ("/xerolink.mapper.v1.MapperService/MapTransaction", "CLIENT") in names
    assert ("/xerolink.mapper.v1.MapperService/MapTransaction", "SERVER") in names
    xero_calls = [
        s for s in in_trace if s["kind"] == "CLIENT" and "/api.xro/2.0/Invoices" in json.dumps(s["attributes"])
    ]
    assert xero_calls, f"no Xero invoice call in the caller's trace: {sorted(names)}"
    posted = [s for s in in_trace if s["attributes"].get("xerolink.actionstep.id") == "1001"]
    assert posted, "no span carries the Actionstep record id"
    assert {"xerolink.tenant_id", "xerolink.kind", "xerolink.outcome"} <= set().union(
        *(s["attributes"] for s in posted)
    )
