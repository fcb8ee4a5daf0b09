"""SQLite's plans for every statement a poster runs to accept Posts and drain them to Xero.

SQLite plans without statistics (the registry never runs ANALYZE), so a statement's plan follows
from the schema and the shape of its WHERE clause alone, and a statement that reads far more rows
than it needs does so at any size: it only shows as a cost that grows with the backlog. Each of
these was found that way, in statements run for every Xero call or every answer: the uncertain
mark read every ready entry of every tenant along `ix_outbox_done (state=?)`, the waiters of the
linked records every wait of the connection, and the purge sorted every expired entry. Here a
poster accepts bills and payments (some waiting for their bill), drains them to the emulator, and
every distinct statement it ran is planned again: none may scan a table that grows with the
work, sort such a table's rows, or search one by `state` or by connection alone, except the reads
listed below, which are meant to."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import drift_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database

from tests.fixtures.poster import PosterFactory, connect, settings, stub_for, wait_for, wait_settled, xero_objects
from tests.fixtures.statements import query_plan, statements_sent
from tests.integration.test_poster_webhooks import delivery, event, events_in, hooks, linked_bill, send

# Tables whose rows grow with the work accepted: a plan may only seek them by key.
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
GROWING = ("outbox", "link", "posting", "link_audit", "dependency_wait", "xero_snapshot", "contact_link", "link_object")
# Reads that take every row of a state on purpose, each bounded by what it is for.
MEANT = {
    # The tenant poll's first hop takes the first tenant of the ready entries in index order.
    "WITH RECURSIVE tenants": "the first hop of the loose index scan (LIMIT 1)",
    # The safety net takes the waiting entries, as it must (docs/benchmarks.md names its cost).
    "WHERE outbox.state = ? AND (outbox.id NOT IN": "the waiting entries whose waits are all linked",
}


@contextmanager
def statements_of(db: Database) -> Iterator[dict[str, Any]]:
    """Every distinct statement sent to the driver while inside, with its first parameters."""
    distinct: dict[str, Any] = {}
    with statements_sent(db.write, db.read) as sent:
        yield distinct
    for sql, parameters in sent:
        distinct.setdefault(sql, parameters)


def misreads(plan: list[str], tables: tuple[str, ...] = GROWING) -> list[str]:
    growing = "|".join(tables)
    return [
        step
        for step in plan
        if re.match(rf"SCAN ({growing})\b", step)
        or (re.match(rf"SEARCH ({growing})\b", step) and re.search(r"\((state|connection_id)=\?\)$", step))
        # Nearly every wait is of one kind (payments waiting for their bill): by kind is by connection.
        or (re.match(r"SEARCH dependency_wait\b", step) and step.endswith("(connection_id=? AND kind=?)"))
        or ("TEMP B-TREE" in step and re.search(rf"\b({growing})\b", " ".join(plan)))
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_statement_of_accepting_and_draining_seeks_the_growing_tables_by_key(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory(settings(outbox_retention=0.0, purge_interval=0.05))
    stub = stub_for(app)
    with statements_of(app.db) as seen:
        connect(stub, emulator)
        # Enough bills at once for calls of several elements: SQLite picks the state index over
        # the primary key for an IN of five ids or more.
        bills = [samples.client_bill(5000 + n) for n in range(12)]
        batch = stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=bills)
        )
        postings = [result.posting.name for result in batch.results]
        for base in (900, 1900):
            sample = samples.sample_transactions(base)
            # The payment first: it waits for its bill, which then releases it.
            for name in ("client_bill_payment", "client_bill", "supplier_bill", "trust_deposit"):
                if name in sample:
                    posted = stub.PostTransaction(
                        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=sample[name])
                    )
                    postings.append(posted.posting.name)
        for name in postings:
            assert wait_settled(stub, name).state == poster_pb2.LINK_STATE_LINKED, name
        assert app.dispatcher is not None
        app.dispatcher.purge_done_outbox()
    assert any(sql.startswith("UPDATE outbox SET") and "uncertain" in sql for sql in seen), "no create call ran"
    assert any("dependency_wait" in sql for sql in seen), "no entry waited"
    found = {}
    with app.db.read.connect() as conn:
        for sql, parameters in seen.items():
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH")):
                continue
            if any(marker in sql for marker in MEANT):
                continue
            plan = query_plan(conn, sql, parameters)
            if misreads(plan):
                found[" ".join(sql.split())[:200]] = plan
    assert not found, "\n".join(f"{sql}\n    {plan}" for sql, plan in found.items())


# What a poster stores of Xero's webhooks and what processing them writes grows with the events.
GROWING_WITH_EVENTS = (*GROWING, "webhook_event", "drift", "link_object")
MEANT_FOR_EVENTS = {
    # The worker takes the oldest pending events, a batch at a time, in index order.
    "WHERE webhook_event.state = ? ORDER BY webhook_event.id": "the oldest pending events (LIMIT)",
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_statement_of_storing_and_processing_webhooks_seeks_the_growing_tables_by_key(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """A delivery's events are stored and processed, a read of Xero for each object ours: the
    statements that find an object's pending events, close them and record what was read must
    not read every pending event, or processing a backlog of N events reads N^2 rows."""
    app = poster_factory(webhooks=hooks())
    tenant, invoice = linked_bill(stub_for(app), emulator)
    (client,) = {o["Contact"]["ContactID"] for o in xero_objects(emulator, tenant, "Invoices")}
    with statements_of(app.db) as seen:
        body = delivery(
            event(tenant, invoice, when="2026-07-01T10:00:00.000"),
            event(tenant, invoice, when="2026-07-01T10:05:00.000"),
            event(tenant, str(uuid.uuid4())),  # an invoice someone else made in Xero
            event(tenant, client, category="CONTACT"),
        )
        assert send(app, body).status_code == 200
        wait_for(lambda: all(e.state != "pending" for e in events_in(database_url)))
    assert any("FROM webhook_event" in sql and "resource_id" in sql for sql in seen), "no object's events read"
    found = {}
    with app.db.read.connect() as conn:
        for sql, parameters in seen.items():
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH")):
                continue
            if any(marker in sql for marker in MEANT_FOR_EVENTS):
                continue
            plan = query_plan(conn, sql, parameters)
            if misreads(plan, GROWING_WITH_EVENTS):
                found[" ".join(sql.split())[:200]] = plan
    assert not found, "\n".join(f"{sql}\n    {plan}" for sql, plan in found.items())


def pages(call: Callable[[Any], Any], request: Any, items: str) -> list[Any]:
    """Every item of a listing, a page of two at a time."""
    found: list[Any] = []
    while True:
        page = call(request)
        found.extend(getattr(page, items))
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_of_the_listings_reads_the_growing_tables_in_index_order(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """ListLinks, ListPostings, ListOrphans and ListDrift, page by page with each filter: a page
    that sorts the connection's rows (a TEMP B-TREE) or scans a table costs the whole
    connection's rows for every page, so listing a firm's links reads them pages-many times."""
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bills = [samples.client_bill(6000 + n) for n in range(5)]
    batch = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=bills)
    )
    for result in batch.results:
        assert wait_settled(stub, result.posting.name).state == poster_pb2.LINK_STATE_LINKED
    invoice = (
        stub.GetLink(
            poster_pb2.GetLinkRequest(
                connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=bills[0].header.id)
            )
        )
        .link.xero_objects[0]
        .xero_id
    )
    stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(
            connection_id="firm-1", records=[common_pb2.RecordKey(kind=BILL, id=bills[1].header.id)], confirm=True
        )
    )
    # Only the listings' own statements: a round of the dispatcher falling inside the window (its
    # sweep of waiting entries among them) was caught with them.
    assert app.dispatcher is not None
    app.dispatcher.stop()
    links = poster_pb2.ListLinksRequest
    with statements_of(app.db) as seen:
        for request in (
            links(connection_id="firm-1", page_size=2),
            links(connection_id="firm-1", page_size=2, state=poster_pb2.LINK_STATE_LINKED),
            links(connection_id="firm-1", page_size=2, kinds=[BILL]),
            links(connection_id="firm-1", page_size=2, xero_id=invoice),
            links(connection_id="firm-1", page_size=2, drifted=True),
        ):
            pages(stub.ListLinks, request, "links")
        for state in (poster_pb2.LINK_STATE_UNSPECIFIED, poster_pb2.LINK_STATE_LINKED):
            pages(
                stub.ListPostings,
                poster_pb2.ListPostingsRequest(connection_id="firm-1", page_size=2, state=state),
                "postings",
            )
        pages(stub.ListOrphans, unlink_pb2.ListOrphansRequest(connection_id="firm-1", page_size=2), "orphans")
        pages(stub.ListDrift, drift_pb2.ListDriftRequest(connection_id="firm-1", page_size=2), "drifts")
    found = {}
    with app.db.read.connect() as conn:
        for sql, parameters in seen.items():
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            if "FROM drift WHERE drift.link_id IN" in " ".join(sql.split()):
                continue  # the open drift of one page's links, sorted: a few rows, not the connection's
            plan = query_plan(conn, sql, parameters)
            if any(
                "TEMP B-TREE" in step or re.match(rf"SCAN ({'|'.join(GROWING_WITH_EVENTS)})\b", step) for step in plan
            ):
                found[" ".join(sql.split())[-250:]] = plan
    assert not found, "\n".join(f"{sql}\n    {plan}" for sql, plan in found.items())
