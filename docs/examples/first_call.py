"""A first call to xerolink's poster from Python: post a bill, retry it safely, watch it link,
read a refusal, find the link by name and unlink it.

Run:  XEROLINK_POSTER=localhost:50062 XEROLINK_CONNECTION=main python docs/examples/first_call.py
It uses the code generated from protos/ (`pip install -e .` puts it on the path as `xerolink`)."""

from __future__ import annotations

import json
import os

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from xerolink.actionstep.v1 import banking_pb2, billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.poster.v1 import unlink_pb2
from xerolink.type.v1 import date_pb2, money_pb2

TARGET = os.environ.get("XEROLINK_POSTER", "localhost:50062")
CONNECTION = os.environ.get("XEROLINK_CONNECTION", "main")
BILL_ID = int(os.environ.get("XEROLINK_BILL_ID", "7001"))


def aud(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="AUD", units=cents)


def header(record_id: int) -> common_pb2.TransactionHeader:
    h = common_pb2.TransactionHeader(
        id=record_id,
        division_id=1,
        currency_code="AUD",
        transaction_date=date_pb2.Date(year=2026, month=3, day=2),
        participant=common_pb2.Participant(participant_id=501, display_name="Harper & Cole Pty Ltd"),
    )
    h.posted_at.FromJsonString("2026-03-02T09:30:00Z")
    return h


def bill(record_id: int) -> transaction_pb2.Transaction:
    line = common_pb2.Line(
        description="Advice on lease", gl_account="200", tax_code="GST", amount=aud(45000), tax=aud(4500)
    )
    return transaction_pb2.Transaction(
        header=header(record_id),
        client_bill=billing_pb2.ClientBill(
            bill_number=f"INV-{record_id}",
            due_date=date_pb2.Date(year=2026, month=4, day=1),
            lines=[line],
            totals=common_pb2.Totals(exclusive=aud(45000), tax=aud(4500), inclusive=aud(49500)),
        ),
    )


def journal(record_id: int) -> transaction_pb2.Transaction:
    lines = [
        common_pb2.JournalLine(gl_account="420", description="To office", amount=aud(10000)),
        common_pb2.JournalLine(gl_account="489", description="From telephone", amount=aud(-10000)),
    ]
    return transaction_pb2.Transaction(
        header=header(record_id), general_journal=banking_pb2.GeneralJournal(narration="Reclassify", lines=lines)
    )


def main() -> None:
    stub = poster_grpc.PosterServiceStub(grpc.insecure_channel(TARGET))
    summary: dict[str, object] = {}

    # 1. Post. request_id makes the call safe to retry: the same id with the same content
    #    answers with the first posting and queues nothing new (AIP-155).
    request = poster.PostTransactionRequest(
        connection_id=CONNECTION, transaction=bill(BILL_ID), request_id=f"bill-{BILL_ID}-v1"
    )
    first = stub.PostTransaction(request, timeout=10)
    assert first.outcome == poster.POST_OUTCOME_ACCEPTED, first
    summary["posting"] = first.posting.name

    # 2. Retry (say the answer was lost on the way back): DUPLICATE, the same posting.
    again = stub.PostTransaction(request, timeout=10)
    summary["retry"] = poster.PostOutcome.Name(again.outcome)
    assert again.posting.name == first.posting.name

    # 3. Watch until the posting settles (LINKED, FAILED, or UNLINKED).
    settled = {poster.LINK_STATE_LINKED, poster.LINK_STATE_FAILED, poster.LINK_STATE_UNLINKED}
    for update in stub.WatchPosting(poster.WatchPostingRequest(name=first.posting.name), timeout=30):
        if update.posting.state in settled:
            summary["state"] = poster.LinkState.Name(update.posting.state)
            break

    # 4. A refusal is an answer, not an error: outcome NOT_SUPPORTED, with the reason.
    refused = stub.PostTransaction(
        poster.PostTransactionRequest(connection_id=CONNECTION, transaction=journal(BILL_ID + 1)), timeout=10
    )
    if refused.outcome == poster.POST_OUTCOME_NOT_SUPPORTED:
        summary["refusal"] = {"reason_code": refused.decision.reason_code, "reason": refused.decision.reason}

    # 5. Read the link by its name: the kind by name, then the Actionstep id.
    link_name = f"connections/{CONNECTION}/links/client-bill/{BILL_ID}"
    link = stub.GetLink(poster.GetLinkRequest(name=link_name), timeout=10).link
    summary["link"] = link.name
    summary["xero_ids"] = [o.xero_id for o in link.xero_objects]

    # 6. Unlink it by its name (or its record, with records=[link.record]): preview first, then
    # confirm. Errors carry google.rpc details saying what to do.
    names = [link.name]
    unlink = unlink_pb2.UnlinkLinksRequest
    preview = stub.UnlinkLinks(unlink(connection_id=CONNECTION, names=names, validate_only=True), timeout=10)
    summary["preview"] = [unlink_pb2.UnlinkAction.Name(o.action) for o in preview.outcomes]
    try:
        done = stub.UnlinkLinks(unlink(connection_id=CONNECTION, names=names, confirm=True), timeout=10)
        summary["unlinked"] = done.unlinked_count
    except grpc.RpcError as err:
        status = rpc_status.from_call(err)
        for detail in status.details if status else []:
            failure = error_details_pb2.PreconditionFailure()
            if detail.Unpack(failure):
                summary["blocked"] = [v.description for v in failure.violations]
        raise
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
