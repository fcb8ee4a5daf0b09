"""One trace per posted transaction: caller -> poster -> mapper -> Xero, across real gRPC and HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from xerolink.actionstep.v1 import common_pb2

from tests.fixtures.processes import ROOT, child_env

POSTING_ATTRIBUTES = (
    "xerolink.tenant_id",
    "xerolink.connection_id",
    "xerolink.kind",
    "xerolink.actionstep.id",
    "xerolink.outcome",
    "xerolink.batch_size",
)


def run_scenario(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The scenario's outcome, its finished spans, and the JSON log lines the services wrote."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "e2e" / "scenarios" / "traced_post.py"),
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        capture_output=True,
        text=True,
        env=child_env(XEROLINK_LOG_FORMAT="json", XEROLINK_LOG_LEVEL="INFO"),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return lines[0], [line for line in lines[1:] if "metric" not in line], logs


def run_for_metrics(tmp_path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "e2e" / "scenarios" / "traced_post.py"),
            f"sqlite:///{tmp_path / 'm.db'}",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"metric"')]


def test_the_caller_poster_mapper_and_xero_call_share_one_trace(tmp_path: Path) -> None:
    outcome, spans, _ = run_scenario(tmp_path)
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
    assert outcome["kind"] == common_pb2.TRANSACTION_KIND_CLIENT_BILL
    (invoice_call,) = [s for s in in_trace if s["name"] == "xero Invoices"]
    attributes = invoice_call["attributes"]
    assert {key: attributes.get(key) for key in POSTING_ATTRIBUTES} == {
        "xerolink.tenant_id": outcome["tenant_id"],
        "xerolink.connection_id": "traced",
        "xerolink.kind": str(common_pb2.TRANSACTION_KIND_CLIENT_BILL),
        "xerolink.actionstep.id": str(outcome["record_id"]),
        # The call's outcome for this element: Xero created the invoice (so the link is linked).
        "xerolink.outcome": "created",
        "xerolink.batch_size": "1",
    }
    # No other span of the trace claims another record, tenant or outcome.
    for span in in_trace:
        claimed = {k: v for k, v in span["attributes"].items() if k in POSTING_ATTRIBUTES}
        assert claimed.items() <= attributes.items(), span


def test_the_poster_reports_its_outbox_links_xero_latency_and_rate_limit_headroom(tmp_path: Path) -> None:
    points = run_for_metrics(tmp_path)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        by_name.setdefault(point["metric"], []).append(point)
    linked = [p for p in by_name.get("xerolink.links", []) if p["attributes"]["state"] == "linked"]
    assert linked and linked[0]["value"] == 1 and linked[0]["attributes"]["xerolink.connection_id"] == "traced"
    # The one bill is linked: nothing is left in the outbox.
    assert all(p["value"] == 0 for p in by_name.get("xerolink.outbox.depth", []))
    calls = by_name.get("xerolink.xero.call.duration", [])
    assert any(p["attributes"]["xero.resource"] == "Invoices" and p["value"] >= 1 for p in calls), calls
    headroom = {p["attributes"]["window"]: p["value"] for p in by_name.get("xerolink.xero.rate_limit.remaining", [])}
    assert {"minute", "day"} <= set(headroom) and 0 < headroom["minute"] < 60 and 0 < headroom["day"] < 5000


def test_log_lines_written_while_the_posting_is_handled_carry_its_trace(tmp_path: Path) -> None:
    outcome, spans, logs = run_scenario(tmp_path)
    assert outcome["state"] == "LINK_STATE_LINKED"
    (invoice_call,) = [s for s in spans if s["trace_id"] == outcome["root_trace"] and s["name"] == "xero Invoices"]
    # httpx logs each request once it is answered, inside the poster's span around the Xero call.
    written = [line for line in logs if "/api.xro/2.0/Invoices" in line["message"]]
    assert written, logs
    for line in written:
        assert (line["trace_id"], line["span_id"]) == (outcome["root_trace"], invoice_call["span_id"]), line
    # A line outside any span (the dispatcher taking the tenant) carries no ids.
    (serving,) = [line for line in logs if line["message"].startswith("serving tenant ")]
    assert "trace_id" not in serving and "span_id" not in serving
    for line in logs:
        if "trace_id" in line:
            assert re.fullmatch("[0-9a-f]{32}", line["trace_id"]) and re.fullmatch("[0-9a-f]{16}", line["span_id"])


def test_the_contact_found_and_created_for_a_posting_is_in_its_trace(tmp_path: Path) -> None:
    """The bill's participant is new to Xero: the contact look-up and creation made for it are
    Xero calls of this posting, and belong to its trace like the invoice call."""
    outcome, spans, _ = run_scenario(tmp_path)
    assert outcome["state"] == "LINK_STATE_LINKED"
    in_trace = [s for s in spans if s["trace_id"] == outcome["root_trace"]]
    contact_calls = [
        (s["attributes"].get("http.request.method") or s["attributes"].get("http.method"))
        for s in in_trace
        if s["kind"] == "CLIENT" and "/api.xro/2.0/Contacts" in json.dumps(s["attributes"])
    ]
    assert sorted(contact_calls) == ["GET", "PUT"], [s["name"] for s in in_trace]
    (contacts,) = [s for s in in_trace if s["name"] == "xero Contacts"]
    assert contacts["attributes"]["xerolink.actionstep.id"] == str(outcome["record_id"])
