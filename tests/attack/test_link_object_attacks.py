"""Attacks on `link_object` (revisions 0006 and 0007): every object in a link's `xero_objects`
must have its (connection, lower(xero_id), link) row, on SQLite and on PostgreSQL, whatever path
gave the link the object and whatever failed in between; the readers built on it (`link_holding`,
`held_xero_ids`, ListLinks by Xero id) must answer as the links' own lists say.

If the invariant breaks, a webhook event for a linked invoice is ignored, a look-up after a lost
answer may adopt an object another record holds, or ListLinks by Xero id misses a link."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.migrations import current_revision, head_revision, migrate
from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.lookups import bill_and_credit, credit_application
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for, wait_settled
from tests.fixtures.registry_rows import link_values
from tests.integration.test_link_objects import _held_in_json, _indexed
from tests.integration.test_poster_exactly_once import _allocations, _settle
from tests.integration.test_poster_webhooks import delivery, event, events_in, hooks, linked_bill, reads_of, send

LINKED = poster_pb2.LINK_STATE_LINKED
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


def _list_links(stub: Any, xero_id: str) -> list[int]:
    page = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", xero_id=xero_id, page_size=100))
    return [x.record.id for x in page.links]


def _missing(db: Database) -> set[tuple[str, str, int]]:
    """Objects a link's own list names that the index does not."""
    return _held_in_json(db) - _indexed(db)


def _insert_links(db: Database, links: list[dict[str, Any]]) -> None:
    columns = ", ".join(links[0])
    values = ", ".join(f":{name}" for name in links[0])
    with db.write.begin() as conn:
        conn.execute(text(f"INSERT INTO link ({columns}) VALUES ({values})"), links)


def _objects(*ids: str) -> str:
    return (
        "["
        + ", ".join(f'{{"type": 1, "xero_id": "{x}", "local_ref": "r{n}", "number": ""}}' for n, x in enumerate(ids))
        + "]"
    )


# --- every path that gives a link an object, end to end -------------------------------------


def test_every_kind_of_transaction_posted_has_every_object_indexed(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """A firm posts bills, payments, credit notes and their applications and refunds, receipts
    with overpayments and their refunds, trust and bank entries: each Xero object every link holds
    (an overpayment's second id, an allocation) must be findable by its id, or a webhook for it is
    ignored and ListLinks by its id misses the record."""
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator, context=samples.demo_context(profile=mapper_pb2.POLICY_PROFILE_EXTENDED))
    sample = samples.sample_transactions(8100)
    names = []
    for kind in (
        "client_bill",
        "client_bill_payment",
        "credit_note",
        "credit_note_application",
        "credit_note_refund",
        "general_retainer",
        "overpayment_refund",
        "trust_receipt",
        "trust_payment",
        "invoice_paid_from_trust",
        "supplier_invoice",
        "supplier_invoice_payment",
        "bank_deposit",
        "general_journal",
    ):
        posted = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=sample[kind])
        )
        if posted.posting.name:  # some kinds post nothing (the mapper says so)
            names.append(posted.posting.name)
    states = [wait_settled(stub, name, timeout=40).state for name in names]
    assert states.count(LINKED) >= 10, states
    with app.db.read.connect() as conn:
        held_types = {
            o["type"] for (objects,) in conn.execute(text("SELECT xero_objects FROM link")) for o in json.loads(objects)
        }
    # Invoices, credit notes, payments, bank transactions, a journal and a receipt's overpayment.
    assert held_types >= {2, 3, 4, 6, 8, 9}, held_types
    assert _missing(app.db) == set()
    for _, xero_id, link_id in sorted(_held_in_json(app.db))[:6]:
        with UnitOfWork(app.db, write=False) as uow:
            holding = uow.links.link_holding("firm-1", xero_id.upper())
        assert holding is not None and holding.id == link_id


def test_objects_adopted_by_the_look_up_after_a_lost_answer_are_indexed(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    """Xero makes an invoice and a second, equal allocation but the answers are lost: the look-ups
    adopt them. Both must be indexed under their links, and ListLinks by the allocation's id must
    name the second application, not the first."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    app = poster_factory(settings(http_timeout=0.5))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bill, credit = bill_and_credit(8200)
    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices"))
    assert _settle(stub, bill, credit) == [LINKED, LINKED]
    assert _settle(stub, credit_application(8301, 8200, 5000)) == [LINKED]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Allocations")
    emulator.faults.add(dropped)
    assert _settle(stub, credit_application(8302, 8200, 5000)) == [LINKED]
    assert dropped.hits == 1

    assert _missing(app.db) == set()
    allocations = _allocations(emulator, org["tenant_id"])
    assert len(allocations) == 2
    found = {a["AllocationID"]: _list_links(stub, a["AllocationID"]) for a in allocations}
    assert sorted(ids for ids in found.values()) == [[8301], [8302]], found


# --- a rolling upgrade ----------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_objects_a_replica_of_the_previous_release_links_during_a_rolling_upgrade_are_indexed(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """k8s/base/poster.yaml rolls the posters (RollingUpdate, maxSurge 1, maxUnavailable 0): the
    first new replica migrates the shared registry to 0007 while the replicas of the previous
    release keep posting until they are replaced. Their code writes `xero_objects` and knows
    nothing of `link_object` (simulated here by writing the links' column with plain SQL, as the
    previous release's statements do). Were the objects not indexed, once the rollout is done
    ListLinks by the invoice's Xero id would find no record, `held_xero_ids` would no longer
    guard the look-up against adopting it, and events for it without a snapshot would be
    ignored. (Found against 23af966, whose poster code wrote the rows; a trigger now does.)"""
    old = poster_factory(name="previous-release")
    stub = stub_for(old)
    connect(stub, emulator)
    sample = samples.sample_transactions(8400)
    for kind in ("client_bill", "client_bill_payment"):
        posted = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=sample[kind])
        )
        assert wait_settled(stub, posted.posting.name).state == LINKED
    old.stop(0)
    # What the previous release wrote: the links' lists, and no row of the index.
    with old.db.write.begin() as conn:
        conn.execute(text("DELETE FROM link_object"))
        conn.execute(text("UPDATE link SET xero_objects = xero_objects || ''"))

    # The rollout finishes: only posters of the new release run, restarted on the same registry.
    new = poster_factory(name="new-release")
    stub = stub_for(new)
    record = common_pb2.RecordKey(kind=BILL, id=sample["client_bill"].header.id)
    link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
    invoice = next(o.xero_id for o in link.xero_objects if o.type == xero_pb2.OBJECT_TYPE_INVOICE)
    assert _missing(new.db) == set(), "objects linked by the previous release are not indexed"
    assert _list_links(stub, invoice) == [record.id]
    with UnitOfWork(new.db, write=False) as uow:
        assert uow.links.held_xero_ids("firm-1", [invoice], except_link_id=0) == {invoice}


# --- the migration --------------------------------------------------------------------------


@pytest.mark.empty_registry
def test_revision_0007_upgrades_a_registry_whose_link_names_an_id_longer_than_64_characters(
    database_url: str,
) -> None:
    """`xero_objects` is unbounded text and the revision tolerates hand-edited values (not JSON,
    not a list, no id), but copies every `xero_id` into link_object.xero_id VARCHAR(64). On
    PostgreSQL one hand-edited id of 65+ characters makes the whole upgrade fail
    (StringDataRightTruncation) and roll back: every poster replica fails at start-up and nothing
    posts. SQLite does not enforce the length and upgrades."""
    db = open_database(database_url)
    try:
        migrate(db, "0006")
        good = "0b5e6a3c-0001-4a8b-9c1d-aaaaaaaaaaaa"
        _insert_links(
            db,
            [
                link_values(1, "firm-1", _objects(good)),
                link_values(2, "firm-1", _objects("x" * 70)),  # typed by hand, or pasted twice
            ],
        )
        migrate(db)
        assert current_revision(db) == head_revision()
        assert ("firm-1", good, 1) in _indexed(db)
        with UnitOfWork(db, write=False) as uow:
            holding = uow.links.link_holding("firm-1", good)
        assert holding is not None and holding.id == 1
    finally:
        db.dispose()


@pytest.mark.empty_registry
def test_revision_0007_indexes_an_object_named_in_two_cases_and_by_two_links_once_each(database_url: str) -> None:
    """A link naming one object twice in different case, and another link of the connection
    naming it too: one row per link, and each reader finds them whatever the case asked."""
    db = open_database(database_url)
    try:
        migrate(db, "0006")
        upper = "5D8E1E6C-0001-4A8B-9C1D-AAAAAAAAAAAA"
        lower = upper.lower()
        _insert_links(
            db,
            [
                link_values(1, "firm-1", _objects(upper, lower)),
                link_values(2, "firm-1", _objects(lower)),
                link_values(3, "firm-2", _objects(upper)),
            ],
        )
        migrate(db)
        assert _indexed(db) == {("firm-1", lower, 1), ("firm-1", lower, 2), ("firm-2", lower, 3)}
        with UnitOfWork(db, write=False) as uow:
            for asked in (upper, lower):
                holding = uow.links.link_holding("firm-1", asked)
                assert holding is not None and holding.id in (1, 2)
                holding = uow.links.link_holding("firm-2", asked)
                assert holding is not None and holding.id == 3
            assert uow.links.held_xero_ids("firm-1", [lower], except_link_id=1) == {lower}
            assert uow.links.held_xero_ids("firm-2", [upper], except_link_id=0) == {upper}
            assert uow.links.held_xero_ids("firm-2", [upper], except_link_id=3) == set()
    finally:
        db.dispose()


# --- case -----------------------------------------------------------------------------------


def _holding_link(db: Database, link_id: int, connection_id: str, xero_id: str) -> None:
    """A link holding the object (its trigger indexes it, as for every write of the column)."""
    _insert_links(db, [link_values(link_id, connection_id, _objects(xero_id))])


def test_the_look_up_guard_sees_an_object_another_link_holds_when_xero_names_it_in_another_case(
    database: Database,
) -> None:
    """Xero's GUIDs compare without case (the index, link_holding and the webhook path all say
    so), but held_xero_ids keeps only ids equal byte for byte to a link's list
    (`o["xero_id"] in wanted`, links.py) and orphans by `xero_id IN (...)`. A look-up answer
    naming the invoice in upper case while the other record's link holds it in lower case finds
    it "not held": the look-up adopts it and two records are linked to one Xero invoice.
    (Pre-existing: the JSON LIKE before 23af966 ended in the same comparison; the index now finds
    the link and the final check throws it away.)"""
    invoice = str(uuid.uuid4())
    _holding_link(database, 1, "firm-1", invoice)
    with UnitOfWork(database, write=False) as uow:
        assert uow.links.held_xero_ids("firm-1", [invoice], except_link_id=2) == {invoice}
        assert uow.links.held_xero_ids("firm-1", [invoice.upper()], except_link_id=2) == {invoice.upper()}


def test_list_links_by_xero_id_finds_the_link_whatever_the_case_on_both_registries(database: Database) -> None:
    """ListLinks by Xero id finds candidates by lower(id) in the index, then also requires the
    JSON text to contain `"xero_id": "<id as asked>"` (link_index.py). SQLite's LIKE ignores ASCII
    case, PostgreSQL's does not: an operator who pastes the invoice id in upper case (or a link
    holding an id Xero gave in upper case, asked in lower case) gets the record on SQLite and
    nothing on PostgreSQL. (Pre-existing with the LIKE alone; the index made it needless.)"""
    lower = str(uuid.uuid4())
    upper = str(uuid.uuid4()).upper()
    _holding_link(database, 1, "firm-1", lower)
    _holding_link(database, 2, "firm-1", upper)
    with UnitOfWork(database, write=False) as uow:
        found = {
            asked: [link.id for link in uow.links.list_links("firm-1", LinkFilter(xero_id=asked), 0, 10)]
            for asked in (lower, lower.upper(), upper, upper.lower())
        }
    assert found == {lower: [1], lower.upper(): [1], upper: [2], upper.lower(): [2]}


def test_a_webhook_for_an_invoice_linked_before_snapshots_is_read_whatever_the_case_of_its_id(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """An invoice linked before snapshots were kept (its snapshot removed here) is found through
    link_object by the event's resourceId, sent in upper case: the event is processed with a read
    of Xero, not ignored (drift on it would otherwise never be seen)."""
    app = poster_factory(webhooks=hooks())
    tenant, invoice = linked_bill(stub_for(app), emulator)
    with app.db.write.begin() as conn:
        conn.execute(text("DELETE FROM xero_snapshot"))
    before = reads_of(emulator, tenant, invoice)
    assert send(app, delivery(event(tenant, invoice.upper()))).status_code == 200
    wait_for(lambda: all(e.state != "pending" for e in events_in(database_url)))
    assert [e.state for e in events_in(database_url)] == ["done"]
    assert reads_of(emulator, tenant, invoice) + reads_of(emulator, tenant, invoice.upper()) == before + 1


# --- crashes, retries and concurrent writers ------------------------------------------------


def _set_objects(db: Database, link_id: int, objects: str) -> Any:
    def write(uow: UnitOfWork) -> None:
        link = uow.links.get_link_by_id(link_id)
        assert link is not None
        link.xero_objects = objects
        uow.links.save(link)
        uow.links.links_by_ids([link_id])  # a query: the change is flushed, the trigger runs

    return write


def _indexed_in(uow: UnitOfWork, xero_id: str) -> bool:
    holding = uow.links.link_holding("firm-1", xero_id)
    return holding is not None


def test_a_rolled_back_answer_leaves_no_row_and_the_retried_answer_writes_one(database: Database) -> None:
    """A unit of work that gave a link an object and then failed (its commit never happened)
    leaves no row; the same answer applied again, twice and in another case, leaves exactly one."""
    invoice = str(uuid.uuid4())
    _insert_links(database, [link_values(1, "firm-1", "[]")])

    class Crash(Exception):
        pass

    def crashing(uow: UnitOfWork) -> None:
        _set_objects(database, 1, _objects(invoice))(uow)
        assert _indexed_in(uow, invoice)  # written in the transaction, before it fails
        raise Crash

    with pytest.raises(Crash):
        run_in_transaction(database, crashing)
    assert _indexed(database) == set()
    for objects in (_objects(invoice), _objects(invoice, invoice.upper())):
        run_in_transaction(database, _set_objects(database, 1, objects))
    assert _indexed(database) == {("firm-1", invoice, 1)}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_posters_writing_one_links_objects_at_once_on_postgres_both_commit(database_url: str) -> None:
    """Two posters (two engines) give one link the same object in overlapping transactions: the
    second waits on the first and then indexes nothing new (ON CONFLICT DO NOTHING); neither
    fails, so neither answer is lost, and the row is there once."""
    first, second = open_database(database_url), open_database(database_url)
    try:
        migrate(first)
        invoice = str(uuid.uuid4())
        _insert_links(first, [link_values(1, "firm-1", "[]")])
        written, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def slow(uow: UnitOfWork) -> None:
            _set_objects(first, 1, _objects(invoice))(uow)
            written.set()
            release.wait(5)

        def run(db: Database, work: Any) -> None:
            try:
                run_in_transaction(db, work)
            except BaseException as exc:  # reported below
                errors.append(exc)

        a = threading.Thread(target=run, args=(first, slow))
        a.start()
        assert written.wait(5)
        b = threading.Thread(target=run, args=(second, _set_objects(second, 1, _objects(invoice))))
        b.start()
        time.sleep(0.3)
        assert b.is_alive(), "the second write should wait for the first transaction"
        release.set()
        a.join(10)
        b.join(10)
        assert errors == []
        assert _indexed(first) == {("firm-1", invoice, 1)}
    finally:
        first.dispose()
        second.dispose()
