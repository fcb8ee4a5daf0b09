"""`xerolink drift resolve` against a real poster and emulator, on SQLite and PostgreSQL: a drift
Xero still shows is not resolved as corrected (exit 1, the differences listed), one put back in
Xero is (exit 0, the held payment posted), Xero's version of a voided bill is accepted (JSON
output), and bad usage sends nothing (exit 2)."""

from __future__ import annotations

import json

from xero_emulator import EmulatorServer
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples

from tests.fixtures.cli import run_cli
from tests.fixtures.drift_firm import BILL, Firm
from tests.fixtures.hand_edits import hand_edit
from tests.fixtures.poster import PosterFactory, wait_for, wait_settled


def test_drift_resolve_confirms_a_correction_or_accepts_xeros_version(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3600)
    poster = f"127.0.0.1:{firm.app.port}"
    invoice = firm.linked_bill()
    matched = firm.pay_in_full_by_bank_feed(invoice)
    firm.observe_bill(invoice)
    [paid] = firm.drifts()
    posting = firm.post(firm.payment)
    wait_for(lambda: firm.payment_link().last_error.reason == "XERO_DOCUMENT_CHANGED")

    still = run_cli("--poster", poster, "drift", "resolve", paid.name, "--corrected")
    assert still.returncode == 1, still.stdout + still.stderr
    assert "DRIFT_NOT_CORRECTED" in still.stdout
    assert "Status: posted 'AUTHORISED', Xero 'PAID'" in still.stdout
    assert firm.drifts()[0].state == drift_pb2.DRIFT_STATE_OPEN

    for usage in (
        [paid.name, "--corrected", "--accept-xero"],  # one resolution only
        [paid.name],  # a resolution is required
        [paid.drift_id, "--corrected"],  # an id needs its connection
    ):
        refused = run_cli("--poster", poster, "drift", "resolve", *usage)
        assert refused.returncode == 2, (usage, refused.stdout, refused.stderr)
    assert firm.drifts()[0].state == drift_pb2.DRIFT_STATE_OPEN

    hand_edit(emulator, firm.tenant, "Payments", matched["PaymentID"], {"Status": "DELETED"})
    note = "bank line was another client's"
    corrected = run_cli(
        "--poster", poster, "drift", "resolve", paid.drift_id, "--connection", "firm-1", "--corrected", "--note", note
    )
    assert corrected.returncode == 0, corrected.stdout + corrected.stderr
    assert f"resolved {paid.name} (paid-in-xero on {paid.link}) as corrected" in corrected.stdout
    assert f"note: {note}" in corrected.stdout
    assert wait_settled(firm.stub, posting.name).state == poster_pb2.LINK_STATE_LINKED

    # A second bill, voided in Xero: its version is accepted.
    bill = samples.sample_transactions(3700)["client_bill"]
    assert wait_settled(firm.stub, firm.post(bill).name).state == poster_pb2.LINK_STATE_LINKED
    voided_id = firm.link(BILL, bill.header.id).xero_objects[0].xero_id
    hand_edit(emulator, firm.tenant, "Invoices", voided_id, {"Status": "VOIDED"})
    firm.observe_bill({"InvoiceID": voided_id})
    voided = next(d for d in firm.drifts() if d.xero_id == voided_id)
    accepted = run_cli("--poster", poster, "drift", "resolve", voided.name, "--accept-xero", "--format", "json")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    shown = json.loads(accepted.stdout)
    assert (shown["name"], shown["state"], shown["resolution"]) == (
        voided.name,
        "DRIFT_STATE_RESOLVED",
        "DRIFT_RESOLUTION_ACCEPT_XERO",
    )
