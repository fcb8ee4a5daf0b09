"""A poster that takes a tenant's lease voids the claims left on the tenant's ready entries
(`release_claims`): whoever made them died or lost the lease, and would otherwise keep them until
their claim ran out. It runs at every lease taken, which in a drain of many organisations is
every turn a worker takes, while the tenant may have a long queue: what it reads must follow the
claims left, at most a few batches, not the tenant's queue."""

from __future__ import annotations

import pytest
from sqlalchemy import Table, insert, select, text
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.outbox import ready_row
from tests.fixtures.statements import Statement, sqlite_vm_steps, statements_sent

OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
US = 1_000_000


def _fill(database: Database, first: int, count: int, tenant: str = "t1", **columns: object) -> list[int]:
    """`count` entries of `tenant` written straight, ready unless `columns` say otherwise; ids."""
    now = now_us()
    rows = [{**ready_row(tenant, "c1", n, now - US, now), **columns} for n in range(first, first + count)]
    with database.write.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(OUTBOX), rows[start : start + 5000])
        found = conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.link_id > first, OUTBOX.c.link_id <= first + count))
        return sorted(i for (i,) in found)


def _claims(database: Database, ids: list[int]) -> list[tuple[str, int]]:
    with database.read.connect() as conn:
        rows = dict(
            (i, (by, until))
            for i, by, until in conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.claimed_by, OUTBOX.c.lease_until_us).where(OUTBOX.c.id.in_(ids))
            )
        )
    return [rows[i] for i in ids]


def test_only_the_claims_on_the_tenants_ready_entries_are_voided(database: Database) -> None:
    until = now_us() + 600 * US
    claimed = _fill(database, 0, 3, claimed_by="dead", lease_until_us=until)
    unclaimed = _fill(database, 3, 2)
    others = _fill(database, 5, 2, tenant="t2", claimed_by="dead", lease_until_us=until)
    # Entries no claim can take: their claim columns are left as they were.
    waiting = _fill(database, 7, 1, state=OutboxState.WAITING, claimed_by="dead", lease_until_us=until)
    done = _fill(database, 8, 1, state=OutboxState.DONE, claimed_by="dead", lease_until_us=until)

    run_in_transaction(database, lambda uow: uow.outbox.release_claims("t1"))

    assert _claims(database, claimed + unclaimed) == [("", 0)] * 5
    assert _claims(database, others + waiting + done) == [("dead", until)] * 4
    # Voided, they are claimable at once by the new holder, longest available first.
    taken = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "new", 50, now_us(), 60 * US))
    assert [e.id for e in taken] == claimed + unclaimed


def _release_statement(database: Database) -> Statement:
    with statements_sent(database.write) as sent, UnitOfWork(database) as uow:
        uow.outbox.release_claims("t1")  # left uncommitted: rolled back
    (statement,) = [(sql, parameters) for sql, parameters in sent if sql.startswith("UPDATE outbox")]
    return statement


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_voiding_claims_costs_the_same_with_fifty_times_the_tenants_queue(database: Database) -> None:
    """Measured as the work SQLite does, which follows the rows read. The tenant's queue grows
    from 1,000 to 51,000 ready entries; 50 of them are claimed each time (a dead poster's batch)."""
    until = now_us() + 600 * US
    _fill(database, 0, 50, claimed_by="dead", lease_until_us=until)
    _fill(database, 50, 950)
    small = sqlite_vm_steps(database.write, *_release_statement(database))
    _fill(database, 1000, 50_000)
    large = sqlite_vm_steps(database.write, *_release_statement(database))
    assert large <= small + 2, (small, large)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_an_analysed_postgres_voiding_claims_reads_only_the_claimed_entries(database: Database) -> None:
    until = now_us() + 600 * US
    _fill(database, 0, 50, claimed_by="dead", lease_until_us=until)
    _fill(database, 50, 60_000)
    with database.write.begin() as conn:
        conn.execute(text("ANALYZE outbox"))
    sql, parameters = _release_statement(database)
    with database.write.connect() as conn, conn.begin() as transaction:
        plan = [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql, parameters)]
        transaction.rollback()
    assert any("ix_outbox_claimed" in step for step in plan), plan
    assert not any("Seq Scan" in step for step in plan), plan
