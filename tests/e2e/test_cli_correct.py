"""`xerolink correct` as an operator runs it: the real console script against a poster on
loopback and the emulator. Exit codes as docs/operations.md lists them."""

from __future__ import annotations

import pytest
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.exit_codes import ExitCode

from tests.e2e.test_cli import run_cli
from tests.fixtures.poster import PosterFactory, stub_for
from tests.integration.test_poster_corrections import BILL, PAYMENT, Firm


@pytest.fixture
def served(poster_factory: PosterFactory, emulator: EmulatorServer) -> tuple[Firm, str]:
    app = poster_factory()
    firm = Firm(stub_for(app), emulator)
    firm.post("client_bill", "client_bill_payment")
    return firm, f"127.0.0.1:{app.port}"


def correct(target: str, *args: str) -> tuple[int, str]:
    result = run_cli("--poster", target, "correct", *args)
    return result.returncode, result.stdout + result.stderr


def test_the_plan_is_printed_and_nothing_changes(served: tuple[Firm, str]) -> None:
    firm, target = served
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)

    code, out = correct(target, f"client-bill/{firm.bill}", "--connection", "firm-1", "--intent", "edit")

    assert code == ExitCode.OK, out
    assert "xerolink" in out and "Actionstep user" in out
    assert payment_id in out and "Revert client bill" in out and "Nothing was changed" in out
    assert firm.xero("Payments", payment_id)["Status"] == "AUTHORISED"


def test_apply_needs_confirmation_and_bad_records_are_usage_errors(served: tuple[Firm, str]) -> None:
    firm, target = served
    code, out = correct(target, f"client-bill/{firm.bill}", "--connection", "firm-1", "--intent", "delete", "--apply")
    assert code == ExitCode.USAGE and "--yes" in out
    code, out = correct(target, "not-a-kind/1", "--connection", "firm-1", "--intent", "delete")
    assert code == ExitCode.USAGE and "unknown kind" in out
    code, out = correct(target, f"{PAYMENT}/424242", "--connection", "firm-1", "--intent", "delete")
    assert code == ExitCode.FAILED and "LINK_NOT_FOUND" in out
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED


def test_apply_runs_the_saga_and_a_failed_step_resumes_on_the_next_run(served: tuple[Firm, str]) -> None:
    firm, target = served
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.emulator.faults.add(FaultRule("error", status=503, count=1, methods=("POST",), path_contains=invoice_id))
    args = (f"client-bill/{firm.bill}", "--connection", "firm-1", "--intent", "delete", "--apply", "--yes")

    code, out = correct(target, *args)

    assert code == ExitCode.FAILED, out
    assert "XERO_UNAVAILABLE" in out and "run the same command again" in out
    assert firm.xero("Invoices", invoice_id)["Status"] == "AUTHORISED"

    code, out = correct(target, *args)

    assert code == ExitCode.OK, out
    assert "xerolink's steps are done" in out
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED


def test_an_applied_edit_says_what_became_of_the_old_invoice(served: tuple[Firm, str]) -> None:
    firm, target = served
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    args = (f"client-bill/{firm.bill}", "--connection", "firm-1", "--intent", "edit")

    code, planned = correct(target, *args)
    assert code == ExitCode.OK, planned
    renamed = f"INV-{firm.bill}-void-{firm.bill}-1"
    assert f"the old invoice INV-{firm.bill} is renamed {renamed} and voided" in " ".join(planned.split())
    assert firm.xero("Invoices", invoice_id)["InvoiceNumber"] == f"INV-{firm.bill}"

    code, out = correct(target, *args, "--apply", "--yes")

    assert code == ExitCode.OK, out
    assert f"the old invoice INV-{firm.bill} is renamed {renamed} and voided" in " ".join(out.split())
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("VOIDED", renamed)
