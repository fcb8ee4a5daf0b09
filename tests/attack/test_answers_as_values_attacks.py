"""Attacks on how a create call's answers are applied (outcomes.apply_batch): the entries and links
are read as plain values (stored_entries, stored_links) and Xero's elements are trimmed to their
drift documents before the transaction (drift_snapshots.documents_of). From outside, on both
registries: a late answer after another poster reclaimed the entry or the record moved on, a link
posted afresh under a new version, odd elements (missing fields, lines that are not objects, an
overpayment transaction, a payment to an invoice made in the same call, an object drift does not
watch, a garbled amount), a transaction retried after a conflict, waiters released, the other half
of a trust/office pair told, and the unit tests' fakes held to what the registries do. Each test
states what must be stored (states, audit rows, snapshots, claims) and fails while it is not.

The answers are built as the dispatcher builds them (Results.write); `_created` also builds them
for the answer shape before the change (ElementResult.element), so the same tests can be run
against the earlier code to compare."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.repositories.links import SqlLinkRepository
from xerolink_poster.adapters.tables import LinkRow, OutboxRow, PostingRow
from xerolink_poster.domain import drift as rules
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredLink
from xerolink_poster.service_layer import drift_snapshots
from xerolink_poster.service_layer.dispatch.answer_groups import AnswerGroups
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import settings
from tests.fixtures.registry_rows import as_values, unreachable_connection
from tests.unit.fakes.unit_of_work import FakeUnitOfWork

HOLDER = "poster-a"
ACTOR = f"dispatcher:{HOLDER}"
OTHER = "poster-b"
KIND = 1
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
# The answer's shape since the change: the documents, trimmed before the transaction.
TRIMMED_BEFORE = "documents" in {f.name for f in dataclasses.fields(ElementResult)}

Repos = UnitOfWork | FakeUnitOfWork


def _uuid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def _invoice(n: int, **fields: Any) -> dict[str, Any]:
    """Xero's element for a sales invoice it created (ids upper-case, as Xero may write them)."""
    return {
        "InvoiceID": _uuid(n).upper(),
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": _uuid(9000 + n)},
        "Date": "/Date(1772323200000+0000)/",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{"AccountCode": "200", "LineAmount": 10, "TaxType": "OUTPUT", "TaxAmount": 1}],
        "SubTotal": 10,
        "TotalTax": 1,
        "Total": 11,
        **fields,
    }


def _created(
    outbox_id: int, objects: list[XeroObjectRef], element: dict[str, Any] | None, note: str = ""
) -> ElementResult:
    """One created element as Results.write hands it to apply_batch."""
    kwargs: dict[str, Any] = {"created": objects[0], "also": tuple(objects[1:]), "note": note}
    if element is not None:
        if TRIMMED_BEFORE:
            kwargs["documents"] = drift_snapshots.documents_of(objects, element)
        else:
            kwargs["element"] = element
    return ElementResult(outbox_id, **kwargs)


def _payment(xero_id: str, on: str, amount: str, ref: str = "Invoice") -> dict[str, Any]:
    """Xero's element for a payment it made of the document `on` (an Invoice, or a CreditNote)."""
    return {
        "PaymentID": xero_id.upper(),
        "Amount": amount,
        ref: {f"{ref}ID": on.upper()},
        "Account": {"Code": "090"},
        "Date": "2026-03-05",
        "PaymentType": "accrecpayment",
        "Status": "AUTHORISED",
    }


def _rejected(outbox_id: int, *messages: str) -> ElementResult:
    return ElementResult(outbox_id, rejected=("Xero refused it", list(messages)))


# -- writing the registry as the dispatcher finds it -----------------------------------------------


def _connections(uow: UnitOfWork) -> None:
    for connection_id, tenant in (("c1", "t1"), ("c2", "t2")):
        if uow.connections.get_connection(connection_id) is None:
            uow.connections.add_connection(unreachable_connection(connection_id, tenant))


def _link(
    uow: Repos,
    record_id: int,
    connection_id: str = "c1",
    generation: int = 1,
    attempts: int = 0,
    objects: list[XeroObjectRef] | None = None,
) -> LinkRow:
    """A link accepted for posting (pending), with its posting."""
    now = now_us()
    posting_id = f"p-{connection_id}-{record_id}-{generation}"
    link = uow.links.add_link(
        LinkRow(
            connection_id=connection_id,
            kind=KIND,
            record_id=record_id,
            link_group=1,
            state="",
            fingerprint="f" * 64,
            generation=generation,
            attempts=attempts,
            xero_objects=json.dumps([o.to_json() for o in objects or []]),
            posting_id=posting_id,
            create_us=now,
            update_us=now,
        )
    )
    uow.links.add_posting(
        PostingRow(
            posting_id=posting_id,
            connection_id=connection_id,
            kind=KIND,
            record_id=record_id,
            link_id=link.id,
            fingerprint="f" * 64,
            decision=b"",
            state="",
            create_us=now,
        )
    )
    uow.links.change_state(link, Event.ACCEPTED, "caller:attack", now)
    return link


def _entry(
    uow: Repos,
    link: LinkRow,
    state: str = OutboxState.READY,
    claimed_by: str = HOLDER,
    operations: tuple[str, ...] = (),
) -> int:
    """The link's outbox entry; claimed by `claimed_by` (its lease running) when ready."""
    tenant = "t1" if link.connection_id == "c1" else "t2"
    mapped = mapper_pb2.MapTransactionResponse(operations=[xero_pb2.Operation(local_ref=r) for r in operations])
    row = OutboxRow(
        tenant_id=tenant,
        connection_id=link.connection_id,
        link_id=link.id or 0,
        posting_id=link.posting_id,
        operations=mapped.SerializeToString(),
        state=state,
        available_us=0,
        claimed_by=claimed_by,
        lease_until_us=now_us() + 600_000_000 if claimed_by else 0,
        uncertain=True,  # marked before the call, as the dispatcher does
        create_us=now_us(),
    )
    return uow.outbox.add_outbox(True, row).id or 0


def _waiting(uow: Repos, record_id: int, connection_id: str, on: list[tuple[str, int]]) -> int:
    """A link waiting for other records (of `on`'s connections) to link, and its waiting entry."""
    link = _link(uow, record_id, connection_id)
    names = ", ".join(f"{c}/{r}" for c, r in on)
    uow.links.change_state(link, Event.BLOCKED, "caller:attack", now_us(), detail=f"waiting for {names}")
    link.waiting_on = json.dumps([[KIND, r] for _, r in on])
    uow.links.save(link)
    outbox_id = _entry(uow, link, state=OutboxState.WAITING, claimed_by="")
    for dependency_connection, record_id_waited in on:
        uow.outbox.add_waits(outbox_id, dependency_connection, [RecordRef(KIND, record_id_waited)])
    return outbox_id


def _fill(database: Database, build: Callable[[UnitOfWork], Any]) -> Any:
    def fill(uow: UnitOfWork) -> Any:
        _connections(uow)
        return build(uow)

    return run_in_transaction(database, fill)


def _apply(database: Database, results: list[ElementResult], holder: str = HOLDER) -> None:
    run_in_transaction(database, lambda uow: apply_batch(uow, results, holder, ACTOR, now_us()))


# -- reading what is stored -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stored:
    """A link as stored, with its posting's state, audit trail and outbox entries."""

    state: str
    attempts: int
    generation: int
    objects: list[tuple[int, str, str]]
    last_error: str | None
    posting_state: str
    audit: list[tuple[str, str, str, str, str]]
    entries: list[tuple[str, str]]


def _stored(uow: Repos, record_id: int, connection_id: str = "c1") -> Stored:
    link = uow.links.get_link(connection_id, RecordRef(KIND, record_id))
    assert link is not None, f"no link of {connection_id}/{record_id}"
    posting = uow.links.get_posting(link.posting_id)
    entries = [(row.state, row.claimed_by) for row in sorted(_entries_of(uow, link.id or 0), key=lambda r: r.id or 0)]
    return Stored(
        state=link.state,
        attempts=link.attempts,
        generation=link.generation,
        objects=[(o.type, o.xero_id, o.local_ref) for o in uow.links.xero_objects(link)],
        last_error=link.last_error,
        posting_state=posting.state if posting is not None else "?",
        audit=[(a.actor, a.event, a.from_state, a.to_state, a.detail) for a in uow.links.audit(link.id or 0)],
        entries=entries,
    )


def _entries_of(uow: Repos, link_id: int) -> list[OutboxRow]:
    """Every entry of the link, done or not."""
    if isinstance(uow, FakeUnitOfWork):
        return [r for r in uow.registry.outbox.values() if r.link_id == link_id]
    with uow.db.read.connect() as conn:
        ids = conn.execute(sqlalchemy.text("SELECT id FROM outbox WHERE link_id = :l"), {"l": link_id}).scalars()
        wanted = [int(i) for i in ids]
    return list(uow.outbox.outbox_by_ids(wanted).values())


def _read(database: Database, record_id: int, connection_id: str = "c1") -> Stored:
    with UnitOfWork(database, write=False) as uow:
        return _stored(uow, record_id, connection_id)


def _snapshots(
    database: Database, connection_id: str, xero_ids: list[str]
) -> dict[str, tuple[int, int, int, dict[str, Any], str]]:
    """xero id -> (link id, generation, object type, document, doc_date) of its snapshot."""
    with UnitOfWork(database, write=False) as uow:
        found = uow.drift.snapshots_by_xero_ids(connection_id, [x.lower() for x in xero_ids])
        return {
            x: (s.link_id, s.generation, s.object_type, json.loads(s.document), s.doc_date) for x, s in found.items()
        }


def _entry_row(database: Database, outbox_id: int) -> OutboxRow:
    with UnitOfWork(database, write=False) as uow:
        row = uow.outbox.get_outbox(outbox_id)
        assert row is not None
        return row


def _dispatcher_audit(stored: Stored) -> list[tuple[str, str, str, str, str]]:
    return [a for a in stored.audit if a[0] == ACTOR]


# -- late answers: the entry moved on ---------------------------------------------------------------


def test_answers_for_entries_this_poster_no_longer_holds_are_dropped_and_the_rest_applied(database: Database) -> None:
    """One call, four answers. Only the entry this poster still holds is applied; the one another
    poster reclaimed after the lease ran out, the one another poster gave up on (the link failed)
    and the one a repost closed (the link is pending under a new posting, with a new entry this
    poster also holds) leave their links, entries, postings and snapshots as they are."""
    refs = {n: XeroObjectRef(ObjectType.INVOICE, _uuid(n), "inv") for n in (101, 102, 103, 104)}

    def build(uow: UnitOfWork) -> dict[str, int]:
        ours = _entry(uow, _link(uow, 101))
        reclaimed = _entry(uow, _link(uow, 102), claimed_by=OTHER)
        given_up_link = _link(uow, 103)
        given_up = _entry(uow, given_up_link, state=OutboxState.DONE, claimed_by="")
        uow.links.change_state(given_up_link, Event.GAVE_UP, f"dispatcher:{OTHER}", now_us(), detail="gave up")
        # Reposted: close_work_of_links leaves the old entry done but still naming its claimer.
        reposted_link = _link(uow, 104)
        superseded = _entry(uow, reposted_link, state=OutboxState.DONE, claimed_by=HOLDER)
        uow.links.change_state(reposted_link, Event.GAVE_UP, f"dispatcher:{OTHER}", now_us())
        uow.links.change_state(reposted_link, Event.RETRY_ACCEPTED, "caller:attack", now_us())
        fresh = _entry(uow, reposted_link, claimed_by=HOLDER)
        return {"ours": ours, "reclaimed": reclaimed, "given_up": given_up, "superseded": superseded, "fresh": fresh}

    ids = _fill(database, build)
    before = {n: _read(database, n) for n in (102, 103, 104)}

    _apply(
        database,
        [
            _created(ids["ours"], [refs[101]], _invoice(101)),
            _created(ids["reclaimed"], [refs[102]], _invoice(102)),
            _created(ids["given_up"], [refs[103]], _invoice(103)),
            _created(ids["superseded"], [refs[104]], _invoice(104)),
        ],
    )

    ours = _read(database, 101)
    assert (ours.state, ours.attempts, ours.posting_state) == (LinkState.LINKED, 1, LinkState.LINKED)
    assert ours.objects == [(ObjectType.INVOICE, _uuid(101), "inv")]
    assert ours.entries == [(OutboxState.DONE, "")]
    assert _dispatcher_audit(ours) == [(ACTOR, "posted", "pending", "linked", f"inv -> {_uuid(101)}")]
    for n, stored in before.items():
        assert _read(database, n) == stored, f"the late answer for record {n} changed its link"
    assert _entry_row(database, ids["reclaimed"]).claimed_by == OTHER
    assert _entry_row(database, ids["fresh"]).state == OutboxState.READY  # the repost's work still to do
    assert set(_snapshots(database, "c1", [_uuid(n) for n in (101, 102, 103, 104)])) == {_uuid(101)}


def test_an_answer_for_a_record_posted_afresh_is_kept_under_its_new_version(database: Database) -> None:
    """A record unlinked twice and posted again (generation 3, two attempts counted, its posting
    new): the snapshot is the new version's, the attempt counted on the link, the posting linked,
    and a late answer for the closed entry of the version before is dropped in the same call."""
    ref = XeroObjectRef(ObjectType.INVOICE, _uuid(201), "inv")
    old_ref = XeroObjectRef(ObjectType.INVOICE, _uuid(299), "inv")

    def build(uow: UnitOfWork) -> tuple[int, int, int]:
        link = _link(uow, 201, generation=3, attempts=2)
        closed = _entry(uow, link, state=OutboxState.DONE, claimed_by=HOLDER)
        return link.id or 0, closed, _entry(uow, link)

    link_id, closed, current = _fill(database, build)
    _apply(database, [_created(closed, [old_ref], _invoice(299)), _created(current, [ref], _invoice(201))])

    stored = _read(database, 201)
    assert (stored.state, stored.attempts, stored.generation) == (LinkState.LINKED, 3, 3)
    assert stored.posting_state == LinkState.LINKED
    assert stored.objects == [(ObjectType.INVOICE, _uuid(201), "inv")]
    assert [a[1] for a in _dispatcher_audit(stored)] == ["posted"]
    snaps = _snapshots(database, "c1", [_uuid(201), _uuid(299)])
    assert set(snaps) == {_uuid(201)}
    assert snaps[_uuid(201)][:3] == (link_id, 3, ObjectType.INVOICE)
    assert snaps[_uuid(201)][3] == rules.trim(ObjectType.INVOICE, _invoice(201))
    assert snaps[_uuid(201)][4] == "2026-03-01"


@ON_POSTGRES
def test_an_entry_reclaimed_while_the_answer_is_applied_is_not_taken_back(database: Database) -> None:
    """PostgreSQL runs the writers at READ COMMITTED: another poster claims the entry (this
    poster's lease looks run out to it) between the read of the entries and their UPDATE. Both
    must not win: either the answer is applied and the claim finds nothing, or the claim holds the
    entry and the answer is dropped."""
    ref = XeroObjectRef(ObjectType.INVOICE, _uuid(251), "inv")
    outbox_id = _fill(database, lambda uow: _entry(uow, _link(uow, 251)))
    other = open_database(database.url)
    armed = [True]
    taken: list[int] = []

    def reclaim(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if armed and statement.lstrip().upper().startswith("SELECT") and "FROM outbox" in statement:
            armed.clear()

            def elsewhere() -> None:
                later = now_us() + 700 * 1_000_000  # after this poster's 600 s lease
                rows = run_in_transaction(other, lambda uow: uow.outbox.claim("t1", OTHER, 50, later, 30_000_000))
                taken.extend(r.id or 0 for r in rows)

            done = threading.Thread(target=elsewhere)
            done.start()
            done.join(10)
            assert not done.is_alive(), "the other poster's claim waited for this transaction"

    event.listen(database.write, "after_cursor_execute", reclaim)
    try:
        _apply(database, [_created(outbox_id, [ref], _invoice(251))])
    finally:
        event.remove(database.write, "after_cursor_execute", reclaim)
        other.dispose()
    assert not armed, "the entries were never read"
    row = _entry_row(database, outbox_id)
    if taken:
        assert (row.state, row.claimed_by, _read(database, 251).state) == (OutboxState.READY, OTHER, LinkState.PENDING)
    else:
        assert (row.state, row.claimed_by, _read(database, 251).state) == (OutboxState.DONE, "", LinkState.LINKED)


# -- what Xero's elements hold ----------------------------------------------------------------------


def test_an_overpayment_transaction_keeps_the_bank_transaction_and_the_overpayment_xero_made(
    database: Database,
) -> None:
    bank_transaction = _uuid(301)
    overpayment = _uuid(302)
    objects = [
        XeroObjectRef(ObjectType.BANK_TRANSACTION, bank_transaction, "op"),
        XeroObjectRef(ObjectType.OVERPAYMENT, overpayment, "op"),
    ]
    element = {
        "BankTransactionID": bank_transaction.upper(),
        "OverpaymentID": overpayment.upper(),
        "Type": "RECEIVE-OVERPAYMENT",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": _uuid(9301)},
        "BankAccount": {"AccountID": _uuid(9302), "Code": "090"},
        "Date": "2026-03-04T00:00:00",
        "LineAmountTypes": "NoTax",
        "LineItems": [{"AccountCode": "", "LineAmount": "250.00"}],
        "Total": "250.00",
    }
    original = copy.deepcopy(element)

    def build(uow: UnitOfWork) -> tuple[int, int]:
        link = _link(uow, 301)
        return link.id or 0, _entry(uow, link)

    link_id, outbox_id = _fill(database, build)
    _apply(database, [_created(outbox_id, objects, element)])

    stored = _read(database, 301)
    assert (stored.state, stored.attempts) == (LinkState.LINKED, 1)
    assert stored.objects == [(o.type, o.xero_id, o.local_ref) for o in objects]
    snaps = _snapshots(database, "c1", [bank_transaction, overpayment])
    assert snaps[bank_transaction][:3] == (link_id, 1, ObjectType.BANK_TRANSACTION)
    assert snaps[bank_transaction][3]["OverpaymentID"] == overpayment
    assert snaps[overpayment][:3] == (link_id, 1, ObjectType.OVERPAYMENT)
    made = snaps[overpayment][3]
    assert (made["OverpaymentID"], made["Status"], made["Total"]) == (overpayment, "AUTHORISED", "250.00")
    assert (made["Allocations"], made["Payments"]) == ([], [])
    assert "BankTransactionID" not in made
    assert snaps[overpayment][4] == snaps[bank_transaction][4] == "2026-03-04"
    assert element == original  # Xero's element is read, never changed


def test_payments_made_in_a_call_are_expected_on_their_invoices_only_when_applied(database: Database) -> None:
    """An invoice and two payments of it answered in one call (Xero batches one endpoint a call;
    the look-up after uncertain calls mixes them), plus a payment of an invoice linked before: the
    invoices' snapshots expect the payments that were applied, not the one whose entry another
    poster reclaimed."""
    invoice, earlier = _uuid(401), _uuid(402)
    pay_new, pay_lost, pay_earlier = _uuid(411), _uuid(412), _uuid(413)
    inv_ref = XeroObjectRef(ObjectType.INVOICE, invoice, "inv")

    def build(uow: UnitOfWork) -> dict[str, int]:
        linked = _link(uow, 402)
        first = _entry(uow, linked)
        return {
            "linked": first,
            "pay_earlier": _entry(uow, _link(uow, 423)),
            "invoice": _entry(uow, _link(uow, 401)),
            "pay_new": _entry(uow, _link(uow, 421)),
            "pay_lost": _entry(uow, _link(uow, 422), claimed_by=OTHER),
        }

    ids = _fill(database, build)
    _apply(database, [_created(ids["linked"], [XeroObjectRef(ObjectType.INVOICE, earlier, "inv")], _invoice(402))])
    # The payment comes before its invoice in the call: the invoice's new snapshot still expects it.
    _apply(
        database,
        [
            _created(
                ids["pay_new"], [XeroObjectRef(ObjectType.PAYMENT, pay_new, "pay")], _payment(pay_new, invoice, "6")
            ),
            _created(
                ids["pay_lost"], [XeroObjectRef(ObjectType.PAYMENT, pay_lost, "pay")], _payment(pay_lost, invoice, "5")
            ),
            _created(ids["invoice"], [inv_ref], _invoice(401)),
            _created(
                ids["pay_earlier"],
                [XeroObjectRef(ObjectType.PAYMENT, pay_earlier, "pay")],
                _payment(pay_earlier, earlier, "11.00"),
            ),
        ],
    )

    assert [_read(database, n).state for n in (401, 402, 421, 422, 423)] == [
        LinkState.LINKED,
        LinkState.LINKED,
        LinkState.LINKED,
        LinkState.PENDING,
        LinkState.LINKED,
    ]
    snaps = _snapshots(database, "c1", [invoice, earlier, pay_new, pay_lost, pay_earlier])
    assert set(snaps) == {invoice, earlier, pay_new, pay_earlier}
    assert snaps[invoice][3]["Payments"] == [{"PaymentID": pay_new, "Amount": "6.00"}]
    assert snaps[earlier][3]["Payments"] == [{"PaymentID": pay_earlier, "Amount": "11.00"}]
    assert snaps[pay_new][3]["Invoice"] == {"InvoiceID": invoice}
    assert snaps[pay_new][3]["PaymentType"] == "ACCRECPAYMENT"


def test_odd_elements_link_their_records_with_what_drift_can_read_of_them(database: Database) -> None:
    """Xero's element without a date, contact or totals, with lines that are not objects, a
    contact that is a string, a Total of null; a contact (an object drift does not watch); and an
    element left out altogether: every record links, and only what drift watches is kept."""
    odd = {
        "InvoiceID": _uuid(501),
        "Type": "ACCPAY",
        "Contact": "not an object",
        "LineItems": ["junk", None, 7, {"AccountCode": "400", "LineAmount": "12.5", "Tracking": "x"}],
        "Total": None,
        "Payments": "none",
    }
    contact = XeroObjectRef(ObjectType.CONTACT, _uuid(502), "contact")

    def build(uow: UnitOfWork) -> list[int]:
        return [_entry(uow, _link(uow, n)) for n in (501, 502, 503)]

    odd_id, contact_id, bare_id = _fill(database, build)
    _apply(
        database,
        [
            _created(odd_id, [XeroObjectRef(ObjectType.INVOICE, _uuid(501), "inv")], odd),
            _created(contact_id, [contact], {"ContactID": _uuid(502), "Name": "A contact"}),
            _created(bare_id, [XeroObjectRef(ObjectType.INVOICE, _uuid(503), "inv")], None),
        ],
    )

    for n in (501, 502, 503):
        stored = _read(database, n)
        assert (stored.state, stored.attempts, stored.entries) == (LinkState.LINKED, 1, [(OutboxState.DONE, "")]), n
    snaps = _snapshots(database, "c1", [_uuid(501), _uuid(502), _uuid(503)])
    assert set(snaps) == {_uuid(501)}
    document = snaps[_uuid(501)][3]
    assert document["LineItems"] == [{"AccountCode": "400", "LineAmount": "12.50", "TaxType": "", "TaxAmount": ""}]
    assert "Contact" not in document and "Total" not in document
    assert (document["Date"], document["Payments"]) == ("", [])


def _claimed_works(database: Database, *records: tuple[int, str]) -> list[Work]:
    """A pending link and its entry claimed by `claimer` for each (record id, claimer), as the
    dispatcher's Work objects."""

    def build(uow: UnitOfWork) -> list[Work]:
        works = []
        for n, claimer in records:
            link = _link(uow, n)
            row = uow.outbox.get_outbox(_entry(uow, link, claimed_by=claimer))
            connection = uow.connections.get_connection("c1")
            assert row is not None and connection is not None
            works.append(
                Work(row=as_values(ClaimedEntry, row), link=as_values(StoredLink, link), connection=connection)
            )
        return works

    works: list[Work] = _fill(database, build)
    return works


def _results(database: Database) -> Results:
    """The dispatcher's answer writer of this poster (HOLDER) on `database`."""
    shared = SimpleNamespace(
        db=database,
        holder=HOLDER,
        actor=ACTOR,
        answers=AnswerGroups(database, HOLDER, ACTOR),
        changes=SimpleNamespace(notify=lambda: None),
    )
    return Results(cast(Shared, shared), settings())


def test_a_garbled_element_of_an_entry_no_longer_held_does_not_lose_the_calls_other_answers(
    database: Database,
) -> None:
    """Xero's answer arrives with one element garbled (an amount no decimal holds). Its entry was
    reclaimed by another poster meanwhile, so nothing of it is kept: the other element, whose
    entry this poster holds, must still be applied (Results.write, as the dispatcher runs it)."""

    good, garbled = _claimed_works(database, (601, HOLDER), (602, OTHER))
    good.answer(_invoice(601))
    garbled.answer(_invoice(602, Total="1e30"))

    _results(database).write(
        [
            (good, [XeroObjectRef(ObjectType.INVOICE, _uuid(601), "inv")]),
            (garbled, [XeroObjectRef(ObjectType.INVOICE, _uuid(602), "inv")]),
        ],
        [],
    )

    assert _read(database, 601).state == LinkState.LINKED
    assert set(_snapshots(database, "c1", [_uuid(601), _uuid(602)])) == {_uuid(601)}
    assert _read(database, 602).state == LinkState.PENDING
    assert _entry_row(database, garbled.row.id or 0).claimed_by == OTHER


def test_a_garbled_amount_in_one_held_element_does_not_lose_the_calls_other_answers(database: Database) -> None:
    """Both entries held; Xero's element for one carries an amount no decimal of two places holds
    (Infinity). Xero created both objects: both records link, and the call's good answer is not
    lost with the garbled one (drift.money means never to raise: an unreadable amount is kept as
    written)."""

    good, garbled = _claimed_works(database, (651, HOLDER), (652, HOLDER))
    good.answer(_invoice(651))
    garbled.answer(_invoice(652, Total="Infinity"))

    _results(database).write(
        [
            (good, [XeroObjectRef(ObjectType.INVOICE, _uuid(651), "inv")]),
            (garbled, [XeroObjectRef(ObjectType.INVOICE, _uuid(652), "inv")]),
        ],
        [],
    )

    assert [_read(database, n).state for n in (651, 652)] == [LinkState.LINKED, LinkState.LINKED]
    assert _uuid(651) in _snapshots(database, "c1", [_uuid(651)])


def test_a_first_operation_answered_leaves_the_entry_queued_with_the_renumbering_noted(database: Database) -> None:
    """An entry of two operations (an invoice, then its payment): the invoice's answer keeps the
    link pending, releases the entry for its next operation, keeps the invoice's snapshot, and
    notes the renumbering in the audit from the link's stored state."""
    ref = XeroObjectRef(ObjectType.INVOICE, _uuid(701), "inv")

    def build(uow: UnitOfWork) -> tuple[int, int]:
        link = _link(uow, 701, attempts=1)
        return link.id or 0, _entry(uow, link, operations=("inv", "pay"))

    link_id, outbox_id = _fill(database, build)
    started = now_us()
    _apply(database, [_created(outbox_id, [ref], _invoice(701), note="posted as INV-0701-2")])

    stored = _read(database, 701)
    assert (stored.state, stored.attempts, stored.last_error) == (LinkState.PENDING, 2, None)
    assert stored.objects == [(ObjectType.INVOICE, _uuid(701), "inv")]
    assert _dispatcher_audit(stored) == [
        (ACTOR, "posted_renumbered", "pending", "pending", f"inv -> {_uuid(701)}; posted as INV-0701-2")
    ]
    row = _entry_row(database, outbox_id)
    assert (row.state, row.claimed_by, row.lease_until_us, row.uncertain) == (OutboxState.READY, "", 0, False)
    assert row.available_us >= started
    assert _snapshots(database, "c1", [_uuid(701)])[_uuid(701)][:3] == (link_id, 1, ObjectType.INVOICE)


# -- a transaction run again ------------------------------------------------------------------------


def test_answers_applied_again_after_a_conflict_are_written_once_from_unchanged_documents(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_in_transaction runs the whole apply again after a conflict (a lost race, a serialisation
    failure). The second run must find the same answers: one posted row and one attempt per link,
    one snapshot per object, the invoice expecting its payment once, Xero's documents untouched."""
    invoice, pay = _uuid(801), _uuid(811)
    bank_transaction, overpayment = _uuid(821), _uuid(822)

    def build(uow: UnitOfWork) -> list[int]:
        return [_entry(uow, _link(uow, n)) for n in (801, 811, 821)]

    inv_id, pay_id, op_id = _fill(database, build)
    results = [
        _created(inv_id, [XeroObjectRef(ObjectType.INVOICE, invoice, "inv")], _invoice(801)),
        _created(
            pay_id,
            [XeroObjectRef(ObjectType.PAYMENT, pay, "pay")],
            {"PaymentID": pay, "Amount": 11, "Invoice": {"InvoiceID": invoice}, "Date": "2026-03-06"},
        ),
        _created(
            op_id,
            [
                XeroObjectRef(ObjectType.BANK_TRANSACTION, bank_transaction, "op"),
                XeroObjectRef(ObjectType.OVERPAYMENT, overpayment, "op"),
            ],
            {"BankTransactionID": bank_transaction, "OverpaymentID": overpayment, "Type": "RECEIVE-OVERPAYMENT"},
        ),
    ]
    answered = copy.deepcopy(results)
    real = SqlLinkRepository.insert_audit
    runs: list[int] = []

    def lost_race(self: SqlLinkRepository, rows: Any) -> None:
        runs.append(len(runs))
        real(self, rows)
        if len(runs) == 1:  # everything of the first run written, then the conflict
            raise OperationalError("UPDATE link", {}, Exception("could not serialize access"))

    monkeypatch.setattr(SqlLinkRepository, "insert_audit", lost_race)
    _apply(database, results)

    assert len(runs) == 2, "the transaction was not run again"
    assert results == answered, "the answers were changed by the run that rolled back"
    for n in (801, 811, 821):
        stored = _read(database, n)
        assert (stored.state, stored.attempts) == (LinkState.LINKED, 1), n
        assert [a[1] for a in _dispatcher_audit(stored)] == ["posted"], n
    snaps = _snapshots(database, "c1", [invoice, pay, bank_transaction, overpayment])
    assert set(snaps) == {invoice, pay, bank_transaction, overpayment}
    assert snaps[invoice][3]["Payments"] == [{"PaymentID": pay, "Amount": "11.00"}]
    assert snaps[overpayment][3]["Status"] == "AUTHORISED"


# -- who else hears of it ---------------------------------------------------------------------------


def test_records_linking_in_one_call_release_the_entries_waiting_for_them(database: Database) -> None:
    """Two records link in one call. What waited for both, and the office half (another connection)
    waiting for one, are released; what also waits for a record still pending stays waiting."""

    def build(uow: UnitOfWork) -> dict[str, int]:
        return {
            "a": _entry(uow, _link(uow, 901)),
            "b": _entry(uow, _link(uow, 902)),
            "pending": _entry(uow, _link(uow, 903), claimed_by=OTHER),
            "both": _waiting(uow, 911, "c1", [("c1", 901), ("c1", 902)]),
            "still": _waiting(uow, 912, "c1", [("c1", 901), ("c1", 903)]),
            "office": _waiting(uow, 913, "c2", [("c1", 902)]),
        }

    ids = _fill(database, build)
    _apply(
        database,
        [
            _created(ids["a"], [XeroObjectRef(ObjectType.INVOICE, _uuid(901), "inv")], _invoice(901)),
            _created(ids["b"], [XeroObjectRef(ObjectType.INVOICE, _uuid(902), "inv")], _invoice(902)),
            _created(ids["pending"], [XeroObjectRef(ObjectType.INVOICE, _uuid(903), "inv")], _invoice(903)),
        ],
    )

    assert [_read(database, n).state for n in (901, 902, 903)] == [LinkState.LINKED, LinkState.LINKED, "pending"]
    for key, record, connection_id in (("both", 911, "c1"), ("office", 913, "c2")):
        stored = _read(database, record, connection_id)
        assert (stored.state, stored.last_error) == (LinkState.PENDING, None), key
        assert [a[1:4] for a in stored.audit][-1] == ("released", "waiting", "pending"), key
        assert _entry_row(database, ids[key]).state == OutboxState.READY, key
    still = _read(database, 912)
    assert still.state == LinkState.WAITING
    assert _entry_row(database, ids["still"]).state == OutboxState.WAITING


def test_a_rejected_trust_half_tells_the_office_half_waiting_for_it(database: Database) -> None:
    """Xero refuses the trust half (connection c1) of an invoice paid from trust: the office half
    (connection c2) waiting for it says why on its link, and keeps waiting; a refusal whose entry
    another poster reclaimed tells no one."""

    def build(uow: UnitOfWork) -> dict[str, int]:
        return {
            "trust": _entry(uow, _link(uow, 1001, attempts=2)),
            "lost": _entry(uow, _link(uow, 1002), claimed_by=OTHER),
            "office": _waiting(uow, 1011, "c2", [("c1", 1001)]),
            "office_of_lost": _waiting(uow, 1012, "c2", [("c1", 1002)]),
        }

    ids = _fill(database, build)
    _apply(
        database,
        [
            _rejected(ids["trust"], "Account code '999' is not a valid code"),
            _rejected(ids["lost"], "Something else entirely"),
        ],
    )

    trust = _read(database, 1001)
    assert (trust.state, trust.attempts, trust.posting_state) == (LinkState.FAILED, 3, LinkState.FAILED)
    assert trust.entries == [(OutboxState.DONE, "")]
    assert _dispatcher_audit(trust) == [
        (ACTOR, "xero_rejected", "pending", "failed", "Xero refused it; Account code '999' is not a valid code")
    ]
    assert trust.last_error is not None and "XERO_VALIDATION" in trust.last_error
    office = _read(database, 1011, "c2")
    assert office.state == LinkState.WAITING
    assert office.last_error is not None
    said = json.loads(office.last_error)
    assert said["reason"] == "DEPENDENCY_NOT_LINKED"
    assert "failed under connection c1" in said["message"]
    assert "Account code '999' is not a valid code" in said["message"]
    assert _entry_row(database, ids["office"]).state == OutboxState.WAITING
    lost = _read(database, 1002)
    assert (lost.state, lost.attempts) == (LinkState.PENDING, 0)
    office_of_lost = _read(database, 1012, "c2")
    assert office_of_lost.last_error is None or "Something else" not in office_of_lost.last_error


# -- the unit tests' fakes --------------------------------------------------------------------------


def _scenario(uow: Repos) -> list[ElementResult]:
    """A call touching every path of apply_batch, on whichever registry `uow` is."""
    ids = {
        "inv": _entry(uow, _link(uow, 1101)),
        "two_ops": _entry(uow, _link(uow, 1102), operations=("inv", "pay")),
        "op": _entry(uow, _link(uow, 1103)),
        "lost": _entry(uow, _link(uow, 1104), claimed_by=OTHER),
        "refused": _entry(uow, _link(uow, 1105, attempts=4)),
        "contact": _entry(uow, _link(uow, 1106)),
    }
    _waiting(uow, 1111, "c1", [("c1", 1101)])
    _waiting(uow, 1112, "c2", [("c1", 1105)])
    return [
        _created(ids["inv"], [XeroObjectRef(ObjectType.INVOICE, _uuid(1101), "inv")], _invoice(1101)),
        _created(
            ids["two_ops"], [XeroObjectRef(ObjectType.INVOICE, _uuid(1102), "inv")], _invoice(1102), note="renumbered"
        ),
        _created(
            ids["op"],
            [
                XeroObjectRef(ObjectType.BANK_TRANSACTION, _uuid(1103), "op"),
                XeroObjectRef(ObjectType.OVERPAYMENT, _uuid(1113), "op"),
            ],
            {"BankTransactionID": _uuid(1103), "OverpaymentID": _uuid(1113), "Total": "5"},
        ),
        _created(ids["lost"], [XeroObjectRef(ObjectType.INVOICE, _uuid(1104), "inv")], _invoice(1104)),
        _rejected(ids["refused"], "The contact is archived"),
        _created(ids["contact"], [XeroObjectRef(ObjectType.CONTACT, _uuid(1106), "c")], {"ContactID": _uuid(1106)}),
    ]


def _outcome(uow: Repos, snapshots: dict[str, tuple[int, int, str]]) -> dict[str, Any]:
    """What the scenario leaves, without ids and times (the fake numbers rows its own way)."""
    records = [("c1", n) for n in range(1101, 1107)] + [("c1", 1111), ("c2", 1112)]
    links = {}
    for connection_id, n in records:
        stored = _stored(uow, n, connection_id)
        error = json.loads(stored.last_error)["reason"] if stored.last_error else None
        links[f"{connection_id}/{n}"] = (
            stored.state,
            stored.attempts,
            stored.objects,
            error,
            stored.posting_state,
            [a[1:] for a in stored.audit],
            stored.entries,
        )
    return {"links": links, "snapshots": snapshots}


def test_the_fakes_apply_a_calls_answers_as_the_registries_do(database: Database) -> None:
    fake = FakeUnitOfWork()
    with fake:
        answers = _scenario(fake)
        apply_batch(fake, answers, HOLDER, ACTOR, now_us())
        fake.commit()
    fake_snapshots = {s.xero_id: (s.object_type, s.generation, s.document) for s in fake.drift.snapshots.values()}
    fake_outcome = _outcome(fake, fake_snapshots)

    answered = _fill(database, _scenario)
    _apply(database, answered)
    with UnitOfWork(database, write=False) as uow:
        found = uow.drift.snapshots_by_xero_ids("c1", [_uuid(n) for n in range(1100, 1120)])
        real_outcome = _outcome(uow, {x: (s.object_type, s.generation, s.document) for x, s in found.items()})

    assert real_outcome["links"]["c1/1101"][0] == LinkState.LINKED  # the scenario did apply answers
    assert len(real_outcome["snapshots"]) == 4
    assert fake_outcome == real_outcome
