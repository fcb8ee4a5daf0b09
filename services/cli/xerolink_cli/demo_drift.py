"""`xerolink demo --drift`: after the week is posted, someone works in Xero. The emulator sends
signed webhooks to the poster (docs/drift.md, Webhooks) while a person matches a bank-feed line to
an open client invoice and voids a supplier bill by hand (docs/emulator.md, Hand edits); the
demo waits for the drift records, posts Actionstep's receipt for the invoice already paid in Xero
and shows it held, then lists the drift and reconciles the week."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.money import cents_to_str, decimal_to_cents

from xerolink_cli import drift, reconcile
from xerolink_cli.commands import post_all, results_table
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.local_stack import LocalStack
from xerolink_cli.notes import Notes

# The week's bill the client pays through the bank feed, and the receipt Actionstep then records.
PAID_BILL = 1001
RECEIPT_ID = 7002
# A supplier bill entered after the week, voided in Xero by hand.
VOIDED_BILL = 5002
DAY = "2026-11-12"
PERIOD = ("2026-11-01", "2026-11-30")
EXPECTED_KINDS = {drift_pb2.DRIFT_KIND_PAID_IN_XERO, drift_pb2.DRIFT_KIND_VOIDED_IN_XERO}
WAIT_SECONDS = 60.0


def _find(transactions: Sequence[transaction_pb2.Transaction], kind: str, record: int) -> transaction_pb2.Transaction:
    return next(t for t in transactions if t.WhichOneof("kind") == kind and t.header.id == record)


def _dated(tx: transaction_pb2.Transaction, record: int, reference: str) -> transaction_pb2.Transaction:
    """A new Actionstep record like `tx`, dated in the days after the week."""
    copy = transaction_pb2.Transaction()
    copy.CopyFrom(tx)
    copy.header.id = record
    copy.header.reference = reference
    copy.header.posted_at.FromJsonString(f"{DAY}T03:00:00Z")
    year, month, day = (int(p) for p in DAY.split("-"))
    copy.header.transaction_date.year, copy.header.transaction_date.month = year, month
    copy.header.transaction_date.day = day
    return copy


def _xero_id(results: Sequence[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]], record: int) -> str:
    for tx, posting, _ in results:
        if tx.header.id == record and posting is not None and posting.link.xero_objects:
            return str(posting.link.xero_objects[0].xero_id)
    raise RuntimeError(f"record {record} was not linked to a Xero object")


def _admin(stack: LocalStack, method: str, path: str, body: dict[str, Any]) -> Any:
    answer = httpx.request(method, f"{stack.emulator_url}/emulator{path}", json=body, timeout=10)
    answer.raise_for_status()
    # Amounts arrive as JSON numbers: read them as Decimal, never float.
    return json.loads(answer.text, parse_float=Decimal)


def _amount_due(stack: LocalStack, tenant: str, invoice_id: str) -> Decimal:
    answer = httpx.get(f"{stack.emulator_url}/emulator/organisations/{tenant}/objects/Invoices", timeout=10)
    answer.raise_for_status()
    invoices = json.loads(answer.text, parse_float=Decimal)
    found = next(i for i in invoices["Invoices"] if i["InvoiceID"] == invoice_id)
    return Decimal(str(found["AmountDue"]))


def _wait_for_drift(stub: poster_grpc.PosterServiceStub, connection: str) -> bool:
    """True once the webhooks have turned both hand changes into drift records."""
    deadline = time.monotonic() + WAIT_SECONDS
    request = drift_pb2.ListDriftRequest(connection_id=connection, page_size=500)
    while time.monotonic() < deadline:
        kinds = {d.kind for d in stub.ListDrift(request, timeout=10).drifts}
        if kinds >= EXPECTED_KINDS:
            return True
        time.sleep(0.2)
    return False


def _until_held(stub: poster_grpc.PosterServiceStub, posting: poster_pb2.Posting) -> poster_pb2.Posting:
    """The posting once the dispatcher has decided: held (waiting, with a reason) or settled."""
    latest = posting
    for update in stub.WatchPosting(poster_pb2.WatchPostingRequest(name=posting.name), timeout=WAIT_SECONDS):
        latest = update.posting
        if latest.state != poster_pb2.LINK_STATE_PENDING and (
            latest.state != poster_pb2.LINK_STATE_WAITING or latest.link.last_error.reason
        ):
            break
    return latest


def show_drift(
    stack: LocalStack,
    stub: poster_grpc.PosterServiceStub,
    console: Console,
    connection: str,
    tenant: str,
    transactions: Sequence[transaction_pb2.Transaction],
    results: Sequence[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]],
    wide: bool,
) -> ExitCode:
    console.print("\n[bold]Meanwhile, in Xero[/bold]: the firm's bookkeeper works in Xero's web app")
    supplier_bill = _dated(_find(transactions, "supplier_invoice", 5001), VOIDED_BILL, "MPS-88990")
    supplier_bill.supplier_invoice.invoice_number = "MPS-88990"
    bill = post_all(stub, connection, [supplier_bill], console, wait=True)
    state = bill[0][1].state if bill[0][1] is not None else poster_pb2.LINK_STATE_UNSPECIFIED
    console.print(
        f"- Actionstep posted one more supplier bill, MPS-88990 (record {VOIDED_BILL}): "
        f"{poster_pb2.LinkState.Name(state).removeprefix('LINK_STATE_').lower()}"
    )
    # Xero signs each delivery with the app's webhook key; the poster checks the signature.
    _admin(stack, "PUT", "/webhooks", {"url": stack.webhook_url, "key": stack.webhook_key})
    invoice_id = _xero_id(results, PAID_BILL)
    due = _amount_due(stack, tenant, invoice_id)
    receipt_of_week = _find(transactions, "client_bill_payment", 7001)
    bank = receipt_of_week.client_bill_payment.bank_account
    _admin(
        stack,
        "POST",
        f"/organisations/{tenant}/bank-feed-match",
        {"InvoiceID": invoice_id, "Amount": str(due), "Date": DAY, "AccountCode": bank},
    )
    console.print(f"- matched a bank-feed line of {due} to the client's invoice (bill {PAID_BILL}): it is paid")
    _admin(
        stack,
        "POST",
        f"/organisations/{tenant}/hand-edits/Invoices/{_xero_id(bill, VOIDED_BILL)}",
        {"Status": "VOIDED"},
    )
    console.print(f"- voided the supplier's bill MPS-88990 (record {VOIDED_BILL})")
    if not _wait_for_drift(stub, connection):
        console.print(f"[red]no drift recorded within {WAIT_SECONDS:.0f}s[/red]: see {stack.workdir}/poster.log")
        return ExitCode.FAILED
    console.print("\nActionstep then records the client's receipt for that invoice:")
    receipt = _dated(receipt_of_week, RECEIPT_ID, f"RCPT-{RECEIPT_ID}")
    receipt.client_bill_payment.amount.units = decimal_to_cents(str(due))
    posted = post_all(stub, connection, [receipt], console, wait=False)
    held = [(tx, _until_held(stub, p) if p is not None else None, e) for tx, p, e in posted]
    notes = Notes(wide=wide)
    notes.print(console, results_table(held, notes))
    console.print(f"(receipt of {cents_to_str(receipt.client_bill_payment.amount.units)}: not sent to Xero)")
    drift.list_command(
        argparse.Namespace(
            poster=stack.poster_target, connection=connection, state=None, kind=[], link="", format="table"
        ),
        console,
    )
    reconcile.reconcile_command(
        argparse.Namespace(
            poster=stack.poster_target, connection=connection, from_date=PERIOD[0], to_date=PERIOD[1], format="table"
        ),
        console,
    )
    return ExitCode.OK
