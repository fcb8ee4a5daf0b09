"""Attacks on the order in which drift's writers take rows (docs/drift.md "Rows held, in one
order", docs/unlinking.md) and on ResolveDrift's refusal of a decision made on a read older than
the drift (docs/drift.md "Xero changed again after the read", DRIFT_CHANGED_SINCE_READ), from
outside: a second poster (another Database handle on the same registry), an operator unlinking,
a webhook's follow-up read, a bookkeeper resolving, and real Xero (the emulator) behind a real
poster over gRPC. Both registries; every wait has a timeout; a deadlock is SQLSTATE 40P01 as the
`conflicts` fixture records what run_in_transaction rolled back and ran again.

The registry setup is what the product writes: a payment posted before its bill linked (so its
link has the lower id, as a payment entered in Actionstep before the bill was posted has), the
bill linked with its invoice's snapshot, a poll that found the invoice changed in Xero, and the
dispatcher holding the payment on the blocking drift (drift_holds.hold)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.links import SqlLinkRepository
from xerolink_poster.adapters.tables import LinkRow, PostingRow
from xerolink_poster.adapters.xero_client import Credentials, XeroAnswer
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.drift import trim
from xerolink_poster.domain.rate_limits import RateHeaders
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredLink
from xerolink_poster.service_layer import drift_resolving
from xerolink_poster.service_layer.dispatch import refusals
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.drift_checks import new_snapshot
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
    answer,
    bill_with_our_payment,
    depends,
    gate,
    held_payment,
    invoice,
    marked,
    observe_invoice,
    payment_state,
    resolve_drift,
)
from tests.fixtures.hand_edits import bank_feed_match, hand_edit
from tests.fixtures.poster import PosterFactory, wait_for
from tests.fixtures.registry_rows import claimed_entry, link_with_posting, linked_record, unreachable_connection
from tests.fixtures.threads import Call

OPERATOR = "operator:test"
# Xero's UpdatedDateUTC of three moments, one hour apart (2026-01-01 00:00, 01:00, 02:00 UTC).
T1, T2, T3 = 1767225600000, 1767229200000, 1767232800000


def _ms(ms: int) -> str:
    """Xero's JSON date ("/Date(ms+0000)/", Xero's OpenAPI: x-is-msdate-time)."""
    return f"/Date({ms}+0000)/"


# -- the registry ----------------------------------------------------------------------------------


def _drifts_of(db: Database, xero_id: str) -> list[tuple[int, str, str, str, str]]:
    """Every drift of the object: (id, kind, state, resolution, xero_updated), by id."""
    with UnitOfWork(db, write=False) as uow:
        rows = uow.drift.list_drifts(C1, None, [], None, None, 100)
        return sorted((r.id or 0, r.kind, r.state, r.resolution, r.xero_updated) for r in rows if r.xero_id == xero_id)


# == 1. an unlink of the drifted bill alone, racing a resolution ===================================


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["unlink", "unlink_links"])
def test_unlinking_the_drifted_bill_alone_never_deadlocks_with_a_resolution_holding_its_held_payment(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str], how: str
) -> None:
    """The operator unlinks the drifted bill alone (`unlink`: the single-record step a correction
    of the bill runs; `unlink_links`: UnlinkLinks with the bill selected, the waiting payment a
    dependent that does not refuse it). Meanwhile the bookkeeper accepts Xero's version of the
    bill. The resolution now takes the bill's link and the held payment's link "in one statement
    in id order": the payment's first (it was posted before the bill linked). The unlink holds the
    bill's link and, resolving the drift UNLINKED, comes to the held payment (unheld_by_unlink
    takes its link to say it waits for the bill again). Nothing may wait in a cycle
    (docs/drift.md: "none of them waits for another in a cycle")."""
    drift_id = held_payment(database, invoice("DRAFT"))["STATUS_CHANGED"]
    reached, go = gate(monkeypatch, SqlLinkRepository, "lock_links")
    if how == "unlink":
        unlinked = Call(marked(lambda: unlink(other, C1, BILL, OPERATOR)), callers=True)
    else:
        records = [(BILL.kind, BILL.id)]
        unlinked = Call(
            marked(
                lambda: unlink_links(
                    other, C1, records, validate_only=False, confirm=True, cascade=False, reason="", actor=OPERATOR
                )
            ),
            callers=True,
        )
    assert reached.wait(15.0), "the unlink never held the bill's link"

    resolve = Call(lambda: resolve_drift(database, drift_id, rules.ACCEPT_XERO, invoice("DRAFT")), callers=True)
    resolve.answered_within(HOLD)  # it waits for the bill's link (PostgreSQL) or the writer (SQLite)
    go.set()
    unlinked.result(timeout=30.0)
    told = answer(resolve)

    assert told in ("applied", Reason.DRIFT_ALREADY_RESOLVED), told
    assert DEADLOCK not in conflicts, (
        f"the {how} of the bill and the resolution deadlocked: {conflicts}; the resolution was answered {told} "
        f"after {resolve.took:.2f} s"
    )


# == 2. a webhook of the invoice writing the drift of a payment an unlink just ended ================


@pytest.mark.timeout(60)
def test_a_webhook_of_the_invoice_never_leaves_an_open_drift_on_a_payment_unlinked_meanwhile(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """xerolink's payment of the bill was deleted in Xero; the webhook of the bill reads the
    invoice without it. Its drift check takes the bill's link (the observed object's) and then
    writes the payment's drift (PAYMENT_DELETED_IN_XERO, "only the document's view of them")
    without taking the payment's link. The operator unlinks that payment meanwhile: the unlink
    takes the payment's link, resolves its drifts UNLINKED, deactivates its snapshot and commits,
    waiting for nothing the webhook holds. The webhook, which read the payment linked and its
    snapshot active, then opens the drift: an unlinked payment, an orphan in Xero that is watched
    no more, with an open drift nobody can clear ("Unlinking a record resolves its open drifts as
    UNLINKED and stops comparing its objects"). docs/drift.md: "Every writer of a linked object's
    drift takes the object's link first". SQLite's one writer orders the two: either the unlink
    sees the drift and resolves it, or the webhook sees the payment unlinked."""
    paid_id = bill_with_our_payment(database)
    reached, go = gate(
        monkeypatch, SqlLinkRepository, "get_link_by_id", lambda _self, link_id, *a, **k: link_id == paid_id
    )
    webhook = Call(marked(lambda: observe_invoice(database, invoice())))  # the invoice without the payment
    assert reached.wait(15.0), "the webhook never came to xerolink's payment on the invoice"

    unlinked = Call(lambda: unlink(other, C1, PAID, OPERATOR), callers=True)
    unlinked.answered_within(HOLD)  # PostgreSQL: done already; SQLite: waits for the writer
    go.set()
    webhook.result(timeout=30.0)
    unlinked.result(timeout=30.0)

    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link(C1, PAID)
        assert link is not None and link.state == LinkState.UNLINKED
    drifts = _drifts_of(database, PAYMENT_XERO_ID)
    assert drifts, "the webhook opened no drift on the payment at all (the attack did not happen)"
    still_open = [d for d in drifts if d[2] == rules.OPEN]
    assert still_open == [], (
        f"the unlinked payment keeps an open drift the webhook wrote after the unlink: {still_open}"
    )


# == 3. CORRECTED on a read older than the same change made again ==================================


def _credited(credit_note_id: str, updated: int) -> dict[str, Any]:
    """The bill's invoice with 30.00 of a credit note xerolink did not make applied in Xero."""
    credits = [{"CreditNoteID": credit_note_id, "AppliedAmount": "30.00"}]
    return invoice(CreditNotes=credits, UpdatedDateUTC=_ms(updated))


@pytest.mark.timeout(60)
def test_corrected_is_refused_when_xero_made_the_same_change_again_after_the_read(
    database: Database, conflicts: list[str]
) -> None:
    """Someone applied 30.00 of a supplier credit note to the bill in Xero (T1): the drift
    ALLOCATION_ADDED_IN_XERO, the caller's payment of the bill held on it. The bookkeeper removes
    the allocation in Xero and resolves CORRECTED; ResolveDrift reads the invoice as posted (T2)
    and waits for the tenant's lease. Meanwhile the credit note is applied to the bill again, the
    same 30.00 (T3), and the webhook records it: the registry knows Xero changed after the read
    (the snapshot now remembers T3). But the drift's differences are the same as before, so
    drift_checks._settle skips it and its xero_updated stays T1, earlier than the read: the
    resolution is applied, the held payment released and sent in full over the credit: the money
    twice, the case DRIFT_CHANGED_SINCE_READ was made for (docs/drift.md "Xero changed again after
    the read": "a webhook or poll recorded a change after the read ... the resolution is refused")."""
    drift_id = held_payment(database, _credited("CN-A", T1))["ALLOCATION_ADDED_IN_XERO"]
    read = invoice(UpdatedDateUTC=_ms(T2))  # ResolveDrift's read: the allocation removed
    observe_invoice(database, _credited("CN-A", T3))  # the webhook of the allocation made again, after it

    with UnitOfWork(database, write=False) as uow:
        snapshot = uow.drift.get_snapshot(C1, XERO_ID)
        assert snapshot is not None and snapshot.xero_updated == _ms(T3), "the webhook's read was not recorded"
    told = answer(Call(lambda: resolve_drift(database, drift_id, rules.CORRECTED, read), callers=True))
    state, entries, events = payment_state(database)
    recorded = [(d[1], d[2], d[4]) for d in _drifts_of(database, XERO_ID)]
    assert told == Reason.DRIFT_CHANGED_SINCE_READ, (
        f"answered {told!r} on a read of {_ms(T2)} though the webhook recorded Xero's {_ms(T3)} after it; "
        f"drifts {recorded}; the held payment is {state} {entries} (released {events.count('released')}x)"
    )
    assert (state, entries) == (LinkState.WAITING.value, [OutboxState.WAITING.value])


# == 4. the same moment in the forms Xero writes it is no change since the read ====================

# 2026-01-01T01:00:00.123Z, as Xero's JSON date and as the date-times Xero's OpenAPI shows.
_MOMENT = T2 + 123
_SAME_MOMENT = [
    _ms(_MOMENT),
    f"/Date({_MOMENT})/",  # the OpenAPI's own example form, without an offset
    f"/Date({_MOMENT}+1300)/",  # an offset: the milliseconds are UTC whatever it says
    "2026-01-01T01:00:00.123",  # UTC without a zone
    "2026-01-01T01:00:00.123Z",
    "2025-12-31T17:00:00.123-08:00",  # "2019-02-21T16:29:47.96-08:00" is the OpenAPI's example
    "2026-01-01T01:00:00.1230000",  # .NET's seven digits
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("read_as", [*_SAME_MOMENT, "", None, "earlier"])
def test_a_read_of_the_recorded_moment_in_another_of_xeros_forms_is_not_refused(
    database: Database, conflicts: list[str], read_as: str | None
) -> None:
    """The poll recorded the un-approved bill at 01:00:00.123 ("/Date(ms+0000)/"); the bookkeeper
    approves it again and resolves CORRECTED. A read of Xero at that same moment (or one without
    an UpdatedDateUTC) is no change since the read: the resolution is applied and the payment
    released. One millisecond earlier is refused (the check is live)."""
    drift_id = held_payment(database, invoice("DRAFT", UpdatedDateUTC=_ms(_MOMENT)))["STATUS_CHANGED"]
    if read_as == "earlier":
        read = invoice(UpdatedDateUTC=_ms(_MOMENT - 1))
    elif read_as is None:
        read = invoice()  # no UpdatedDateUTC at all
    else:
        read = invoice(UpdatedDateUTC=read_as)

    told = answer(Call(lambda: resolve_drift(database, drift_id, rules.CORRECTED, read), callers=True))

    state, _, events = payment_state(database)
    if read_as == "earlier":
        assert (told, state) == (Reason.DRIFT_CHANGED_SINCE_READ, LinkState.WAITING.value)
    else:
        assert (told, state, events.count("released")) == ("applied", LinkState.PENDING.value, 1), (
            f"a read of {read_as!r} against the drift's {_ms(_MOMENT)}: {told}"
        )


# == 5-6. ResolveDrift over gRPC, real Xero changing again between its read and its write ==========

CORRECTED = drift_pb2.DRIFT_RESOLUTION_CORRECTED


def _meanwhile(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """ResolveDrift's read of Xero answers; then, before its transaction, `change` happens in
    Xero and is recorded by a webhook (once)."""
    real: Callable[..., dict[str, Any] | None] = getattr(drift_resolving, "read_object")  # noqa: B009
    done: list[bool] = []

    def reading(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        element = real(*args, **kwargs)
        if not done:
            done.append(True)
            time.sleep(0.005)  # Xero's UpdatedDateUTC has milliseconds: the change comes later than the read
            change()
        return element

    monkeypatch.setattr(drift_resolving, "read_object", reading)


def _refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode | None, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), from_rpc_error(exc).reason
    return None, "applied"


@pytest.mark.timeout(60)
def test_resolve_drift_over_grpc_is_aborted_when_the_bank_feed_matches_again_after_its_read(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real poster, real Xero (emulated): a bank-feed match paid the bill (PAID_IN_XERO), the
    caller's payment is held. The bookkeeper deletes the match in Xero and resolves CORRECTED;
    between ResolveDrift's read and its transaction the bank feed matches the money again and
    the webhook records it. ABORTED DRIFT_CHANGED_SINCE_READ, nothing released; resolving again
    reads Xero again and is refused DRIFT_NOT_CORRECTED; the payment is never sent."""
    firm = Firm(poster_factory(), emulator, 3700)
    invoice = firm.linked_bill()
    match = {"InvoiceID": invoice["InvoiceID"], "Amount": str(invoice["AmountDue"]), "Date": "2026-07-02"}
    first = bank_feed_match(emulator, firm.tenant, {**match, "AccountCode": "090"})
    assert firm.observe_bill(invoice) == ["PAID_IN_XERO"]
    [drift] = firm.drifts()
    firm.post(firm.payment)
    wait_for(lambda: firm.payment_link().last_error.reason == "XERO_DOCUMENT_CHANGED")
    hand_edit(emulator, firm.tenant, "Payments", first["PaymentID"], {"Status": "DELETED"})

    def again() -> None:
        bank_feed_match(emulator, firm.tenant, {**match, "AccountCode": "090"})
        firm.observe_bill(invoice)

    _meanwhile(monkeypatch, again)
    told = _refusal(lambda: firm.resolve(drift.name, CORRECTED))
    monkeypatch.undo()
    then = _refusal(lambda: firm.resolve(drift.name, CORRECTED))

    assert told == (grpc.StatusCode.ABORTED, Reason.DRIFT_CHANGED_SINCE_READ), told
    assert then == (grpc.StatusCode.FAILED_PRECONDITION, Reason.DRIFT_NOT_CORRECTED), then
    assert firm.payment_link().state == poster_pb2.LINK_STATE_WAITING
    assert firm.payment_calls() == []


@pytest.mark.timeout(60)
def test_resolve_drift_over_grpc_is_aborted_when_the_same_edit_is_made_again_after_its_read(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real poster, real Xero (emulated). Someone re-dated the bill in Xero (DATE_CHANGED). The
    bookkeeper puts the date back and resolves CORRECTED; between ResolveDrift's read (the date
    as posted) and its transaction, the same person re-dates it again to the same day and the
    webhook records it (Xero's UpdatedDateUTC later than the read's). The resolution must be
    refused DRIFT_CHANGED_SINCE_READ, as for any change recorded after the read: applied, the
    drift is closed CORRECTED while Xero holds the other date, and the webhook that saw it has
    come and gone (no later poll looks before the next change)."""
    firm = Firm(poster_factory(), emulator, 3800)
    invoice = firm.linked_bill()
    posted_day = str(invoice["DateString"])[:10]  # the day xerolink posted
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Date": "2026-08-01"})
    assert firm.observe_bill(invoice) == ["DATE_CHANGED"]
    [drift] = firm.drifts()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Date": posted_day})

    def again() -> None:
        hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Date": "2026-08-01"})
        firm.observe_bill(invoice)

    _meanwhile(monkeypatch, again)
    told = _refusal(lambda: firm.resolve(drift.name, CORRECTED))

    with UnitOfWork(firm.app.db, write=False) as uow:
        snapshot = uow.drift.get_snapshot("firm-1", invoice["InvoiceID"].lower())
        seen = snapshot.xero_updated if snapshot is not None else ""
    [after] = firm.drifts()
    assert told == (grpc.StatusCode.ABORTED, Reason.DRIFT_CHANGED_SINCE_READ), (
        f"answered {told} though a webhook recorded Xero's re-dated invoice ({seen}) after the read; the drift "
        f"is now {drift_pb2.DriftState.Name(after.state)} {drift_pb2.DriftResolution.Name(after.resolution)} while "
        "Xero holds 2026-08-01"
    )


# == 7. an unlink of 500 records, cascading through credit notes and refunds =======================

_KINDS = {
    "bill": common_pb2.TRANSACTION_KIND_CLIENT_BILL,
    "payment": common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT,
    "credit": common_pb2.TRANSACTION_KIND_CREDIT_NOTE,
    "application": common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION,
    "refund": common_pb2.TRANSACTION_KIND_CREDIT_NOTE_REFUND,
}


def _linked(uow: UnitOfWork, kind: int, record_id: int, xero_type: int) -> LinkRow:
    """A linked record of `kind` holding one Xero object."""
    now = now_us()
    link = uow.links.add_link(
        LinkRow(
            connection_id=C1,
            kind=kind,
            record_id=record_id,
            link_group=1,
            state="",
            fingerprint="f" * 64,
            posting_id=f"p{kind}-{record_id}",
            create_us=now,
            update_us=now,
        )
    )
    uow.links.add_posting(
        PostingRow(
            posting_id=f"p{kind}-{record_id}",
            connection_id=C1,
            kind=kind,
            record_id=record_id,
            link_id=link.id,
            fingerprint="f" * 64,
            decision=b"",
            state="",
            create_us=now,
        )
    )
    link.xero_objects = json.dumps([{"type": xero_type, "xero_id": f"x-{kind}-{record_id}", "local_ref": "it"}])
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now)
    uow.links.change_state(link, Event.POSTED, "dispatcher:test", now)
    return link


@pytest.mark.timeout(60)
def test_unlinking_500_records_cascading_through_credit_notes_and_refunds_locks_each_link_once_in_id_order(
    database: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """100 bills, each with a payment, and 100 credit notes, each applied to a bill and refunded
    in part, the dependents posted first (lower ids, as payments entered before their documents
    linked have): 500 linked records, the most one request selects. The operator selects the 200
    documents and the 300 dependents with cascade. The unlink's gather finds them, locks them all
    in one statement in id order, finds them again and stops: 500 unlinked, every link locked
    once, each statement's ids ascending."""
    n = 100

    def setup(uow: UnitOfWork) -> list[tuple[int, RecordRef]]:
        uow.connections.add_connection(unreachable_connection(C1, "t1"))
        deps: list[tuple[int, RecordRef]] = []
        for i in range(1, n + 1):
            bill, credit = RecordRef(_KINDS["bill"], 5000 + i), RecordRef(_KINDS["credit"], 6000 + i)
            paid = _linked(uow, _KINDS["payment"], 7000 + i, xero_pb2.OBJECT_TYPE_PAYMENT)
            applied = _linked(uow, _KINDS["application"], 8000 + i, xero_pb2.OBJECT_TYPE_ALLOCATION)
            refund = _linked(uow, _KINDS["refund"], 9000 + i, xero_pb2.OBJECT_TYPE_PAYMENT)
            deps += [(paid.id or 0, bill), (applied.id or 0, credit), (applied.id or 0, bill), (refund.id or 0, credit)]
        for i in range(1, n + 1):
            _linked(uow, _KINDS["bill"], 5000 + i, xero_pb2.OBJECT_TYPE_INVOICE)
            _linked(uow, _KINDS["credit"], 6000 + i, xero_pb2.OBJECT_TYPE_CREDIT_NOTE)
        return deps

    depends(database, run_in_transaction(database, setup))
    taken: list[list[int]] = []
    real = SqlLinkRepository.lock_links

    def spying(self: SqlLinkRepository, ids: Any) -> dict[int, LinkRow]:
        taken.append(list(ids))
        return real(self, ids)

    monkeypatch.setattr(SqlLinkRepository, "lock_links", spying)
    records = [
        (k, base + i) for k, base in ((1, 5000), (3, 6000), (2, 7000), (4, 8000), (5, 9000)) for i in range(1, n + 1)
    ]
    result = unlink_links(
        database, C1, records, validate_only=False, confirm=True, cascade=True, reason="", actor=OPERATOR
    )

    with UnitOfWork(database, write=False) as uow:
        states = {
            str(link.state) for link in uow.links.links_of(C1, [RecordRef(k, r) for k, r in records], False).values()
        }
        all_ids = sorted(
            link.id or 0 for link in uow.links.links_of(C1, [RecordRef(k, r) for k, r in records], False).values()
        )
    flat = [i for call in taken for i in call]
    assert result.unlinked == 5 * n, result.unlinked
    assert states == {LinkState.UNLINKED.value}, states
    assert sorted(flat) == all_ids, "a link locked twice, or one never locked"
    assert all(call == sorted(call) for call in taken), "links locked out of id order"
    assert conflicts == [], conflicts


# == 8. the dispatcher holding a payment Xero refused, racing an unlink of its bill =================

HOLDER = "poster-a"


def _payment_being_sent(db: Database) -> tuple[Work, LinkRow]:
    """The caller's payment, posted before its bill linked (the lower link id), released when the
    bill linked and claimed by this poster's dispatcher, which sent it; the bill linked with its
    invoice's snapshot; the payment's posting refers to the bill (link_dependency). The claimed
    work as the dispatcher's job holds it, and the bill's link."""

    def setup(uow: UnitOfWork) -> tuple[Work, LinkRow]:
        connection = unreachable_connection(C1, "t1")
        uow.connections.add_connection(connection)
        now = now_us()
        payment = link_with_posting_of(uow, PAYMENT)
        entry = claimed_entry(uow, payment, HOLDER)
        bill = linked_record(uow, BILL)
        uow.drift.add_snapshots([new_snapshot(C1, bill, INVOICE, trim(INVOICE, invoice()), now)])
        operation = xero_pb2.Operation(local_ref="payment")
        operation.payment.SetInParent()
        work = Work(
            row=ClaimedEntry(entry.id or 0, payment.id or 0, C1, b"", False, False, "", ""),
            link=StoredLink(
                payment.id or 0,
                C1,
                payment.kind,
                payment.record_id,
                str(payment.state),
                payment.posting_id,
                payment.generation,
                payment.attempts,
                payment.xero_objects,
            ),
            connection=connection,
            operation=operation,
            documents=[(BILL, bill, XERO_ID, INVOICE)],
        )
        assert (payment.id or 0) < (bill.id or 0)
        return work, bill

    work, bill = run_in_transaction(db, setup)
    depends(db, [(work.link.id, BILL)])
    return work, bill


def link_with_posting_of(uow: UnitOfWork, record: RecordRef) -> LinkRow:
    """The record's link accepted (pending), as a Post writes it."""
    link = link_with_posting(uow, record.id)
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
    return link


class _VoidedBill:
    """Xero, read by the refusal's job: the bill voided."""

    def call(self, creds: Credentials, method: str, path: str, **_: Any) -> XeroAnswer:
        assert (method, path) == ("GET", f"Invoices/{XERO_ID}"), (method, path)
        return XeroAnswer(200, {"Invoices": [invoice("VOIDED", UpdatedDateUTC=_ms(T2))]}, RateHeaders(), 0.0)


@pytest.mark.timeout(60)
def test_holding_a_payment_xero_refused_never_deadlocks_with_an_unlink_of_its_bill(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """Xero refused the dispatcher's payment ("Payments can only be made against Authorised
    documents"): the bill was voided in Xero and no webhook had said so. The dispatcher reads the
    bill and, in one transaction, records the drift (record_observations now takes the bill's
    link first) and holds the payment (its entry and link). Meanwhile the operator unlinks the
    bill: UnlinkLinks finds the bill and its payment (a dependent) and takes both links "in one
    statement in id order", the payment's first (posted before the bill linked), then waits for
    the bill's. The dispatcher, holding the bill's link, writes the payment's link and waits for
    the unlink: each waits for the other."""
    work, _ = _payment_being_sent(database)
    shared = cast(
        Shared,
        SimpleNamespace(
            db=database, actor=f"dispatcher:{HOLDER}", holder=HOLDER, changes=SimpleNamespace(notify=lambda: None)
        ),
    )
    results = Results(shared, DispatcherSettings(max_tenants=0))
    creds = Credentials("http://127.0.0.1:1", "t1", "token", C1)
    refused = [(work, ["Payment could not be made: Payments can only be made against Authorised documents."])]
    reached, go = gate(monkeypatch, refusals, "record_observations")
    holding = Call(marked(lambda: refusals.hold_refused(cast(Any, _VoidedBill()), creds, results, list(refused))))
    assert reached.wait(15.0), "the dispatcher never recorded the bill's drift"

    records = [(BILL.kind, BILL.id)]
    unlinked = Call(
        lambda: unlink_links(
            other, C1, records, validate_only=False, confirm=True, cascade=False, reason="", actor=OPERATOR
        ),
        callers=True,
    )
    unlinked.answered_within(HOLD)  # it holds the payment's link and waits for the bill's
    go.set()
    unexplained = holding.result(timeout=30.0)
    told = answer(unlinked)

    assert unexplained == [], "the refusal was not explained by the voided bill"
    assert told in ("applied", Reason.DEPENDENT_IN_PROGRESS), told
    assert DEADLOCK not in conflicts, (
        f"the dispatcher holding the refused payment and the unlink of its bill deadlocked: {conflicts}; "
        f"the unlink was answered {told} after {unlinked.took:.2f} s"
    )
