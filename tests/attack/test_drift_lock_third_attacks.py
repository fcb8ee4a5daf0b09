"""A third attack on the order in which drift's writers take rows (docs/drift.md "Rows held, in one
order", "Xero changed again after the read"; docs/unlinking.md), from angles the two earlier
reviews left alone: the dispatcher applying Xero's answer for a payment (outcomes.apply_batch,
which writes the snapshot of the document the payment applies to) while the document's drift is
accepted; the dispatcher holding a refused payment on a document that already carries one of
xerolink's payments; a record kept in two organisations unlinked from both of its connections at
once; a poll page of 120 invoices racing operators and bookkeepers; and ResolveDrift over gRPC
when Xero's clock moved back.

Two posters (two Database handles) on one registry, both registries: SQLite's one writer orders
every write, PostgreSQL's row locks are the point. A deadlock is SQLSTATE 40P01 in `conflicts`.
Every wait has a timeout."""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.domain import organisation as emulated_organisation
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.drift import SqlDriftRepository
from xerolink_poster.adapters.repositories.links import SqlLinkRepository
from xerolink_poster.adapters.tables import LinkRow, PostingRow
from xerolink_poster.adapters.xero_client import Credentials, XeroAnswer
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.drift import trim
from xerolink_poster.domain.rate_limits import RateHeaders
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredLink
from xerolink_poster.service_layer import drift_holds, drift_resolution
from xerolink_poster.service_layer.dispatch import refusals
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.drift_checks import Observed, new_snapshot, record_observations
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction
from xerolink_poster.service_layer.unlinking import unlink, unlink_links

from tests.fixtures.drift_firm import Firm
from tests.fixtures.drift_races import (
    BILL,
    C1,
    DEADLOCK,
    HOLD,
    INVOICE,
    PAID,
    PAYMENT,
    PAYMENT_XERO_ID,
    XERO_ID,
    XERO_PAYMENT,
    answer,
    depends,
    gate,
    invoice,
    marked,
    observe_invoice,
    recorded_before_read,
    resolve_drift,
)
from tests.fixtures.hand_edits import hand_edit
from tests.fixtures.poster import PosterFactory
from tests.fixtures.registry_rows import claimed_entry, link_with_posting, linked_record, unreachable_connection
from tests.fixtures.threads import Call

OPERATOR = "operator:test"
HOLDER = "poster-a"
# Xero's UpdatedDateUTC of three moments, one hour apart (2026-01-01 00:00, 01:00, 02:00 UTC).
T1, T2, T3 = 1767225600000, 1767229200000, 1767232800000
NEW_PAYMENT_ID = "pay-new-20"  # the Xero payment Xero creates for the caller's payment PAYMENT
NEW_DATE = "2026-03-05"  # the bill's date as someone changed it in Xero


def _ms(ms: int) -> str:
    """Xero's JSON date ("/Date(ms+0000)/", Xero's OpenAPI: x-is-msdate-time)."""
    return f"/Date({ms}+0000)/"


# -- the registry ----------------------------------------------------------------------------------


def _open_drifts(db: Database, xero_id: str) -> list[tuple[str, str]]:
    """The object's open drifts: (kind, source)."""
    with UnitOfWork(db, write=False) as uow:
        return sorted((d.kind, d.source) for d in uow.drift.open_drifts_of_object(C1, xero_id))


def _snapshot(db: Database, xero_id: str) -> dict[str, Any]:
    with UnitOfWork(db, write=False) as uow:
        row = uow.drift.get_snapshot(C1, xero_id)
        assert row is not None, xero_id
        document: dict[str, Any] = json.loads(row.document)
        return document


def _pending(uow: UnitOfWork, record: RecordRef) -> LinkRow:
    """The record's link accepted (pending), as a Post writes it."""
    link = link_with_posting(uow, record.id)
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
    return link


# == 1-2. Xero's answer for a payment, applied while its bill's drift is accepted ==================


def _payment_answered_on_a_redated_bill(db: Database) -> tuple[int, int]:
    """The bill linked with its invoice's snapshot; someone changed its date in Xero and a poll
    recorded it (DATE_CHANGED at T1, a drift that holds no payment); the caller's payment of 40.00
    on the bill was claimed and sent by HOLDER's dispatcher, and Xero created it. (The entry's id,
    the DATE_CHANGED drift's id.)"""

    def setup(uow: UnitOfWork) -> int:
        uow.connections.add_connection(unreachable_connection(C1, "t1"))
        bill = linked_record(uow, BILL)
        uow.drift.add_snapshots([new_snapshot(C1, bill, INVOICE, trim(INVOICE, invoice()), now_us())])
        payment = _pending(uow, PAYMENT)
        return claimed_entry(uow, payment, HOLDER).id or 0

    entry_id: int = run_in_transaction(db, setup)
    with UnitOfWork(db, write=False) as uow:
        payment = uow.links.get_link(C1, PAYMENT)
        assert payment is not None
        payment_link = payment.id or 0
    depends(db, [(payment_link, BILL)])
    observe_invoice(db, invoice(Date=NEW_DATE, UpdatedDateUTC=_ms(T1)), "dispatcher:poll")
    ((kind, _),) = _open_drifts(db, XERO_ID)
    assert kind == "DATE_CHANGED", kind
    assert not drift_holds.blocking(_drift_rows(db)), "a DATE_CHANGED drift must not hold the payment"
    return entry_id, _drift_rows(db)[0].id or 0


def _drift_rows(db: Database) -> list[Any]:
    with UnitOfWork(db, write=False) as uow:
        return list(uow.drift.open_drifts_of_object(C1, XERO_ID))


def _xeros_payment() -> dict[str, Any]:
    """Xero's answer element for the payment it created."""
    return {
        "PaymentID": NEW_PAYMENT_ID.upper(),
        "Invoice": {"InvoiceID": XERO_ID.upper()},
        "Amount": 40.0,
        "Status": "AUTHORISED",
        "Date": "2026-03-06",
        "PaymentType": "ACCPAYPAYMENT",
    }


def _apply_the_answer(db: Database, entry_id: int) -> None:
    """The dispatcher's transaction applying Xero's answer: the payment linked, its snapshot
    kept, and the bill's snapshot expecting it from now on (drift_snapshots.record_posted)."""
    result = ElementResult(
        entry_id,
        created=XeroObjectRef(XERO_PAYMENT, NEW_PAYMENT_ID, "payment"),
        documents=((XERO_PAYMENT, trim(XERO_PAYMENT, _xeros_payment())),),
    )
    run_in_transaction(db, lambda uow: apply_batch(uow, [result], HOLDER, f"dispatcher:{HOLDER}", now_us()))


def _bill_in_xero(updated: int, paid: bool) -> dict[str, Any]:
    """The re-dated bill as Xero holds it, with xerolink's payment on it or not."""
    payments = [{"PaymentID": NEW_PAYMENT_ID.upper(), "Amount": 40.0}] if paid else []
    return invoice(Date=NEW_DATE, Payments=payments, AmountDue=60.0 if paid else 100.0, UpdatedDateUTC=_ms(updated))


@pytest.mark.timeout(60)
def test_a_payment_xero_created_after_resolve_drifts_read_stays_expected_on_the_accepted_bill(
    database: Database, conflicts: list[str]
) -> None:
    """The bill was re-dated in Xero (DATE_CHANGED, which holds no payment). The bookkeeper
    accepts Xero's date: ResolveDrift reads the invoice (T1, no payment on it) and gives the
    tenant back. Before its transaction, the dispatcher sends the caller's payment of the bill,
    Xero creates it and the answer is applied: the payment linked, and the bill's snapshot
    expecting it ("When xerolink links a payment or allocation, the document it applies to
    expects it from then on"). ResolveDrift's transaction then replaces the bill's snapshot with
    its read, which predates the payment: the registry no longer expects xerolink's own payment
    on the bill (the Xero change after the read was xerolink's own, so no webhook had recorded
    it and DRIFT_CHANGED_SINCE_READ cannot see it). Later someone deletes that payment in Xero;
    Xero sends no payment webhooks, so the invoice's webhook is the only way to see it (docs:
    "a payment deleted in Xero shows as its invoice's update ... that drift goes on the payment's
    own link"), and it finds nothing: the payment stays linked, its money gone from Xero."""
    entry_id, drift_id = _payment_answered_on_a_redated_bill(database)
    seen = recorded_before_read(database)
    read = _bill_in_xero(T1, paid=False)  # ResolveDrift's read, before the payment was made
    _apply_the_answer(database, entry_id)
    assert NEW_PAYMENT_ID in json.dumps(_snapshot(database, XERO_ID)), "the answer did not reach the bill's snapshot"

    told = answer(Call(lambda: resolve_drift(database, drift_id, rules.ACCEPT_XERO, read, seen), callers=True))
    expected = [e["PaymentID"] for e in _snapshot(database, XERO_ID).get("Payments", [])]
    observe_invoice(database, _bill_in_xero(T2, paid=True))  # the webhook of the payment's creation
    observe_invoice(database, _bill_in_xero(T3, paid=False))  # the payment deleted in Xero, the invoice's webhook

    gone = _open_drifts(database, NEW_PAYMENT_ID)
    assert told in ("applied", Reason.DRIFT_CHANGED_SINCE_READ), told
    assert gone == [("PAYMENT_DELETED_IN_XERO", "webhook")], (
        f"ResolveDrift was answered {told}; the accepted bill's snapshot expects payments {expected}, no longer "
        f"xerolink's {NEW_PAYMENT_ID} linked before the resolution's transaction; after that payment was deleted "
        f"in Xero the invoice's webhook opened {gone} on it"
    )
    assert DEADLOCK not in conflicts, conflicts


@pytest.mark.timeout(60)
def test_the_dispatchers_answer_never_writes_the_bills_snapshot_back_over_an_accepted_date(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bill was re-dated in Xero (DATE_CHANGED); the caller's payment of it was sent (the
    drift holds no payment) and Xero created it. The dispatcher's transaction applying the
    answer reads the bill's snapshot (as posted, the old date) to add the payment to it. Right
    then, on another poster, the bookkeeper accepts Xero's version of the bill, read after the
    payment was made (the new date, the payment on it): the bill's snapshot becomes that. The
    dispatcher goes on and writes the snapshot it read, plus the payment: the accepted date is
    lost without any lock taken on the bill's link ("Whatever writes a linked object's drift
    takes the object's link first"; record_posted writes the document's snapshot without it), and
    the next read of the bill, exactly as the bookkeeper accepted it, opens DATE_CHANGED again.
    SQLite's one writer orders the two: whichever comes second sees the first."""
    entry_id, drift_id = _payment_answered_on_a_redated_bill(database)
    reached, go = gate(monkeypatch, SqlDriftRepository, "snapshots_of_objects")
    applying = Call(marked(lambda: _apply_the_answer(database, entry_id)))
    assert reached.wait(15.0), "the dispatcher never read the bill's snapshot"

    accepted = _bill_in_xero(T2, paid=True)  # Xero's bill, read after the payment was made
    resolve = Call(lambda: resolve_drift(other, drift_id, rules.ACCEPT_XERO, accepted), callers=True)
    resolve.answered_within(HOLD)  # PostgreSQL: it commits; SQLite: it waits for the writer
    go.set()
    applying.result(timeout=30.0)
    told = answer(resolve)

    snapshot = _snapshot(database, XERO_ID)
    observe_invoice(database, _bill_in_xero(T3, paid=True))  # the next webhook: Xero as accepted
    reopened = _open_drifts(database, XERO_ID)
    assert told == "applied", told
    assert (snapshot.get("Date"), reopened) == (NEW_DATE, []), (
        f"the bookkeeper accepted Xero's date {NEW_DATE}, but the bill's snapshot says {snapshot.get('Date')} "
        f"after the dispatcher applied the payment's answer; the next read of the bill as accepted opened {reopened}"
    )
    assert NEW_PAYMENT_ID in [e["PaymentID"] for e in snapshot.get("Payments", [])], snapshot
    assert DEADLOCK not in conflicts, conflicts


# == 3. holding a refused payment on a bill that carries one of xerolink's payments ================


class _PaidBill:
    """Xero, read by the refusal's job: the bill paid, by xerolink's payment of 40.00 and a
    bank-feed match of 60.00."""

    def call(self, creds: Credentials, method: str, path: str, **_: Any) -> XeroAnswer:
        assert (method, path) == ("GET", f"Invoices/{XERO_ID}"), (method, path)
        payments = [
            {"PaymentID": PAYMENT_XERO_ID.upper(), "Amount": 40.0},
            {"PaymentID": "MATCH-1", "Amount": 60.0},
        ]
        element = invoice("PAID", Payments=payments, AmountDue=0.0, UpdatedDateUTC=_ms(T2))
        return XeroAnswer(200, {"Invoices": [element]}, RateHeaders(), 0.0)


def _second_payment_being_sent(db: Database) -> Work:
    """xerolink's first payment of the bill (PAID, 40.00; entered in Actionstep before the bill
    was posted, so its link has the lowest id), linked with its snapshot, the bill's snapshot
    expecting it; the caller's second payment (PAYMENT) claimed by HOLDER's dispatcher and sent.
    Both payments' postings refer to the bill (link_dependency). The claimed work."""

    def setup(uow: UnitOfWork) -> Work:
        connection = unreachable_connection(C1, "t1")
        uow.connections.add_connection(connection)
        now = now_us()
        first = _pending(uow, PAID)
        bill = linked_record(uow, BILL)
        first.xero_objects = json.dumps([{"type": XERO_PAYMENT, "xero_id": PAYMENT_XERO_ID, "local_ref": "payment"}])
        uow.links.change_state(first, Event.POSTED, "dispatcher:test", now)
        ours = {
            "PaymentID": PAYMENT_XERO_ID.upper(),
            "Invoice": {"InvoiceID": XERO_ID.upper()},
            "Amount": "40.00",
            "Status": "AUTHORISED",
            "Date": "2026-03-02",
        }
        bill_doc = trim(INVOICE, invoice(Payments=[{"PaymentID": PAYMENT_XERO_ID.upper(), "Amount": "40.00"}]))
        uow.drift.add_snapshots(
            [
                new_snapshot(C1, bill, INVOICE, bill_doc, now),
                new_snapshot(C1, first, XERO_PAYMENT, trim(XERO_PAYMENT, ours), now),
            ]
        )
        second = _pending(uow, PAYMENT)
        entry = claimed_entry(uow, second, HOLDER)
        assert (first.id or 0) < (bill.id or 0) < (second.id or 0)
        operation = xero_pb2.Operation(local_ref="payment")
        operation.payment.SetInParent()
        return Work(
            row=ClaimedEntry(entry.id or 0, second.id or 0, C1, b"", False, False, "", ""),
            link=StoredLink(
                second.id or 0,
                C1,
                second.kind,
                second.record_id,
                str(second.state),
                second.posting_id,
                second.generation,
                second.attempts,
                second.xero_objects,
            ),
            connection=connection,
            operation=operation,
            documents=[(BILL, bill, XERO_ID, INVOICE)],
        )

    work: Work = run_in_transaction(db, setup)
    with UnitOfWork(db, write=False) as uow:
        first = uow.links.get_link(C1, PAID)
        assert first is not None
        depends(db, [(first.id or 0, BILL), (work.link.id, BILL)])
    return work


@pytest.mark.timeout(60)
def test_holding_a_refused_payment_never_deadlocks_with_an_unlink_of_a_bill_xerolink_already_paid_in_part(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """xerolink paid 40.00 of the bill; the bank feed paid the rest in Xero; the caller's second
    payment is sent and refused ("Payment amount exceeds the amount outstanding on this
    document"). The dispatcher's transaction takes the refused payment's link and the bill's in
    one statement (refusals.hold_refused), then its drift check (record_observations) takes the
    bill's link again with the link of xerolink's first payment, which the bill's snapshot
    expects: a second statement, and the first payment's link has the lowest id. Meanwhile the
    operator unlinks the bill with xerolink's payment of it: UnlinkLinks takes them and the
    payments referring to the bill in one statement in id order, gets the first payment's link
    and waits for the bill's. The
    dispatcher then waits for the first payment's link: a cycle, which docs/drift.md promises
    never happens ("none of them waits for another in a cycle")."""
    work = _second_payment_being_sent(database)
    shared = cast(
        Shared,
        SimpleNamespace(
            db=database, actor=f"dispatcher:{HOLDER}", holder=HOLDER, changes=SimpleNamespace(notify=lambda: None)
        ),
    )
    results = Results(shared, DispatcherSettings(max_tenants=0))
    creds = Credentials("http://127.0.0.1:1", "t1", "token", C1)
    refused = [(work, ["Payment amount exceeds the amount outstanding on this document."])]
    reached, go = gate(monkeypatch, SqlLinkRepository, "lock_links")
    holding = Call(marked(lambda: refusals.hold_refused(cast(Any, _PaidBill()), creds, results, list(refused))))
    assert reached.wait(15.0), "the dispatcher never took the refused payment's and the bill's links"

    records = [(BILL.kind, BILL.id), (PAID.kind, PAID.id)]  # the bill and xerolink's payment of it
    unlinked = Call(
        lambda: unlink_links(
            other, C1, records, validate_only=False, confirm=True, cascade=False, reason="", actor=OPERATOR
        ),
        callers=True,
    )
    unlinked.answered_within(HOLD)  # it holds the first payment's link and waits for the bill's
    go.set()
    unexplained = holding.result(timeout=30.0)
    told = answer(unlinked)

    assert unexplained == [], "the refusal was not explained by the bill paid in Xero"
    assert told in ("applied", Reason.DEPENDENT_IN_PROGRESS), told
    assert DEADLOCK not in conflicts, (
        f"the dispatcher holding the refused payment and the unlink of its bill deadlocked: {conflicts}; the "
        f"unlink was answered {told} after {unlinked.took:.2f} s"
    )


# == 4. a record kept in two organisations, unlinked from both of its connections at once ==========

OFFICE, TRUST = "office", "trust"
FROM_TRUST = RecordRef(common_pb2.TRANSACTION_KIND_INVOICE_PAID_FROM_TRUST, 77)


def _half(uow: UnitOfWork, connection_id: str, xero_type: int, xero_id: str) -> LinkRow:
    """One half of the invoice paid from trust, linked under `connection_id`."""
    now = now_us()
    record = FROM_TRUST
    posting = f"p-{connection_id}-{record.id}"
    link = uow.links.add_link(
        LinkRow(
            connection_id=connection_id,
            kind=record.kind,
            record_id=record.id,
            link_group=1,
            state="",
            fingerprint="f" * 64,
            posting_id=posting,
            create_us=now,
            update_us=now,
        )
    )
    uow.links.add_posting(
        PostingRow(
            posting_id=posting,
            connection_id=connection_id,
            kind=record.kind,
            record_id=record.id,
            link_id=link.id,
            fingerprint="f" * 64,
            decision=b"",
            state="",
            create_us=now,
        )
    )
    link.xero_objects = json.dumps([{"type": xero_type, "xero_id": xero_id, "local_ref": connection_id}])
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now)
    uow.links.change_state(link, Event.POSTED, "dispatcher:test", now)
    return link


def _trust_pair(db: Database) -> None:
    """Two connections of one firm group (the office organisation and the trust one) and the
    invoice paid from trust linked under both: its spend under the trust connection (a bank
    transaction), its payment under the office one."""

    def setup(uow: UnitOfWork) -> None:
        for connection_id, tenant in ((OFFICE, "t-office"), (TRUST, "t-trust")):
            row = unreachable_connection(connection_id, tenant)
            row.firm_group = "firm"
            uow.connections.add_connection(row)
        _half(uow, TRUST, xero_pb2.OBJECT_TYPE_BANK_TRANSACTION, "spend-77")
        _half(uow, OFFICE, xero_pb2.OBJECT_TYPE_PAYMENT, "pay-77")

    run_in_transaction(db, setup)


@pytest.mark.timeout(60)
def test_unlinking_a_record_kept_in_two_organisations_from_both_connections_at_once_never_deadlocks(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """An invoice paid from trust is one Actionstep record linked twice. A correction of it runs
    under the office connection (its unlink step: unlinking.unlink) while the operator unlinks it
    under the trust connection (UnlinkLinks); each unlinks both halves. The correction takes the
    office half's link, then its other half's; UnlinkLinks takes the trust half's link, then its
    other half's: each in a statement of its own, so each holds one half and waits for the other.
    docs/unlinking.md: links are "all locked in one statement in id order ... and none of them
    waits on another in a circle"; the other half is taken after, in its own statement."""
    _trust_pair(database)
    reached, go = gate(monkeypatch, SqlLinkRepository, "lock_links")
    correction = Call(marked(lambda: unlink(database, OFFICE, FROM_TRUST, "correction:test")), callers=True)
    assert reached.wait(15.0), "the correction's unlink never took the office half's link"

    operator = Call(
        lambda: unlink_links(
            other,
            TRUST,
            [(FROM_TRUST.kind, FROM_TRUST.id)],
            validate_only=False,
            confirm=True,
            cascade=False,
            reason="",
            actor=OPERATOR,
        ),
        callers=True,
    )
    operator.answered_within(HOLD)  # it holds the trust half and waits for the office half
    go.set()
    correction.result(timeout=30.0)
    operator.result(timeout=30.0)

    with UnitOfWork(database, write=False) as uow:
        states = {c: str(link.state) for c in (OFFICE, TRUST) if (link := uow.links.get_link(c, FROM_TRUST))}
    assert states == {OFFICE: LinkState.UNLINKED.value, TRUST: LinkState.UNLINKED.value}, states
    assert DEADLOCK not in conflicts, (
        f"the two unlinks of the record's halves deadlocked: {conflicts}; the operator was answered after "
        f"{operator.took:.2f} s, the correction after {correction.took:.2f} s"
    )


# == 5. a poll page of 120 invoices racing unlinks and resolutions =================================

PAGE = 120
BILLS = 5000  # bill i is record BILLS + i, its payment (xerolink's, linked) PAYMENTS + i
PAYMENTS = 6000


def _page_of_paid_bills(db: Database) -> dict[int, int]:
    """PAGE bills, each linked with xerolink's payment of 40.00 on it (the payment entered first:
    the lower link id), the bill's snapshot expecting it; a first poll found bills 1-4 un-approved
    in Xero (STATUS_CHANGED) and each has the caller's next payment held on it. The drift ids of
    bills 1-4."""

    def setup(uow: UnitOfWork) -> None:
        uow.connections.add_connection(unreachable_connection(C1, "t1"))
        now = now_us()
        snapshots = []
        for i in range(1, PAGE + 1):
            paid = _pending(uow, RecordRef(1, PAYMENTS + i))
            bill = linked_record(uow, RecordRef(1, BILLS + i))
            pay_id = f"pay-{PAYMENTS + i}"
            paid.xero_objects = json.dumps([{"type": XERO_PAYMENT, "xero_id": pay_id, "local_ref": "payment"}])
            uow.links.change_state(paid, Event.POSTED, "dispatcher:test", now)
            inv_id = f"inv-{C1}-{BILLS + i}"
            ours = {"PaymentID": pay_id, "Invoice": {"InvoiceID": inv_id}, "Amount": "40.00", "Status": "AUTHORISED"}
            bill_doc = trim(INVOICE, {**_page_invoice(i), "Payments": [{"PaymentID": pay_id, "Amount": "40.00"}]})
            snapshots += [
                new_snapshot(C1, bill, INVOICE, bill_doc, now),
                new_snapshot(C1, paid, XERO_PAYMENT, trim(XERO_PAYMENT, {**ours, "Date": "2026-03-02"}), now),
            ]
        uow.drift.add_snapshots(snapshots)

    run_in_transaction(db, setup)
    with UnitOfWork(db, write=False) as uow:
        ids = {i: uow.links.get_link(C1, RecordRef(1, PAYMENTS + i)) for i in range(1, PAGE + 1)}
        depends(db, [(link.id or 0, RecordRef(1, BILLS + i)) for i, link in ids.items() if link is not None])
    first = [_observed(i, "DRAFT", T1) for i in range(1, 5)]
    run_in_transaction(db, lambda uow: record_observations(uow, C1, first, "poll", now_us(), "dispatcher:poll"))
    drifts: dict[int, int] = {}
    for i in range(1, 5):
        drifts[i] = _hold_next_payment(db, i)
    return drifts


def _page_invoice(i: int, status: str = "AUTHORISED", **extra: Any) -> dict[str, Any]:
    return {**invoice(status, **extra), "InvoiceID": f"INV-{C1}-{BILLS + i}".upper()}


def _observed(i: int, status: str, updated: int) -> Observed:
    payments = [{"PaymentID": f"pay-{PAYMENTS + i}".upper(), "Amount": "40.00"}]
    element = _page_invoice(i, status, Payments=payments, UpdatedDateUTC=_ms(updated))
    return Observed(INVOICE, f"inv-{C1}-{BILLS + i}", element, _ms(updated))


def _hold_next_payment(db: Database, i: int) -> int:
    """The caller's next payment of bill i (posted now, so the highest link id), held on its
    blocking drift by the dispatcher: the drift's id."""
    record = RecordRef(1, 9000 + i)
    bill_ref = RecordRef(1, BILLS + i)

    def hold(uow: UnitOfWork) -> int:
        link = _pending(uow, record)
        entry = claimed_entry(uow, link, HOLDER)
        bill = uow.links.get_link(C1, bill_ref)
        assert bill is not None
        [drift] = drift_holds.blocking(uow.drift.open_drifts_of_object(C1, f"inv-{C1}-{BILLS + i}"))
        drift_holds.hold(uow, entry, link, drift_holds.Hold(bill_ref, bill, drift), now_us(), "dispatcher:test")
        return drift.id or 0

    drift_id: int = run_in_transaction(db, hold)
    with UnitOfWork(db, write=False) as uow:
        held = uow.links.get_link(C1, record)
        assert held is not None and held.state == LinkState.WAITING
        depends(db, [(held.id or 0, bill_ref)])
    return drift_id


@pytest.mark.timeout(60)
def test_a_poll_page_of_120_invoices_never_deadlocks_with_resolutions_and_unlinks(
    database: Database, other: Database, conflicts: list[str]
) -> None:
    """A poll reads a full page of Invoices (Xero's 100 a page, and a run of a bulk import goes
    on) and records it in one transaction: its drift check takes the 120 invoices' links and the
    120 payments' links their snapshots expect, in one statement. At the same moment, on another
    poster, two bookkeepers accept Xero's version of two un-approved bills and two others
    correct two more, while operators unlink four bills with their payments. Nobody may wait in
    a cycle (how long the callers wait for the page's locks is this machine's speed, printed on
    failure, not asserted: speed is measured in benchmarks)."""
    drifts = _page_of_paid_bills(database)
    page = [_observed(i, "AUTHORISED" if i <= 4 else "DRAFT", T2) for i in range(1, PAGE + 1)]

    def poll() -> Any:
        return run_in_transaction(database, lambda uow: record_observations(uow, C1, page, "poll", now_us(), "poll"))

    def unlink_bill(i: int) -> Any:
        records = [(1, BILLS + i), (1, PAYMENTS + i)]
        return unlink_links(
            other, C1, records, validate_only=False, confirm=True, cascade=False, reason="", actor=OPERATOR
        )

    def resolve(i: int) -> Any:
        how, status, updated = (rules.ACCEPT_XERO, "DRAFT", T1) if i <= 2 else (rules.CORRECTED, "AUTHORISED", T2)
        return resolve_drift(other, drifts[i], how, _observed(i, status, updated).document)

    began = time.monotonic()
    polling = Call(poll)
    resolutions = [Call(functools.partial(resolve, i), callers=True) for i in range(1, 5)]
    unlinks = [Call(functools.partial(unlink_bill, i), callers=True) for i in range(60, 64)]
    polling.result(timeout=40.0)
    told = [answer(c) for c in resolutions]
    unlinked = [c.result(timeout=40.0).unlinked for c in unlinks]
    took = sorted(round(c.took or 0.0, 2) for c in resolutions + unlinks)
    poll_took = polling.took or 0.0

    assert all(t in ("applied", Reason.DRIFT_ALREADY_RESOLVED) for t in told), told
    assert unlinked == [2] * 4, unlinked
    assert DEADLOCK not in conflicts, (
        f"deadlocked: {conflicts}; the callers waited {took} s (the poll of {PAGE} invoices took {poll_took:.2f} s, "
        f"started {time.monotonic() - began:.2f} s ago)"
    )


# == 6. an allocation's deletion accepted while its credit note is unlinked and read =============

CREDIT = RecordRef(1, 40)  # a supplier credit note of the bill
APPLIED = RecordRef(1, 41)  # its application to the bill (an allocation)
REFUND = RecordRef(1, 42)  # its refund (a payment on the credit note)
CREDIT_NOTE, ALLOCATION = int(xero_pb2.OBJECT_TYPE_CREDIT_NOTE), int(xero_pb2.OBJECT_TYPE_ALLOCATION)
CN_ID, ALLOCATION_ID, REFUND_ID = "cn-c1-40", "alloc-c1-41", "refund-c1-42"


def _linked_as(uow: UnitOfWork, record: RecordRef, xero_type: int, xero_id: str) -> LinkRow:
    link = link_with_posting(uow, record.id)
    link.xero_objects = json.dumps([{"type": xero_type, "xero_id": xero_id, "local_ref": "it"}])
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
    uow.links.change_state(link, Event.POSTED, "dispatcher:test", now_us())
    return link


def _credit_note(allocated: bool, refunded: bool, updated: int = 0) -> dict[str, Any]:
    """The credit note as Xero's JSON holds it: 30.00 applied to the bill, 20.00 refunded."""
    allocations = [
        {
            "AllocationID": ALLOCATION_ID.upper(),
            "Amount": 30.0,
            "Invoice": {"InvoiceID": XERO_ID.upper()},
            "Date": "2026-03-03",
        }
    ]
    payments = [{"PaymentID": REFUND_ID.upper(), "Amount": 20.0}]
    return {
        "CreditNoteID": CN_ID.upper(),
        "Type": "ACCPAYCREDIT",
        "Status": "AUTHORISED",
        "Date": "2026-03-02",
        "SubTotal": "50.00",
        "TotalTax": "0.00",
        "Total": "50.00",
        "LineItems": [{"AccountCode": "400", "LineAmount": "50.00", "TaxAmount": "0.00"}],
        "Allocations": allocations if allocated else [],
        "Payments": payments if refunded else [],
        **({"UpdatedDateUTC": _ms(updated)} if updated else {}),
    }


def _observe_credit_note(db: Database, element: dict[str, Any], actor: str = "dispatcher:webhooks") -> Any:
    seen = Observed(CREDIT_NOTE, CN_ID, element, str(element.get("UpdatedDateUTC", "")))
    return run_in_transaction(db, lambda uow: record_observations(uow, C1, [seen], "webhook", now_us(), actor))


def _allocation_and_refund_deleted(db: Database) -> dict[str, int]:
    """The bill, its supplier credit note, the credit note applied to the bill (30.00) and
    refunded (20.00), all linked with their snapshots (the credit note's expecting both); the
    application and the refund were entered first (lower link ids). Someone deleted both in
    Xero and the credit note's webhook recorded it: open drift ids by Xero id."""

    def setup(uow: UnitOfWork) -> None:
        uow.connections.add_connection(unreachable_connection(C1, "t1"))
        applied = _linked_as(uow, APPLIED, ALLOCATION, ALLOCATION_ID)
        refund = _linked_as(uow, REFUND, XERO_PAYMENT, REFUND_ID)
        bill = linked_record(uow, BILL)
        credit = _linked_as(uow, CREDIT, CREDIT_NOTE, CN_ID)
        allocation = {
            "AllocationID": ALLOCATION_ID,
            "Amount": "30.00",
            "Invoice": {"InvoiceID": XERO_ID},
            "CreditNote": {"CreditNoteID": CN_ID},
            "Date": "2026-03-03",
        }
        refunded = {
            "PaymentID": REFUND_ID,
            "CreditNote": {"CreditNoteID": CN_ID},
            "Amount": "20.00",
            "Status": "AUTHORISED",
            "Date": "2026-03-04",
            "PaymentType": "APCREDITPAYMENT",
        }
        now = now_us()
        uow.drift.add_snapshots(
            [
                new_snapshot(C1, bill, INVOICE, trim(INVOICE, invoice()), now),
                new_snapshot(C1, credit, CREDIT_NOTE, trim(CREDIT_NOTE, _credit_note(True, True)), now),
                new_snapshot(C1, applied, ALLOCATION, trim(ALLOCATION, allocation), now),
                new_snapshot(C1, refund, XERO_PAYMENT, trim(XERO_PAYMENT, refunded), now),
            ]
        )

    run_in_transaction(db, setup)
    with UnitOfWork(db, write=False) as uow:
        ids = {r: link.id or 0 for r in (APPLIED, REFUND) if (link := uow.links.get_link(C1, r))}
    depends(db, [(ids[APPLIED], CREDIT), (ids[APPLIED], BILL), (ids[REFUND], CREDIT)])
    _observe_credit_note(db, _credit_note(False, False, T1), "dispatcher:poll")
    with UnitOfWork(db, write=False) as uow:
        found = uow.drift.open_drifts_of_object(C1, ALLOCATION_ID) + uow.drift.open_drifts_of_object(C1, REFUND_ID)
        return {d.xero_id: d.id or 0 for d in found}


@pytest.mark.timeout(60)
def test_accepting_an_allocations_deletion_while_its_credit_note_is_unlinked_and_read_again_ends_consistent(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """Someone deleted the credit note's application to the bill and its refund in Xero; the
    webhook recorded both (DELETED_IN_XERO on the allocation, PAYMENT_DELETED_IN_XERO on the
    refund). The bookkeeper accepts the allocation's deletion: the resolution holds the
    allocation's link and its credit note's (whose snapshot it rewrites) and the drift. Meanwhile
    the operator unlinks the credit note with everything referring to it (cascade), and a late
    webhook of the credit note reads it again: three writers of the same four rows on two
    posters. Nobody waits in a cycle, and the end is one story: everything unlinked, every drift
    resolved (the allocation's by the bookkeeper or by the unlink), no snapshot compared."""
    drifts = _allocation_and_refund_deleted(database)
    assert set(drifts) == {ALLOCATION_ID, REFUND_ID}, drifts
    reached, go = gate(monkeypatch, drift_resolution, "held_drift")
    accept = Call(marked(lambda: resolve_drift(database, drifts[ALLOCATION_ID], rules.ACCEPT_XERO, None)), callers=True)
    assert reached.wait(15.0), "the resolution never held the allocation's drift"
    unlinked = Call(
        lambda: unlink_links(
            other,
            C1,
            [(CREDIT.kind, CREDIT.id)],
            validate_only=False,
            confirm=True,
            cascade=True,
            reason="",
            actor=OPERATOR,
        ),
        callers=True,
    )
    webhook = Call(lambda: _observe_credit_note(other, _credit_note(False, False, T2)))
    unlinked.answered_within(HOLD)
    go.set()
    told = answer(accept)
    done = unlinked.result(timeout=30.0)
    webhook.result(timeout=30.0)

    assert told in ("applied", Reason.DRIFT_ALREADY_RESOLVED), told
    assert done.unlinked == 3, done.unlinked
    with UnitOfWork(database, write=False) as uow:
        states = {str(link.state) for r in (CREDIT, APPLIED, REFUND) if (link := uow.links.get_link(C1, r))}
        left = [
            (d.xero_id, d.kind)
            for x in (CN_ID, ALLOCATION_ID, REFUND_ID)
            for d in uow.drift.open_drifts_of_object(C1, x)
        ]
        active = [x for x in (CN_ID, ALLOCATION_ID, REFUND_ID) if (row := uow.drift.get_snapshot(C1, x)) and row.active]
        resolved = uow.drift.get_drift(C1, drifts[ALLOCATION_ID])
    assert states == {LinkState.UNLINKED.value}, states
    assert (left, active) == ([], []), (left, active)
    assert resolved is not None and (told == "applied") == (resolved.resolution == rules.ACCEPT_XERO), (
        told,
        resolved.resolution if resolved else None,
    )
    assert DEADLOCK not in conflicts, (
        f"deadlocked: {conflicts}; the resolution took {accept.took:.2f} s, the unlink {unlinked.took:.2f} s"
    )


# == 7. ResolveDrift over gRPC after Xero's clock moved back =======================================

ACCEPT = drift_pb2.DRIFT_RESOLUTION_ACCEPT_XERO


def _refusal(call: Any) -> tuple[grpc.StatusCode | None, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), from_rpc_error(exc).reason
    return None, "applied"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("moved_back", [0, 1], ids=["clock-right", "clock-back-1h"])
def test_accepting_xeros_version_over_grpc_is_not_refused_for_ever_once_xeros_clock_moved_back(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, moved_back: int
) -> None:
    """Real poster, real Xero (emulated). Someone re-dated the bill in Xero; the webhook recorded
    it (DATE_CHANGED, Xero's UpdatedDateUTC of that edit kept on the drift and the snapshot).
    Then Xero's clock moved back an hour (a server's clock corrected, or the organisation
    restored from a backup and edited again): the next save of the bill (its due date) has an
    UpdatedDateUTC earlier than the one recorded. The webhook of that save reads the bill and
    records it. The bookkeeper accepts Xero's version: ResolveDrift reads the bill (the earlier
    UpdatedDateUTC) and is refused DRIFT_CHANGED_SINCE_READ, "resolve again, so it is read
    again". Resolving again reads the same bill and is refused the same way, for as long as
    nobody edits the bill in Xero after the clock catches up: the registry compares the read with
    the open drift's UpdatedDateUTC, which a later read changes only when the drift's differences
    change (drift_checks._settle), so even the webhook's read of the bill as it is leaves it. A resolution
    that can never succeed leaves the bookkeeper no way to accept Xero's version. (clock-right:
    the same steps with Xero's clock right, applied at once.)"""
    firm = Firm(poster_factory(), emulator, 3900)
    bill = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", bill["InvoiceID"], {"Date": "2026-08-01"})
    assert firm.observe_bill(bill) == ["DATE_CHANGED"]
    [drift] = firm.drifts()

    real_now = emulated_organisation.now_utc
    monkeypatch.setattr(emulated_organisation, "now_utc", lambda: real_now() - dt.timedelta(hours=moved_back))
    hand_edit(emulator, firm.tenant, "Invoices", bill["InvoiceID"], {"DueDate": "2026-09-01"})
    firm.observe_bill(bill)  # the webhook of that save: Xero's bill as it is now

    answers = [_refusal(lambda: firm.resolve(drift.name, ACCEPT)) for _ in range(3)]
    [after] = firm.drifts()
    assert answers[-1] == (None, "applied"), (
        f"accepting Xero's version was answered {answers} though nothing changed in Xero since the last read; the "
        f"drift is still {drift_pb2.DriftState.Name(after.state)}"
    )
    assert after.state == drift_pb2.DRIFT_STATE_RESOLVED
