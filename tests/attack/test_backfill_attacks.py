"""Attacks on the pre-integration backfill (docs/backfill.md): StartBackfill, GetBackfill,
WatchBackfill, over real gRPC on loopback with the real mapper, the Xero emulator and a SQLite
registry.

The backfill's promise (docs/backfill.md, step 3): "the Xero invoice ends with `AmountDue` =
Actionstep's `totalDue`", and "a bill and its payments are refused together, so Xero never gets an
invoice with the wrong amount due". Most attacks below check that invariant against what the
emulated Xero holds afterwards.

Each docstring says whether the test failed when it was written ("DEFECT": fixed since, the
docstring tells what happened before) or guarded behaviour that already held ("GUARD").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer, testing
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.poster.v1 import backfill_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.type.v1 import money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.entrypoints import bootstrap

from tests.fixtures.backfill_starts import at_once, meeting_at_the_mapper
from tests.fixtures.hand_edits import bank_feed_match, observe
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_for, xero_objects

# SQLite only: the backfill's rules are the same on both registries, and each test stays short.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BEFORE = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)  # the demo connection is connected on 2026-01-01
OPEN = backfill_pb2.BILL_STATUS_OPEN
ACCEPTED = backfill_pb2.BACKFILL_ITEM_OUTCOME_ACCEPTED
ALREADY_DONE = backfill_pb2.BACKFILL_ITEM_OUTCOME_ALREADY_DONE
REFUSED = backfill_pb2.BACKFILL_ITEM_OUTCOME_REFUSED
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
DONE = backfill_pb2.BACKFILL_STATE_DONE


# -- helpers -------------------------------------------------------------------------------------


def _dated(transaction: transaction_pb2.Transaction, posted: datetime = BEFORE) -> transaction_pb2.Transaction:
    transaction.header.posted_at.CopyFrom(samples.timestamp(posted))
    date = transaction.header.transaction_date
    date.year, date.month, date.day = posted.year, posted.month, posted.day
    return transaction


def _payment(record_id: int, bill_id: int, cents: int, currency: str = samples.CURRENCY) -> transaction_pb2.Transaction:
    payment = transaction_pb2.Transaction(
        header=samples.header(record_id),
        client_bill_payment=billing_pb2.ClientBillPayment(
            bill_id=bill_id, amount=samples.money(cents) if currency == samples.CURRENCY else _money(cents, currency)
        ),
    )
    return _dated(payment)


def _money(cents: int, currency: str) -> money_pb2.Money:
    money = samples.money(cents)
    money.currency_code = currency
    return money


def _bill(
    bill_id: int, payments: Sequence[transaction_pb2.Transaction], total_due: int | None = None
) -> backfill_pb2.BackfillBill:
    """An open Actionstep bill with the payments sent with it and the totalDue Actionstep shows
    (by default: the total less the payments sent)."""
    bill = _dated(samples.client_bill(bill_id))
    bill.client_bill.bill_number = f"OLD-{bill_id}"
    total = bill.client_bill.totals.inclusive.units  # 936.55
    due = total - sum(p.client_bill_payment.amount.units for p in payments) if total_due is None else total_due
    return backfill_pb2.BackfillBill(bill=bill, status=OPEN, total_due=samples.money(due), payments=list(payments))


def _simple(bill_id: int, *cents: int) -> backfill_pb2.BackfillBill:
    return _bill(bill_id, [_payment(bill_id * 10 + n, bill_id, c) for n, c in enumerate(cents, start=1)])


def _start(
    stub: poster_grpc.PosterServiceStub,
    bills: Sequence[backfill_pb2.BackfillBill],
    connection_id: str = "firm-1",
    request_id: str = "",
) -> backfill_pb2.Backfill:
    request = backfill_pb2.StartBackfillRequest(connection_id=connection_id, bills=bills, request_id=request_id)
    started: backfill_pb2.Backfill = stub.StartBackfill(request, timeout=30).backfill
    return started


def _finish(stub: poster_grpc.PosterServiceStub, name: str, timeout: float = 8.0) -> backfill_pb2.Backfill:
    """The backfill once WatchBackfill ends (DONE), or the last state seen when it times out."""
    last: backfill_pb2.Backfill | None = None
    try:
        for update in stub.WatchBackfill(backfill_pb2.WatchBackfillRequest(name=name), timeout=timeout):
            last = update.backfill
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    if last is None:
        last = stub.GetBackfill(backfill_pb2.GetBackfillRequest(name=name)).backfill
    return last


def _invoices(emulator: EmulatorServer, tenant_id: str) -> dict[str, dict[str, Any]]:
    """Xero's invoices by number (several under one number are a failure of their own)."""
    found: dict[str, dict[str, Any]] = {}
    for invoice in xero_objects(emulator, tenant_id, "Invoices"):
        number = str(invoice.get("InvoiceNumber"))
        assert number not in found, f"two Xero invoices numbered {number}"
        found[number] = invoice
    return found


def _amount_due_mismatches(
    emulator: EmulatorServer, tenant_id: str, bills: Sequence[backfill_pb2.BackfillBill]
) -> dict[str, tuple[Decimal, Decimal]]:
    """Every bill whose Xero invoice owes another amount than Actionstep's totalDue:
    number -> (Xero's AmountDue, Actionstep's totalDue)."""
    invoices = _invoices(emulator, tenant_id)
    wrong: dict[str, tuple[Decimal, Decimal]] = {}
    for bill in bills:
        number = bill.bill.client_bill.bill_number
        invoice = invoices.get(number)
        if invoice is None:
            continue  # not in Xero: refused, or failed in Xero; nothing owed wrongly
        due = Decimal(bill.total_due.units) / 100
        if Decimal(str(invoice["AmountDue"])) != due:
            wrong[number] = (Decimal(str(invoice["AmountDue"])), due)
    return wrong


def _records(stub: poster_grpc.PosterServiceStub, connection_id: str = "firm-1") -> set[tuple[int, int]]:
    links = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=connection_id)).links
    return {(link.record.kind, link.record.id) for link in links}


def _item(backfill: backfill_pb2.Backfill, kind: int, record_id: int) -> list[backfill_pb2.BackfillItem]:
    return [i for i in backfill.items if i.record.kind == kind and i.record.id == record_id]


def _mapper_lost_after(app: bootstrap.PosterApp, monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """The poster's mapper stops answering after `calls` batch calls (a mapper restart or a
    network cut during a long backfill): later calls meet a port nothing listens on, through the
    poster's real client and its real translation of the gRPC error."""
    original = app.mapper.map_each
    seen = [0]

    def flaky(requests: Sequence[tuple[transaction_pb2.Transaction, mapper_pb2.MappingContext]]) -> Any:
        seen[0] += 1
        if seen[0] > calls:
            app.mapper._stub = mapper_grpc.MapperServiceStub(grpc.insecure_channel("127.0.0.1:9"))
        return original(requests)

    monkeypatch.setattr(app.mapper, "map_each", flaky)


def _mapper_back(app: bootstrap.PosterApp, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    monkeypatch.undo()
    app.mapper._stub = mapper_grpc.MapperServiceStub(grpc.insecure_channel(target))


# -- payments that the request check lets through but Xero never gets ------------------------------


def test_a_payment_sent_twice_with_one_bill_is_refused_with_its_bill(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT. Bill OLD-5101 (936.55) had two payments of 200.00 in Actionstep (totalDue 536.55);
    the caller's export sent the same payment record (51011) twice. The total-less-payments check
    counts it twice and passes, the second copy is answered ALREADY_DONE (the first one's
    posting), and Xero gets one payment: the invoice owes 736.55 while Actionstep says 536.55.
    The client is chased for 200.00 already paid, and the backfill reports every item done.
    Correct: the same payment twice in one bill is refused with its bill (like DUPLICATE_BILL),
    so Xero never gets an invoice with the wrong amount due."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    twice = _payment(51011, 5101, 20000)
    bills = [_bill(5101, [twice, twice])]

    started = _start(stub, bills)
    final = _finish(stub, started.name)

    assert final.state == DONE
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}
    assert final.refused == 3, "a duplicated payment must be refused with its bill, not reported done"
    assert {i.error.reason for i in final.items if i.record.kind == PAYMENT} == {Reason.DUPLICATE_PAYMENT}
    assert _invoices(emulator, org["tenant_id"]) == {}


def test_one_payment_record_sent_with_two_bills_refuses_both_bills(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT. Two bills each list a payment with record id 9900 (an id mix-up in the caller's
    export; each has the right bill_id, so PAYMENT_OF_ANOTHER_BILL does not catch it). Both bills
    pass the request check; the first payment is accepted, the second is refused
    POSTING_IN_PROGRESS after its bill was already queued. OLD-5202 reaches Xero owing its whole
    936.55 while Actionstep says 636.55 is due. Correct: a payment record used twice in one request
    refuses the groups it appears in before anything is posted (nothing reaches Xero with the
    wrong amount due)."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bills = [_bill(5201, [_payment(9900, 5201, 20000)]), _bill(5202, [_payment(9900, 5202, 30000)])]

    started = _start(stub, bills)
    final = _finish(stub, started.name)

    assert final.state == DONE
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}
    assert final.refused == 4 and _invoices(emulator, org["tenant_id"]) == {}
    assert {i.error.reason for i in final.items if i.record.kind == PAYMENT} == {Reason.DUPLICATE_PAYMENT}


@pytest.mark.parametrize(
    "payments",
    [
        pytest.param([(60000, "AUD"), (-10000, "AUD")], id="a reversal sent as a negative payment"),
        pytest.param([(20000, "NZD")], id="a payment whose amount is in another currency"),
    ],
)
def test_a_payment_the_mapper_refuses_refuses_its_bill_before_it_is_posted(
    poster_factory: PosterFactory, emulator: EmulatorServer, payments: list[tuple[int, str]]
) -> None:
    """DEFECT. The request check sums payment units whatever their sign or currency, so the bill
    passes and is posted first; the mapper then refuses the payment (amount must be positive /
    in the transaction's currency). The invoice is in Xero owing another amount than Actionstep's
    totalDue, although docs/backfill.md says a bill and its payments are refused together "so Xero
    never gets an invoice with the wrong amount due". Correct: payments are checked (or mapped)
    before their bill is posted, and a bill whose payment cannot be posted is refused with it
    (service_layer/backfill.py: start_backfill posts bills before mapping any payment)."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    sent = [_payment(53000 + n, 5300, cents, currency) for n, (cents, currency) in enumerate(payments, start=1)]
    bills = [_bill(5300, sent)]

    started = _start(stub, bills)
    final = _finish(stub, started.name)

    assert final.state == DONE
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}
    [bill] = _item(final, BILL, 5300)
    assert (bill.outcome, bill.error.reason) == (REFUSED, Reason.PAYMENT_REFUSED), bill
    assert _invoices(emulator, org["tenant_id"]) == {}
    # The mapper's field named where the request holds the payment, not as "transaction...".
    fields = [v.field for i in final.items if i.record.kind == PAYMENT for v in i.error.field_violations]
    assert fields and all(f.startswith("bills[0].payments[") for f in fields), fields


# -- a start that fails part-way ---------------------------------------------------------------


def test_a_start_that_loses_the_mapper_after_the_bills_says_what_it_queued_and_how_to_finish(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mapper stops answering between the bills' batch and the payments' batch (a mapper
    restart during a long backfill; the payments were already checked with it before any bill
    was posted). Before the fix StartBackfill answered UNAVAILABLE "nothing was recorded, retry
    the request shortly" while the bills were queued and reached Xero owing their whole total.
    Now the answer says that transactions were queued and that the same request again finishes
    the backfill (test_the_same_request_again_after_a_failed_start_completes_it_once)."""
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bills = [_simple(5401, 20000), _simple(5402, 30000)]
    _mapper_lost_after(app, monkeypatch, calls=2)  # the payments' check, then the bills

    with pytest.raises(grpc.RpcError) as err:
        _start(stub, bills, request_id="migration-1")
    error = from_rpc_error(err.value)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, error
    assert _records(stub), "the bills were expected queued before the mapper was lost"
    assert error.reason == Reason.BACKFILL_INTERRUPTED, error
    assert "queued" in error.message and "same request again" in error.message, error.message
    assert "nothing was recorded" not in error.message, error.message


def test_a_start_that_loses_the_mapper_before_any_bill_is_posted_queues_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mapper is lost after the payments' check, before the bills' batch: the answer says
    nothing was recorded, and nothing was."""
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    _mapper_lost_after(app, monkeypatch, calls=1)
    with pytest.raises(grpc.RpcError) as err:
        _start(stub, [_simple(5411, 20000), _simple(5412, 30000)], request_id="migration-1b")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _records(stub) == set()


def test_the_same_request_again_after_a_failed_start_completes_it_once(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """GUARD. After a start that failed part-way (mapper lost after the bills), sending the same
    request again under the same request_id resumes it: the bills already queued are ALREADY_DONE
    (no second invoice), the payments are queued, and every invoice ends owing Actionstep's
    totalDue."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [_simple(5501, 20000), _simple(5502, 30000, 1000)]
    _mapper_lost_after(app, monkeypatch, calls=2)  # the payments' check, then the bills
    with pytest.raises(grpc.RpcError):
        _start(stub, bills, request_id="migration-2")
    _mapper_back(app, monkeypatch, mapper_target)

    again = _start(stub, bills, request_id="migration-2")
    final = _finish(stub, again.name)

    assert final.state == DONE and final.linked == 5 and final.refused == 0
    assert {i.outcome for i in final.items if i.record.kind == BILL} == {ALREADY_DONE}
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 2
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 3
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}


def test_a_request_id_reused_concurrently_for_other_bills_is_refused_before_anything_of_it_is_posted(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers start backfills of different bills under one request_id at the same time.
    Both pass the request_id look-up (nothing recorded yet). DEFECT: both then posted their
    bills, and the one that recorded second was refused REQUEST_ID_REUSED while its bill and
    payment were already queued for Xero; a caller told "request_id reused" takes it that
    nothing of that request happened. Now the request_id is claimed for one request before
    anything is posted: the other request is refused with nothing of it queued, and the
    winner's backfill ends as if it had run alone."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    entered = meeting_at_the_mapper(app, monkeypatch, 2)
    bills = {5601: _simple(5601, 20000), 5602: _simple(5602, 30000)}

    def start(bill_id: int) -> Callable[[], backfill_pb2.Backfill]:
        return lambda: _start(stub, [bills[bill_id]], request_id="nightly-backfill")

    answers = at_once({str(b): start(b) for b in bills})

    assert entered[0] >= 2, "the two starts did not both reach the payments' check"
    refused = {int(b): a for b, a in answers.items() if isinstance(a, grpc.RpcError)}
    assert len(refused) == 1, answers
    [(loser, err)] = refused.items()
    [(winner, started)] = ((int(b), a) for b, a in answers.items() if not isinstance(a, grpc.RpcError))
    error = from_rpc_error(err)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, error
    assert error.reason == Reason.REQUEST_ID_REUSED, error
    assert "nothing of this request was posted" in error.message, error.message
    records = _records(stub)
    assert (BILL, loser) not in records and (PAYMENT, loser * 10 + 1) not in records, records
    assert isinstance(started, backfill_pb2.Backfill)
    final = _finish(stub, started.name)
    assert final.state == DONE and final.linked == 2, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], [bills[winner]]) == {}
    references = {i["Reference"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert not any(str(loser) in r for r in references), references


def test_a_start_refused_as_bad_input_leaves_its_request_id_free(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. Bad input changes nothing, the request_id's claim included: a start refused
    INVALID_ARGUMENT (no bills) under a request_id, then a valid request under the same
    request_id, which is a new request for the caller, is started and ends DONE."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    with pytest.raises(grpc.RpcError) as err:
        _start(stub, [], request_id="fixed-request")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    started = _start(stub, [_simple(5611, 20000)], request_id="fixed-request")

    assert _finish(stub, started.name).state == DONE


def test_another_request_under_the_request_id_of_an_interrupted_start_is_refused_and_posts_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """A start is interrupted after its bills were queued (BACKFILL_INTERRUPTED: "send the same
    request again to finish it"), so nothing is recorded under its request_id. DEFECT: a
    different request under that request_id was then started and recorded under it, and the
    first request sent again was refused REQUEST_ID_REUSED: its bill stayed in Xero owing the
    whole total, its payment never posted, and the answer told the caller to finish it in a way
    that could not. The request_id is now claimed for the first request before anything of it
    is posted: the other request is refused with nothing of it queued, and the first request
    sent again finishes."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(5621, 20000)]
    _mapper_lost_after(app, monkeypatch, calls=2)  # the payments' check, then the bills
    with pytest.raises(grpc.RpcError) as interrupted:
        _start(stub, first, request_id="migration-9")
    assert from_rpc_error(interrupted.value).reason == Reason.BACKFILL_INTERRUPTED
    _mapper_back(app, monkeypatch, mapper_target)

    with pytest.raises(grpc.RpcError) as err:
        _start(stub, [_simple(5622, 30000)], request_id="migration-9")
    error = from_rpc_error(err.value)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS, error
    assert error.reason == Reason.REQUEST_ID_REUSED, error
    records = _records(stub)
    assert (BILL, 5622) not in records and (PAYMENT, 56221) not in records, records

    final = _finish(stub, _start(stub, first, request_id="migration-9").name)
    assert final.state == DONE and final.linked == 2, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], first) == {}


# -- what the backfill must not adopt or cross ---------------------------------------------------


def test_an_invoice_entered_by_hand_under_the_bills_number_is_neither_adopted_nor_duplicated(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. Before the integration the firm keyed open bill OLD-5701 into Xero by hand (same
    number, same amounts). The backfill must not take that invoice as the bill's own (a number
    is a display name, not the record's identity) nor create a second invoice for the bill (the
    client billed twice): Xero refuses the number, the bill ends FAILED with Xero's sentence, its
    payment waits, and the backfill still ends."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [_simple(5701, 20000)]
    hand = testing.Tenant(emulator, org, testing.connect(emulator, org))
    typed = testing.invoice("851.41", contact="Harper & Cole Pty Ltd", InvoiceNumber="OLD-5701", Date="2025-12-10")
    hand_id = hand.create("Invoices", typed)["InvoiceID"]

    started = _start(stub, bills)
    final = _finish(stub, started.name)

    assert final.state == DONE
    [bill_item] = _item(final, BILL, 5701)
    assert bill_item.state == backfill_pb2.BACKFILL_ITEM_STATE_FAILED, bill_item
    assert "unique" in (bill_item.error.message + str(list(bill_item.error.field_violations))).lower()
    [payment_item] = _item(final, PAYMENT, 57011)
    assert payment_item.state == backfill_pb2.BACKFILL_ITEM_STATE_WAITING
    invoices = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["InvoiceNumber"] == "OLD-5701"]
    assert [i["InvoiceID"] for i in invoices] == [hand_id]
    assert xero_objects(emulator, org["tenant_id"], "Payments") == []


# -- bad input -----------------------------------------------------------------------------------


def _long_bills(count: int, payments_each: int = 0) -> list[backfill_pb2.BackfillBill]:
    return [_simple(100_000 + n, *([10] * payments_each)) for n in range(count)]


def _bad(**change: Any) -> backfill_pb2.StartBackfillRequest:
    request = backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[_simple(5801, 20000)])
    for what, value in change.items():
        if what == "connection_id":
            request.connection_id = value
        elif what == "request_id":
            request.request_id = value
        elif what == "status":
            request.bills[0].status = value
        elif what == "total_due_units":
            request.bills[0].total_due.units = value
        elif what == "total_due_currency":
            request.bills[0].total_due.currency_code = value
        elif what == "payment_without_header":
            request.bills[0].payments[0].ClearField("header")
        elif what == "payment_without_kind":
            request.bills[0].payments[0].ClearField("client_bill_payment")
        elif what == "bill_id":
            request.bills[0].bill.header.id = value
        elif what == "bills":
            del request.bills[:]
            request.bills.extend(value)
    return request


BAD_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "no connection id": ({"connection_id": ""}, "connection_id"),
    "a status BillStatus does not define": ({"status": 9}, "bills[0].status"),
    "a negative totalDue": ({"total_due_units": -1}, "bills[0].total_due.units"),
    "a totalDue above the bill's total": ({"total_due_units": 10_000_000}, "bills[0].total_due.units"),
    "a totalDue currency that is no ISO-4217 code": ({"total_due_currency": "aud"}, "bills[0].total_due.currency_code"),
    "a payment without header": ({"payment_without_header": True}, "bills[0].payments[0].header"),
    "a payment without kind": ({"payment_without_kind": True}, "bills[0].payments[0].kind"),
    "a bill with a negative id": ({"bill_id": -5}, "bills[0].bill.header.id"),
    "a request_id over 128 characters": ({"request_id": "r" * 129}, "request_id"),
    "a request_id with a control character": ({"request_id": "run\n2"}, "request_id"),
    "more than 1,000 bills": ({"bills": _long_bills(1001)}, "bills"),
    "more than 5,000 transactions": ({"bills": _long_bills(500, 10)}, "bills"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_backfill_request_is_an_invalid_argument_naming_the_field_and_records_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer, case: str
) -> None:
    """GUARD (each case). A request with a value no Actionstep bill has is refused whole with
    INVALID_ARGUMENT and a field violation naming the field, and nothing is queued or recorded."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    change, field = BAD_REQUESTS[case]

    with pytest.raises(grpc.RpcError) as err:
        stub.StartBackfill(_bad(**change), timeout=30)

    error = from_rpc_error(err.value)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert field in [v.field for v in error.field_violations], error
    assert _records(stub) == set()


def test_watching_a_backfill_with_a_bad_name_is_an_invalid_argument(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. WatchBackfill with a name StartBackfill never returned answers INVALID_ARGUMENT
    naming `name`, not a stream that hangs or an INTERNAL error."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    for name in ("postings/1", "backfills/", "backfills/" + "a" * 41, "backfills/../x"):
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stub.WatchBackfill(backfill_pb2.WatchBackfillRequest(name=name), timeout=5)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert [v.field for v in from_rpc_error(err.value).field_violations] == ["name"], name


# -- state an operator can follow, across restarts and firms -------------------------------------------


def test_a_backfill_started_on_one_poster_is_followed_and_finished_by_another_after_a_restart(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. A poster accepts a backfill and stops before sending anything to Xero (a deploy,
    a crash). The backfill, its items and its queued work are in the registry: a new poster on
    the same registry serves GetBackfill, sends the work, and WatchBackfill ends DONE with every
    invoice owing Actionstep's totalDue and nothing sent twice."""
    first = poster_factory(run_dispatcher=False)
    stub = stub_for(first)
    _, org = connect(stub, emulator)
    bills = [_simple(6001, 20000), _simple(6002), _simple(6003, 1000, 2000)]
    started = _start(stub, bills, request_id="before-restart")
    assert (started.accepted, started.pending + started.waiting) == (6, 6)
    first.stop(0)

    second = stub_for(poster_factory(name="after-restart"))
    assert second.GetBackfill(backfill_pb2.GetBackfillRequest(name=started.name)).backfill.total == 6
    final = _finish(second, started.name)

    assert (final.state, final.linked) == (DONE, 6)
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 3
    # The same request again, to the new poster, is the backfill it started.
    again = _start(second, bills, request_id="before-restart")
    assert again.name == started.name


def test_the_same_bill_ids_in_two_firms_are_backfilled_into_each_firms_own_organisation(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. Two firms' Actionstep databases both have bill 6101 with the same content (ids are
    per database). Firm 2's backfill must not be answered ALREADY_DONE with firm 1's postings (its
    bill would never reach its own Xero, and firm 2 would be shown firm 1's invoice): each
    organisation gets its own invoice and payment, and each backfill follows its own links."""
    stub = stub_for(poster_factory())
    _, org1 = connect(stub, emulator, "firm-1")
    _, org2 = connect(stub, emulator, "firm-2")
    bills = [_simple(6101, 20000)]

    one = _finish(stub, _start(stub, bills, "firm-1").name)
    two_started = _start(stub, bills, "firm-2")
    two = _finish(stub, two_started.name)

    assert {i.outcome for i in two_started.items} == {ACCEPTED}
    assert not {i.posting for i in one.items} & {i.posting for i in two.items}
    assert (one.linked, two.linked) == (2, 2)
    for org in (org1, org2):
        assert list(_invoices(emulator, org["tenant_id"])) == ["OLD-6101"]
        assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 1
        assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}


def test_a_backfill_whose_payment_is_held_on_a_drifted_invoice_runs_and_names_the_drift(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The first run backfilled bill OLD-6201 without its 200.00 payment (the caller sent
    totalDue = the whole total); the bookkeeper, seeing the invoice owe too much in Xero, applied
    200.00 there by a bank-feed match (a drift). The rerun with the payment holds it
    (XERO_DOCUMENT_CHANGED: it may be the same money) and its item names that. The backfill stays
    RUNNING: the payment moves once the drift is resolved (docs/backfill.md, "nothing can still
    move"), so it is not reported done while money may still go to Xero."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = _finish(stub, _start(stub, [_bill(6201, [])]).name)
    assert first.linked == 1
    [invoice] = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["InvoiceNumber"] == "OLD-6201"]
    bank_feed_match(
        emulator,
        org["tenant_id"],
        {"InvoiceID": invoice["InvoiceID"], "Amount": "200.00", "Date": "2026-01-05", "AccountCode": "090"},
    )
    assert observe(app, emulator, org, "Invoices", xero_pb2.OBJECT_TYPE_INVOICE, invoice["InvoiceID"])

    rerun = _start(stub, [_simple(6201, 20000)])
    wait_for(
        lambda: any(
            i.error.reason == "XERO_DOCUMENT_CHANGED"
            for i in stub.GetBackfill(backfill_pb2.GetBackfillRequest(name=rerun.name)).backfill.items
        ),
        timeout=8,
        what="the payment held on the drifted invoice",
    )
    final = _finish(stub, rerun.name, timeout=4)

    [held] = _item(final, PAYMENT, 62011)
    assert (held.state, held.error.reason) == (backfill_pb2.BACKFILL_ITEM_STATE_WAITING, "XERO_DOCUMENT_CHANGED")
    assert final.state == backfill_pb2.BACKFILL_STATE_RUNNING, final
