"""The index of the Xero objects each link holds (`link_object`, revision 0007), on SQLite and on
the real PostgreSQL server: everything the poster posts is indexed under its link in the
transaction that records it, so the link of a Xero object is found by key; a link that lets an
object go keeps its row, and the link's own list decides; and a registry upgraded from 0006 has
every object its links already held indexed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.migrations import head_revision, migrate
from xerolink_poster.adapters.repositories.links import ORPHANED
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.fixtures.registry_rows import link_values
from tests.integration.test_poster_unlink import key_of, link, post_linked, unlink


def _held_in_json(db: Database) -> set[tuple[str, str, int]]:
    with db.read.connect() as conn:
        rows = conn.execute(text("SELECT id, connection_id, xero_objects FROM link")).all()
    return {(c, o["xero_id"].lower(), i) for i, c, objects in rows for o in json.loads(objects) if o.get("xero_id")}


def _indexed(db: Database) -> set[tuple[str, str, int]]:
    with db.read.connect() as conn:
        return {(c, x, i) for c, x, i in conn.execute(text("SELECT connection_id, xero_id, link_id FROM link_object"))}


def test_every_object_posted_is_indexed_under_its_link(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    names = []
    for base in (3100, 3200):
        sample = samples.sample_transactions(base)
        for name in ("client_bill", "client_bill_payment", "supplier_bill", "trust_deposit", "credit_note"):
            if name in sample:
                posted = stub.PostTransaction(
                    poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=sample[name])
                )
                names.append(posted.posting.name)
    for name in names:
        assert wait_settled(stub, name).state == poster_pb2.LINK_STATE_LINKED, name
    held = _held_in_json(app.db)
    assert len({link_id for _, _, link_id in held}) == len(names)  # every record's objects
    assert _indexed(app.db) == held


def test_a_reposted_record_is_found_by_its_new_object_and_not_by_its_orphan(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bill = samples.sample_transactions(3300)["client_bill"]
    post_linked(stub, bill)
    first = link(stub, key_of(bill)).xero_objects[0].xero_id
    unlink(stub, key_of(bill), confirm=True)
    bill.client_bill.bill_number += "-R"
    post_linked(stub, bill)
    second = link(stub, key_of(bill)).xero_objects[0].xero_id
    assert second != first

    # The orphan keeps its row; the link's own list no longer names it.
    assert _indexed(app.db) >= _held_in_json(app.db)
    assert any(x == first.lower() for _, x, _ in _indexed(app.db))
    with UnitOfWork(app.db, write=False) as uow:
        assert uow.links.link_holding("firm-1", first) is None
        holding = uow.links.link_holding("firm-1", second.upper())
        assert holding is not None and holding.record_id == bill.header.id
        # The orphan is held as an orphan; the new object by its link, unless that link asks.
        assert uow.links.held_xero_ids("firm-1", [first, second], except_link_id=0) == {first, second}
        assert uow.links.held_xero_ids("firm-1", [second], except_link_id=holding.id or 0) == set()
        # For a look-up's every record at once: each id with who holds it, as asked.
        assert uow.links.holders("firm-1", [first, second.upper(), "no-such-id"]) == {
            first: {ORPHANED},
            second.upper(): {holding.id},
        }
        assert uow.links.link_holding("firm-2", second) is None


@pytest.mark.empty_registry
def test_revision_0007_indexes_every_object_the_links_already_held(database_url: str) -> None:
    db = open_database(database_url)
    try:
        migrate(db, "0006")
        invoice, payment = "5D8E1E6C-0001-4A8B-9C1D-AAAAAAAAAAAA", "0f1e2d3c-0002-4a8b-9c1d-bbbbbbbbbbbb"
        links = [
            link_values(1, "firm-1", f'[{{"type": 1, "xero_id": "{invoice}", "local_ref": "inv", "number": "7"}}]'),
            link_values(2, "firm-1", "[]"),
            # Two objects; and the same object id under another connection's link.
            link_values(
                3,
                "firm-1",
                f'[{{"type": 1, "xero_id": "{payment}", "local_ref": "a"}}, '
                f'{{"type": 2, "xero_id": "{payment.replace("0002", "0003")}", "local_ref": "b"}}]',
            ),
            link_values(4, "firm-2", f'[{{"type": 1, "xero_id": "{invoice}", "local_ref": "inv"}}]'),
            # What an early version wrote names no Xero id: nothing to index.
            link_values(5, "firm-2", '[{"type": 1, "id": "inv-1"}]'),
            # Nor does a value that is not a list of objects, as a hand edit might leave.
            link_values(6, "firm-2", "not json"),
            link_values(7, "firm-2", '{"xero_id": "x"}'),
            link_values(8, "firm-2", '[null, 1, {"xero_id": ""}]'),
        ]
        # More links than one batch of the revision's fill.
        links += [
            link_values(10 + n, "firm-3", f'[{{"type": 1, "xero_id": "id-{n:05d}", "local_ref": "x"}}]')
            for n in range(4500)
        ]
        columns = ", ".join(links[0])
        values = ", ".join(f":{name}" for name in links[0])
        with db.write.begin() as conn:
            conn.execute(text(f"INSERT INTO link ({columns}) VALUES ({values})"), links)

        assert migrate(db) == head_revision()

        indexed = _indexed(db)
        assert {row for row in indexed if row[0] != "firm-3"} == {
            ("firm-1", invoice.lower(), 1),
            ("firm-1", payment, 3),
            ("firm-1", payment.replace("0002", "0003"), 3),
            ("firm-2", invoice.lower(), 4),
        }
        assert {row for row in indexed if row[0] == "firm-3"} == {
            ("firm-3", f"id-{n:05d}", 10 + n) for n in range(4500)
        }
    finally:
        db.dispose()
