"""Outbox retention, on SQLite and on PostgreSQL: done entries past the retention age are
deleted in small batches by the dispatcher, while open entries and everything a caller reads
(postings, links, the audit trail) stay."""

from __future__ import annotations

import dataclasses
from collections import Counter

from sqlalchemy import func, select
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.tables import DependencyWaitRow, OutboxRow

from tests.fixtures.poster import PosterFactory, connect, settings, stub_for, wait_for, wait_settled

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


def outbox_states(db: Database) -> Counter[str]:
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    with db.read.connect() as conn:
        return Counter({s: n for s, n in conn.execute(select(table.c.state, func.count()).group_by(table.c.state))})


def waits(db: Database) -> int:
    with db.read.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DependencyWaitRow.__table__)).scalar_one())  # type: ignore[attr-defined]


def test_done_entries_past_retention_are_deleted_and_what_callers_read_stays(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory(settings(outbox_retention=3600.0, purge_interval=0.05, purge_batch=2))
    assert app.dispatcher is not None
    stub = stub_for(app)
    connect(stub, emulator)
    postings = [
        stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(record))
        ).posting
        for record in range(1, 6)
    ]
    # A payment of a bill never posted: its entry waits, open, whatever its age.
    payment = samples.sample_transactions(900)["client_bill_payment"]
    stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=payment))
    for posting in postings:
        assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    wait_for(lambda: outbox_states(app.db) == Counter({"done": 5, "waiting": 1}))
    assert app.dispatcher.purge_done_outbox() == 0  # younger than the retention: kept

    app.dispatcher.settings = dataclasses.replace(app.dispatcher.settings, outbox_retention=0.0)

    wait_for(lambda: outbox_states(app.db) == Counter({"waiting": 1}))
    assert waits(app.db) == 1
    for posting in postings:
        read = stub.GetPosting(poster_pb2.GetPostingRequest(name=posting.name)).posting
        assert read.state == poster_pb2.LINK_STATE_LINKED and read.link.xero_objects
        link = stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", record=read.record, include_audit=True)
        ).link
        assert [entry.to_state for entry in link.audit][-1] == poster_pb2.LINK_STATE_LINKED
    listed = stub.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1", page_size=50)).postings
    assert len(listed) == 6
