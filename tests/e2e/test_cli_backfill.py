"""`xerolink backfill` as an operator runs it: the real console script against a poster on loopback."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2
from xerolink_cli.exit_codes import ExitCode
from xerolink_mapper import samples

from tests.e2e.test_cli import run_cli
from tests.fixtures.poster import PosterFactory, connect, stub_for, xero_objects
from tests.integration.test_poster_backfill import open_bill


def test_the_cli_preflights_backfills_with_progress_and_a_second_run_adds_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [open_bill(4100 + n, [700 * n]) for n in range(1, 4)]
    bills.append(open_bill(4200, [], status=backfill_pb2.BILL_STATUS_CLOSED))
    path = tmp_path / "bills.json"
    path.write_text(json_format.MessageToJson(backfill_pb2.StartBackfillRequest(bills=bills)))
    poster = f"127.0.0.1:{app.port}"

    first = run_cli("--poster", poster, "backfill", str(path), "--connection", "firm-1", "--division", "1")

    assert first.returncode == ExitCode.REFUSED, first.stdout + first.stderr  # the closed bill was refused
    assert "Preflight (ready)" in first.stdout
    assert "7 transactions: 6 accepted, 0 already done, 1 refused; 6 linked" in first.stdout
    assert "BILL_NOT_OPEN" in first.stdout
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 3

    second = run_cli("--poster", poster, "backfill", str(path), "--connection", "firm-1")

    assert "0 accepted, 6 already done, 1 refused; 6 linked" in second.stdout, second.stdout
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 3
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 3


def test_the_cli_stops_at_a_failed_preflight_and_says_what_to_do(
    poster_factory: PosterFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    app = poster_factory(run_dispatcher=False)
    context = samples.demo_context()
    context.accounting_method = mapper_pb2.ACCOUNTING_METHOD_CASH
    connect(stub_for(app), emulator, "cash-firm", context)
    path = tmp_path / "bills.json"
    path.write_text(json_format.MessageToJson(backfill_pb2.StartBackfillRequest(bills=[open_bill(4300, [])])))

    result = run_cli("--poster", f"127.0.0.1:{app.port}", "backfill", str(path), "--connection", "cash-firm")

    assert result.returncode == ExitCode.FAILED
    assert "Preflight (not ready)" in result.stdout and "accrual" in result.stdout
    assert "backfills/" not in result.stdout
    unreadable = run_cli("--poster", "127.0.0.1:9", "backfill", str(tmp_path / "missing.json"), "--connection", "x")
    assert unreadable.returncode == ExitCode.USAGE
