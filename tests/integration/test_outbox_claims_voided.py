"""A poster that takes a tenant's lease from a holder that did not hand it back voids the claims
left on the tenant's ready entries (`release_claims`): whoever made them died or lost the lease,
and would otherwise keep them until their claim ran out. Voiding reads every ready entry of the
tenant, and a lease is taken at every turn a worker takes in a drain of many organisations, so a
lease handed back (no claim of its holder in flight) is taken without it (`take_lease`)."""

from __future__ import annotations

from sqlalchemy import Table, insert, select
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.dispatch.leasing import take_lease
from xerolink_poster.service_layer.unit_of_work import run_in_transaction

from tests.fixtures.outbox import ready_row
from tests.fixtures.statements import statements_sent

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


def _take(database: Database, holder: str, now: int, ttl_us: int = 30 * US) -> tuple[bool, list[str]]:
    """`holder` takes t1's lease as a dispatcher does: whether it got it, and the statements sent."""
    with statements_sent(database.write) as sent:
        lease = run_in_transaction(database, lambda uow: take_lease(uow, "t1", holder, now, ttl_us))
    return lease is not None, [" ".join(sql.split()) for sql, _ in sent]


def _claimed_under_a_lease(database: Database, holder: str, now: int, ttl_us: int = 30 * US) -> list[int]:
    """`holder` takes t1's lease and claims its 50 entries, as a worker's first batch."""
    _fill(database, 0, 50)
    assert _take(database, holder, now, ttl_us)[0]
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", holder, 50, now, 600 * US))
    return [e.id for e in claimed]


def test_a_lease_handed_back_is_taken_without_reading_the_tenants_queue(database: Database) -> None:
    """A worker hands its tenant back once its jobs have ended, so no claim of it is in flight:
    the next holder takes the lease without voiding, which would read every ready entry of the
    tenant at every turn. A claim left anyway (its holder could not record a failure) is taken
    again once it runs out, as before."""
    now = now_us()
    ids = _claimed_under_a_lease(database, "old", now)
    _fill(database, 50, 5_000)
    run_in_transaction(database, lambda uow: uow.leases.release_lease("t1", "old"))

    taken, sent = _take(database, "new", now + US)

    assert taken
    assert not [sql for sql in sent if "outbox" in sql], sent
    assert _claims(database, ids) == [("old", now + 600 * US)] * 50


def test_a_lease_that_ran_out_has_its_holders_claims_voided(database: Database) -> None:
    """Its holder died or was paused past it, and will never finish its batch: the new holder
    voids the claims and may claim the entries at once (their uncertain mark, if any, makes it
    look them up before creating)."""
    now = now_us()
    ids = _claimed_under_a_lease(database, "dead", now, ttl_us=5 * US)

    taken, _ = _take(database, "new", now + 6 * US)

    assert taken
    assert _claims(database, ids) == [("", 0)] * 50
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "new", 50, now + 6 * US, 60 * US))
    assert [e.id for e in claimed] == ids


def test_a_tenant_never_leased_has_its_claims_voided(database: Database) -> None:
    """No lease row says the claims' holder handed them back (a registry restored without its
    leases, or claims written by hand): they are voided."""
    until = now_us() + 600 * US
    ids = _fill(database, 0, 3, claimed_by="someone", lease_until_us=until)

    taken, _ = _take(database, "new", now_us())

    assert taken
    assert _claims(database, ids) == [("", 0)] * 3


def test_a_lease_another_poster_holds_is_not_taken_and_its_claims_stay(database: Database) -> None:
    now = now_us()
    ids = _claimed_under_a_lease(database, "live", now)

    taken, _ = _take(database, "new", now + US)

    assert not taken
    assert _claims(database, ids) == [("live", now + 600 * US)] * 50


def test_a_holder_taking_back_the_lease_it_lost_voids_its_own_claims(database: Database) -> None:
    """A poster paused past its lease takes it again (nobody took it meanwhile): its old batch is
    not in flight any more as far as its new worker knows, so the claims are voided too."""
    now = now_us()
    ids = _claimed_under_a_lease(database, "p", now, ttl_us=5 * US)

    taken, _ = _take(database, "p", now + 6 * US)

    assert taken
    assert _claims(database, ids) == [("", 0)] * 50
