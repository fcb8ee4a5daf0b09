"""Several Xero calls' answers applied in one transaction (dispatch/answer_groups.py), on both
registries: calls whose answers arrive while a group is being applied share the next transaction;
each call returns only once its rows are committed; a call whose answers cannot be applied fails
alone; two calls answering for one entry never share a transaction.

The first call's transaction is held at its first statement until the others have queued, so the
grouping does not depend on how the threads are scheduled."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer.dispatch.answer_groups import AnswerGroups
from xerolink_poster.service_layer.outcomes import ElementResult
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.attack import test_answers_as_values_attacks as A
from tests.fixtures.poster import counted_commits, wait_for
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection

HOLDER = "poster-a"
ACTOR = f"dispatcher:{HOLDER}"
INVOICE = 1


@dataclass(frozen=True)
class Unwritable(XeroObjectRef):
    """An object whose answer cannot be stored: applying it raises inside the transaction."""

    def to_json(self) -> dict[str, object]:
        raise ValueError("this answer cannot be stored")


def _entries(database: Database, records: list[tuple[str, int]]) -> dict[int, int]:
    """A pending link and its entry, claimed by HOLDER and marked uncertain as before a call, for
    each (connection, record id): record id -> outbox id."""

    def fill(uow: UnitOfWork) -> dict[int, int]:
        for connection_id, tenant in (("c1", "t1"), ("c2", "t2")):
            uow.connections.add_connection(unreachable_connection(connection_id, tenant))
        out = {}
        for connection_id, record_id in records:
            link = link_with_posting(uow, record_id, connection_id)
            uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
            row = OutboxRow(
                tenant_id="t1" if connection_id == "c1" else "t2",
                connection_id=connection_id,
                link_id=link.id or 0,
                posting_id=link.posting_id,
                operations=b"",
                state=OutboxState.READY,
                available_us=0,
                claimed_by=HOLDER,
                lease_until_us=now_us() + 600_000_000,
                uncertain=True,
                create_us=now_us(),
            )
            out[record_id] = uow.outbox.add_outbox(True, row).id or 0
        return out

    return run_in_transaction(database, fill)


def _created(outbox_id: int, record_id: int, ref: type[XeroObjectRef] = XeroObjectRef) -> ElementResult:
    return ElementResult(outbox_id, created=ref(INVOICE, f"00000000-0000-0000-0000-{record_id:012d}", ""))


def _rejected(outbox_id: int) -> ElementResult:
    return ElementResult(outbox_id, rejected=("Xero refused it", ["Invoice # must be unique."]))


def _state(database: Database, connection_id: str, record_id: int, outbox_id: int) -> tuple[str, list[str], bool, str]:
    """The link's state, its dispatcher's audit events, and its entry's uncertain mark and claimer."""
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link(connection_id, RecordRef(INVOICE, record_id))
        entry = uow.outbox.get_outbox(outbox_id)
        assert link is not None and entry is not None and entry.link_id == link.id
        events = [a.event for a in uow.links.audit(link.id or 0) if a.actor == ACTOR]
        return link.state, events, entry.uncertain, entry.claimed_by


@contextmanager
def _first_held_until(database: Database, groups: AnswerGroups, queued: int) -> Iterator[threading.Event]:
    """The first transaction's first statement waits until `queued` calls wait behind it; the
    event is set once it waits."""
    entered = threading.Event()

    def hold(*_: Any) -> None:
        if not entered.is_set():
            entered.set()
            wait_for(lambda: groups.waiting >= queued, timeout=10, what=f"{queued} calls queued")

    event.listen(database.write, "before_cursor_execute", hold)
    try:
        yield entered
    finally:
        event.remove(database.write, "before_cursor_execute", hold)


def _calls(
    groups: AnswerGroups,
    entered: threading.Event,
    calls: list[list[ElementResult]],
    after: Callable[[int], Any] = lambda _: None,
) -> dict[int, Any]:
    """Applies each call's answers in a thread of its own, the first one first; each call's
    outcome: what `after` saw as it returned, or the error it raised."""
    outcomes: dict[int, Any] = {}

    def call(index: int) -> None:
        try:
            groups.apply(calls[index])
            outcomes[index] = after(index)
        except Exception as exc:
            outcomes[index] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert entered.wait(10), "the first call never led"
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, len(calls))]
    for t in others:
        t.start()
    for t in (first, *others):
        t.join(timeout=30)
    return outcomes


def test_answers_of_calls_that_arrive_together_share_one_transaction_and_return_committed(
    database: Database,
) -> None:
    records = [("c1", 1), ("c1", 2), ("c2", 3), ("c2", 4), ("c1", 5), ("c2", 6), ("c1", 7), ("c2", 8)]
    ids = _entries(database, records)
    calls = [[_created(ids[r], r) for _, r in records[i : i + 2]] for i in range(0, 8, 2)]
    groups = AnswerGroups(database, HOLDER, ACTOR)

    def seen_on_return(index: int) -> list[str]:
        # Read by another session as the call returns: its commit is done by then.
        return [_state(database, c, r, ids[r])[0] for c, r in records[2 * index : 2 * index + 2]]

    with counted_commits(database) as commits, _first_held_until(database, groups, queued=3) as entered:
        outcomes = _calls(groups, entered, calls, seen_on_return)

    assert outcomes == {i: [LinkState.LINKED, LinkState.LINKED] for i in range(4)}
    assert len(commits) == 2  # the first call alone, then the three that queued behind it
    assert groups.figures == (2, 4, 3)
    for connection_id, record_id in records:
        assert _state(database, connection_id, record_id, ids[record_id]) == (
            LinkState.LINKED,
            [Event.POSTED],
            False,
            "",
        )


def test_a_call_whose_answers_cannot_be_applied_fails_alone_and_the_others_are_applied(database: Database) -> None:
    records = [("c1", 11), ("c1", 12), ("c2", 13), ("c1", 14)]
    ids = _entries(database, records)
    calls = [
        [_created(ids[11], 11)],
        [_created(ids[12], 12)],
        [_created(ids[13], 13, Unwritable)],
        [_created(ids[14], 14)],
    ]
    groups = AnswerGroups(database, HOLDER, ACTOR)

    with counted_commits(database) as commits, _first_held_until(database, groups, queued=3) as entered:
        outcomes = _calls(groups, entered, calls)

    assert [outcomes[i] for i in (0, 1, 3)] == [None, None, None]
    assert isinstance(outcomes[2], ValueError)
    assert len(commits) == 3  # the first; the group of three rolled back; the two good ones alone
    for record_id in (11, 12, 14):
        assert _state(database, "c1", record_id, ids[record_id]) == (LinkState.LINKED, [Event.POSTED], False, "")
    # Nothing of the failed call is written: its entry stays claimed and uncertain, for the
    # dispatcher's failure path (a retry that looks the object up first).
    assert _state(database, "c2", 13, ids[13]) == (LinkState.PENDING, [], True, HOLDER)


def test_two_calls_answering_for_one_entry_are_applied_one_after_the_other(database: Database) -> None:
    """A late second answer for an entry (created, then refused) is applied after the first one's
    commit, so it finds the entry no longer held and is dropped: the link is posted once and
    never also refused."""
    records = [("c1", 21), ("c1", 22), ("c2", 23)]
    ids = _entries(database, records)
    calls = [[_created(ids[22], 22)], [_created(ids[21], 21)], [_rejected(ids[21]), _created(ids[23], 23)]]
    groups = AnswerGroups(database, HOLDER, ACTOR)

    with counted_commits(database) as commits, _first_held_until(database, groups, queued=2) as entered:
        outcomes = _calls(groups, entered, calls)

    assert outcomes == {0: None, 1: None, 2: None}
    assert _state(database, "c1", 21, ids[21]) == (LinkState.LINKED, [Event.POSTED], False, "")
    assert _state(database, "c2", 23, ids[23]) == (LinkState.LINKED, [Event.POSTED], False, "")
    assert len(commits) == 3


# -- one transaction for several organisations' answers -------------------------------------------


def test_answers_of_several_organisations_take_the_statements_of_one(database: Database) -> None:
    """A group's transaction mixes organisations: the snapshots that exist are read, the new ones
    inserted and the records' waiters looked for once for all of them, not once per connection."""
    records = {"one": [("c1", n) for n in (31, 32, 33, 34)], "several": [(c, n) for c, n in (("c1", 35), ("c2", 36))]}
    records["several"] += [("c2", 37), ("c1", 38)]

    def build(uow: UnitOfWork) -> dict[int, int]:
        return {n: A._entry(uow, A._link(uow, n, c)) for c, n in records["one"] + records["several"]}

    ids = A._fill(database, build)
    statements: dict[str, list[str]] = {}
    for name, batch in records.items():
        seen = statements.setdefault(name, [])

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any, seen: list[str] = seen) -> None:
            seen.append(statement.split(maxsplit=1)[0])

        event.listen(database.write, "before_cursor_execute", count)
        try:
            A._apply(
                database,
                [
                    A._created(ids[n], [XeroObjectRef(ObjectType.INVOICE, A._uuid(n), "inv")], A._invoice(n))
                    for _, n in batch
                ],
            )
        finally:
            event.remove(database.write, "before_cursor_execute", count)

    assert [A._read(database, n, c).state for c, n in records["several"]] == [LinkState.LINKED] * 4
    assert set(A._snapshots(database, "c2", [A._uuid(36), A._uuid(37)])) == {A._uuid(36), A._uuid(37)}
    assert len(statements["several"]) == len(statements["one"]), statements


def test_a_payment_in_a_mixed_transaction_is_expected_only_on_its_own_organisations_invoice(
    database: Database,
) -> None:
    """Snapshots are the registry's per connection: read for several organisations at once, a
    payment of c2's invoice must update c2's snapshot of it, never c1's snapshot of an object
    under the same id, and a new invoice of c1 answered beside it keeps its own document."""
    invoice, paid = A._uuid(41), A._uuid(42)

    def build(uow: UnitOfWork) -> dict[str, int]:
        return {
            "c1 invoice": A._entry(uow, A._link(uow, 41, "c1")),
            "c2 invoice": A._entry(uow, A._link(uow, 41, "c2")),
            "c2 payment": A._entry(uow, A._link(uow, 42, "c2")),
            "c1 other": A._entry(uow, A._link(uow, 43, "c1")),
        }

    ids = A._fill(database, build)
    ref = XeroObjectRef(ObjectType.INVOICE, invoice, "inv")
    A._apply(database, [A._created(ids["c1 invoice"], [ref], A._invoice(41))])
    A._apply(database, [A._created(ids["c2 invoice"], [ref], A._invoice(41))])
    A._apply(
        database,
        [
            A._created(
                ids["c2 payment"], [XeroObjectRef(ObjectType.PAYMENT, paid, "pay")], A._payment(paid, invoice, "5")
            ),
            A._created(ids["c1 other"], [XeroObjectRef(ObjectType.INVOICE, A._uuid(43), "inv")], A._invoice(43)),
        ],
    )

    assert A._snapshots(database, "c2", [invoice])[invoice][3]["Payments"] == [{"PaymentID": paid, "Amount": "5.00"}]
    assert A._snapshots(database, "c1", [invoice])[invoice][3].get("Payments") in (None, [])
    assert A._uuid(43) in A._snapshots(database, "c1", [A._uuid(43)])
    assert paid in A._snapshots(database, "c2", [paid])
