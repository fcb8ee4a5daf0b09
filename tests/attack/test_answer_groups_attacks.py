"""Attacks on applying several Xero calls' answers in one transaction (dispatch/answer_groups.py on
service_layer/group_commit.py), from outside and on both registries: many threads at once, late
duplicates of one entry queued apart (A, B, A') and within one call, a group mixing tenants,
reclaimed entries, a reposted link, waiters and a refused trust half, a group that fails only when
applied together, a conflict run again, a registry that fails every write, a commit that went
through and still raised, an interrupt while a group is applied, a caller holding a write unit of
work, and the figures the bench prints. Each test states what must hold and fails while it does
not.

The rows and answers are built as in tests/attack/test_answers_as_values_attacks.py. To make a
group deterministic, the first call's transaction is held before it opens (answer_groups'
run_in_transaction wrapped) until the other calls are queued, one at a time in the order given."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.exc import InterfaceError, OperationalError
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer.dispatch import answer_groups
from xerolink_poster.service_layer.dispatch.answer_groups import MAX_CALLS, AnswerGroups
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.attack.test_answers_as_values_attacks import (
    ACTOR,
    HOLDER,
    OTHER,
    Stored,
    _dispatcher_audit,
    _entry,
    _entry_row,
    _fill,
    _invoice,
    _link,
    _read,
    _uuid,
    _waiting,
)
from tests.attack.test_answers_as_values_attacks import _created as _created_element
from tests.attack.test_answers_as_values_attacks import _rejected as _rejected_element
from tests.fixtures.poster import counted_commits, wait_for

Call = list[ElementResult]
RunTransaction = Callable[..., Any]


def _created(outbox_id: int, record_id: int, local_ref: str = "inv", note: str = "") -> ElementResult:
    """Xero created the record's invoice (with its drift document, as Results.write builds it)."""
    ref = XeroObjectRef(ObjectType.INVOICE, _uuid(record_id), local_ref)
    return _created_element(outbox_id, [ref], _invoice(record_id), note=note)


def _rejected(outbox_id: int, why: str = "Invoice # must be unique.") -> ElementResult:
    return _rejected_element(outbox_id, why)


def _events(stored: Stored) -> list[str]:
    """The dispatcher's audit events on the link."""
    return [a[1] for a in _dispatcher_audit(stored)]


# -- driving the queue ------------------------------------------------------------------------------


@dataclass
class Hold:
    """The first transaction AnswerGroups runs: `entered` once its leader is in it, held before
    its unit of work opens (no writer taken) until `go` is set."""

    entered: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)

    def set(self) -> None:
        self.go.set()


def _hold_first_transaction(monkeypatch: pytest.MonkeyPatch) -> Hold:
    hold = Hold()
    real: RunTransaction = run_in_transaction
    armed = [True]

    def held(db: Database, work: Callable[[UnitOfWork], Any], attempts: int = 5) -> Any:
        if armed:
            armed.clear()
            hold.entered.set()
            assert hold.go.wait(60), "the first call was never let go"
        return real(db, work, attempts)

    monkeypatch.setattr(answer_groups, "run_in_transaction", held)
    return hold


def _queued(
    groups: AnswerGroups,
    hold: Hold,
    calls: Sequence[Call],
    after: Callable[[int], Any] = lambda _: None,
    before_release: Callable[[], None] = lambda: None,
) -> dict[int, Any]:
    """Call 0 leads (held), calls 1.. queue behind it in order, then all go. Each call's outcome:
    what `after` saw as it returned, or what it raised (BaseException included)."""
    outcomes: dict[int, Any] = {}

    def call(index: int) -> None:
        try:
            groups.apply(calls[index])
            outcomes[index] = after(index)
        except BaseException as exc:  # an interrupt is an outcome here too
            outcomes[index] = exc

    threads = [threading.Thread(target=call, args=(0,), daemon=True)]
    threads[0].start()
    assert hold.entered.wait(10), "the first call never led"
    for index in range(1, len(calls)):
        thread = threading.Thread(target=call, args=(index,), daemon=True)
        thread.start()
        threads.append(thread)
        _wait_queued(groups, index)
    before_release()
    hold.set()
    for thread in threads:
        thread.join(timeout=60)
    stuck = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, f"calls {stuck} never returned"
    return outcomes


def _wait_queued(groups: AnswerGroups, count: int) -> None:
    wait_for(lambda: groups.waiting >= count, timeout=10, what=f"{count} calls queued")


def _pending(database: Database, records: Sequence[int], connection_id: str = "c1") -> dict[int, int]:
    """A pending link and its entry, claimed by HOLDER and marked uncertain, per record: record ->
    outbox id."""
    ids: dict[int, int] = _fill(database, lambda uow: {n: _entry(uow, _link(uow, n, connection_id)) for n in records})
    return ids


def _untouched(stored: Stored) -> bool:
    return stored.state == LinkState.PENDING and stored.attempts == 0 and not _events(stored)


# -- many threads ---------------------------------------------------------------------------------


def test_fifty_threads_at_once_each_return_after_their_rows_commit_and_no_entry_is_applied_twice(
    database: Database,
) -> None:
    """Fifty calls of two tenants applied from fifty threads at once, some refusals, some entries
    another poster holds, and some calls carrying a late contrary answer for the previous call's
    entry. Each call returns only once its rows are read committed by another session; every
    entry this poster holds is applied exactly once (one posted or refused audit row, one
    attempt), and none another poster holds is touched; no call waits for ever, nothing is left
    queued, and no transaction took more calls than the bound."""
    n = 50
    records = {i: 3000 + i for i in range(n)}
    connection = {i: "c1" if i % 2 == 0 else "c2" for i in range(n)}
    others = {i for i in range(n) if i % 7 == 3}

    def build(uow: UnitOfWork) -> dict[int, int]:
        return {
            i: _entry(uow, _link(uow, records[i], connection[i]), claimed_by=OTHER if i in others else HOLDER)
            for i in range(n)
        }

    ids: dict[int, int] = _fill(database, build)
    calls: list[Call] = []
    late: dict[int, int] = {}  # call -> the call whose entry it answers again
    for i in range(n):
        own = _rejected(ids[i]) if i % 5 == 0 else _created(ids[i], records[i])
        answers = [own]
        if i % 4 == 3:
            late[i] = i - 1
            previous = i - 1
            answers.append(
                _created(ids[previous], records[previous]) if previous % 5 == 0 else _rejected(ids[previous])
            )
        calls.append(answers)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    start = threading.Barrier(n)
    outcomes: dict[int, Any] = {}

    def seen_committed(i: int) -> list[tuple[str, str]]:
        return [(row.state, row.claimed_by) for row in (_entry_row(database, r.outbox_id) for r in calls[i])]

    def call(i: int) -> None:
        start.wait(10)
        try:
            groups.apply(calls[i])
            outcomes[i] = seen_committed(i)
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not [i for i, t in enumerate(threads) if t.is_alive()], "some calls never returned"

    for i in range(n):
        expected = [
            (OutboxState.READY, OTHER) if j in others else (OutboxState.DONE, "")
            for j in [i, *([late[i]] if i in late else [])]
        ]
        assert outcomes[i] == expected, f"call {i} returned before its rows were committed, or failed: {outcomes[i]}"
    for i in range(n):
        stored = _read(database, records[i], connection[i])
        if i in others:
            assert _untouched(stored), f"record {records[i]} held by another poster was changed: {stored}"
            assert _entry_row(database, ids[i]).claimed_by == OTHER
            continue
        events = _events(stored)
        assert len(events) == 1, f"record {records[i]} applied {len(events)} times: {events}"
        assert stored.attempts == 1, f"record {records[i]}: {stored.attempts} attempts counted"
        assert stored.state == (LinkState.LINKED if events == [Event.POSTED] else LinkState.FAILED)
    assert groups.waiting == 0
    _, applied, largest = groups.figures
    assert applied == n
    assert largest <= MAX_CALLS


# -- duplicates -------------------------------------------------------------------------------------


def test_a_late_answer_queued_apart_from_the_first_answer_for_its_entry_is_dropped(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a first call, A (entry 1 created), B (entry 2 created) and A' (entry 1 refused, entry
    3 created) queue in that order: A' shares no transaction with A, finds entry 1 no longer held,
    and is dropped; the link of entry 1 is posted once and never also refused; entries 2 and 3
    link; every call returns."""
    ids = _pending(database, [4100, 4101, 4102, 4103])
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [
        [_created(ids[4100], 4100)],
        [_created(ids[4101], 4101)],
        [_created(ids[4102], 4102)],
        [_rejected(ids[4101]), _created(ids[4103], 4103)],
    ]

    outcomes = _queued(groups, hold, calls)

    assert outcomes == {0: None, 1: None, 2: None, 3: None}
    first = _read(database, 4101)
    assert (first.state, _events(first), first.attempts) == (LinkState.LINKED, [Event.POSTED], 1)
    assert first.last_error is None
    for record in (4100, 4102, 4103):
        stored = _read(database, record)
        assert (stored.state, _events(stored)) == (LinkState.LINKED, [Event.POSTED]), record


def test_a_call_answering_one_entry_twice_applies_it_once_and_spares_the_rest_of_its_group(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A careless call answers its entry twice (created, then refused) and is grouped with another
    call. The entry is applied once: one audit row, one attempt, the link either linked or failed,
    never both; the other call's entry links. (The split into runs looks only across calls; two
    answers within one call go to outcomes.apply_batch together, as before the change.)"""
    ids = _pending(database, [4200, 4201, 4202])
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [
        [_created(ids[4200], 4200)],
        [_created(ids[4201], 4201), _rejected(ids[4201])],
        [_created(ids[4202], 4202)],
    ]

    outcomes = _queued(groups, hold, calls)

    assert outcomes[2] is None
    assert _read(database, 4202).state == LinkState.LINKED
    twice = _read(database, 4201)
    assert len(_events(twice)) == 1, f"one entry applied {len(_events(twice))} times: {_dispatcher_audit(twice)}"
    assert twice.attempts == 1
    assert (twice.state == LinkState.FAILED) == (twice.last_error is not None), twice


# -- what a group mixes ----------------------------------------------------------------------------


def test_a_group_mixing_tenants_waiters_a_refused_trust_half_a_reposted_link_and_lost_claims(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five calls in one group: X linked under c1 and Y under c2 by two calls (what waits for both
    is released once); a trust half refused (its office half, waiting under c2, is told) with an
    answer for an entry another poster reclaimed (dropped); a late answer for the closed entry of a
    reposted link and, in another call, the answer for its fresh entry (posted once, with the
    fresh entry's object)."""

    def build(uow: UnitOfWork) -> dict[str, int]:
        reposted = _link(uow, 4305)
        superseded = _entry(uow, reposted, state=OutboxState.DONE, claimed_by=HOLDER)
        uow.links.change_state(reposted, Event.GAVE_UP, f"dispatcher:{OTHER}", now_us())
        uow.links.change_state(reposted, Event.RETRY_ACCEPTED, "caller:attack", now_us())
        return {
            "lead": _entry(uow, _link(uow, 4300)),
            "x": _entry(uow, _link(uow, 4301)),
            "y": _entry(uow, _link(uow, 4302, "c2")),
            "trust": _entry(uow, _link(uow, 4303, attempts=1)),
            "lost": _entry(uow, _link(uow, 4304), claimed_by=OTHER),
            "superseded": superseded,
            "fresh": _entry(uow, reposted),
            "both": _waiting(uow, 4311, "c1", [("c1", 4301), ("c2", 4302)]),
            "office": _waiting(uow, 4313, "c2", [("c1", 4303)]),
        }

    ids = _fill(database, build)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [
        [_created(ids["lead"], 4300)],
        [_created(ids["x"], 4301)],
        [_created(ids["y"], 4302)],
        [_rejected(ids["trust"], "Account code '999' is not a valid code"), _created(ids["lost"], 4304)],
        [_created(ids["superseded"], 4399)],
        [_created(ids["fresh"], 4305)],
    ]

    outcomes = _queued(groups, hold, calls)

    assert outcomes == dict.fromkeys(range(6))
    for record, connection_id in ((4301, "c1"), (4302, "c2"), (4305, "c1")):
        stored = _read(database, record, connection_id)
        assert (stored.state, _events(stored), stored.attempts) == (LinkState.LINKED, [Event.POSTED], 1), record
    assert _read(database, 4305).objects == [(ObjectType.INVOICE, _uuid(4305), "inv")]
    assert _entry_row(database, ids["superseded"]).state == OutboxState.DONE
    both = _read(database, 4311)
    assert both.state == LinkState.PENDING
    assert [a[1] for a in both.audit].count(Event.RELEASED) == 1
    assert _entry_row(database, ids["both"]).state == OutboxState.READY
    trust = _read(database, 4303)
    assert (trust.state, _events(trust), trust.attempts) == (LinkState.FAILED, [Event.XERO_REJECTED], 2)
    office = _read(database, 4313, "c2")
    assert office.state == LinkState.WAITING
    assert office.last_error is not None and "Account code '999'" in office.last_error
    assert _untouched(_read(database, 4304))
    assert _entry_row(database, ids["lost"]).claimed_by == OTHER


# -- failures ---------------------------------------------------------------------------------------


def test_a_group_that_fails_only_when_applied_together_is_applied_call_by_call_once_each(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry refuses the group's transaction every time (a conflict, retried to the end)
    whenever it holds answers of both tenants, never a call alone. Every call still returns
    applied: each record posted once with one attempt, nothing of the failed tries left behind."""
    ids = {**_pending(database, [4400, 4401, 4403]), **_pending(database, [4402], "c2")}
    real = apply_batch
    tries: list[int] = []

    def fussy(repos: Any, results: Sequence[ElementResult], *args: Any) -> None:
        real(repos, results, *args)  # everything written, then refused
        held = {r.outbox_id for r in results}
        if ids[4402] in held and held & {ids[4401], ids[4403]}:
            tries.append(1)
            raise OperationalError("COMMIT", {}, Exception("could not serialize access"))

    monkeypatch.setattr(answer_groups, "apply_batch", fussy)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [[_created(ids[n], n)] for n in (4400, 4401, 4402, 4403)]

    outcomes = _queued(groups, hold, calls)

    assert tries, "the group was never tried together"
    assert outcomes == dict.fromkeys(range(4))
    for record, connection_id in ((4400, "c1"), (4401, "c1"), (4402, "c2"), (4403, "c1")):
        stored = _read(database, record, connection_id)
        assert (stored.state, _events(stored), stored.attempts) == (LinkState.LINKED, [Event.POSTED], 1), record


def test_a_group_run_again_after_a_conflict_applies_every_answer_and_releases_waiters_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's transaction loses a race once, after writing everything (run_in_transaction
    runs it again): each record posted once with one attempt, and the entry waiting for both
    records is released once."""

    def build(uow: UnitOfWork) -> dict[str, int]:
        return {
            "lead": _entry(uow, _link(uow, 4500)),
            "x": _entry(uow, _link(uow, 4501)),
            "y": _entry(uow, _link(uow, 4502)),
            "both": _waiting(uow, 4511, "c1", [("c1", 4501), ("c1", 4502)]),
        }

    ids = _fill(database, build)
    real = apply_batch
    lost: list[int] = []

    def loses_once(repos: Any, results: Sequence[ElementResult], *args: Any) -> None:
        real(repos, results, *args)
        if len(results) > 1 and not lost:
            lost.append(1)
            raise OperationalError("UPDATE link", {}, Exception("could not serialize access"))

    monkeypatch.setattr(answer_groups, "apply_batch", loses_once)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)

    outcomes = _queued(
        groups, hold, [[_created(ids["lead"], 4500)], [_created(ids["x"], 4501)], [_created(ids["y"], 4502)]]
    )

    assert lost, "the group never lost its race"
    assert outcomes == dict.fromkeys(range(3))
    for record in (4500, 4501, 4502):
        stored = _read(database, record)
        assert (stored.state, _events(stored), stored.attempts) == (LinkState.LINKED, [Event.POSTED], 1), record
    both = _read(database, 4511)
    assert (both.state, [a[1] for a in both.audit].count(Event.RELEASED)) == (LinkState.PENDING, 1)


def test_a_registry_failing_every_write_fails_each_call_with_its_own_error_and_leaves_the_queue_usable(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write fails (the registry is gone). Each call raises an error of its own (not one
    object shared between threads), nothing is written (entries still claimed and uncertain), and
    once the registry is back the same answers apply through the same queue."""
    ids = _pending(database, [4600, 4601, 4602, 4603])
    real = apply_batch
    down = [True]

    def unreachable(repos: Any, results: Sequence[ElementResult], *args: Any) -> None:
        if down:
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        real(repos, results, *args)

    monkeypatch.setattr(answer_groups, "apply_batch", unreachable)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [[_created(ids[n], n)] for n in (4600, 4601, 4602, 4603)]

    outcomes = _queued(groups, hold, calls)

    assert all(isinstance(outcomes[i], OperationalError) for i in range(4)), outcomes
    assert len({id(outcomes[i]) for i in range(4)}) == 4, "threads were handed one error object"
    for n in (4600, 4601, 4602, 4603):
        assert _untouched(_read(database, n)), n
        row = _entry_row(database, ids[n])
        assert (row.state, row.claimed_by, row.uncertain) == (OutboxState.READY, HOLDER, True)
    down.clear()
    for call in calls:
        groups.apply(call)
    assert [_read(database, n).state for n in (4600, 4601, 4602, 4603)] == [LinkState.LINKED] * 4
    assert groups.waiting == 0


def test_a_group_whose_commit_went_through_and_then_raised_is_not_applied_a_second_time(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's COMMIT reaches the registry, then the driver raises (the connection dropped
    before the reply: not an error run_in_transaction deems rolled back). Meanwhile this poster
    claims the entry whose first operation the group just recorded, and marks it uncertain before
    sending its second operation. The group's answers must not be applied again over that: the
    link counts one attempt, and the entry keeps the new claim and its uncertain mark (dropping
    them lets the second operation's answer be lost and the operation sent again unlooked-for)."""

    def build(uow: UnitOfWork) -> dict[str, int]:
        return {
            "lead": _entry(uow, _link(uow, 4700)),
            "two_ops": _entry(uow, _link(uow, 4701), operations=("inv", "pay")),
            "other": _entry(uow, _link(uow, 4702)),
        }

    ids = _fill(database, build)
    other_db = open_database(database.url)
    if other_db.writer_file is not None:
        # The claim runs inside the group's unit of work, which holds this process's writer file
        # until it exits: the other poster goes on without it after a moment, not after 30 s.
        other_db.writer_file.wait_s = 0.05
    real_commit = UnitOfWork.commit
    commits: list[int] = []
    reclaimed: list[int] = []

    def commit_then_raise(self: UnitOfWork) -> None:
        real_commit(self)
        commits.append(1)
        if len(commits) != 2:  # the first call's alone, then the group's
            return

        def claim_for_next_operation(uow: UnitOfWork) -> list[int]:
            now = now_us()
            rows = uow.outbox.claim("t1", HOLDER, 50, now, 600_000_000)
            uow.outbox.mark_uncertain({r.id: "" for r in rows}, now + 600_000_000, HOLDER, now)
            return [r.id for r in rows]

        reclaimed.extend(run_in_transaction(other_db, claim_for_next_operation))
        raise InterfaceError("COMMIT", {}, Exception("connection already closed"))

    monkeypatch.setattr(UnitOfWork, "commit", commit_then_raise)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [
        [_created(ids["lead"], 4700)],
        [_created(ids["two_ops"], 4701, note="posted as INV-4701-2")],
        [_created(ids["other"], 4702)],
    ]
    try:
        outcomes = _queued(groups, hold, calls)
    finally:
        other_db.dispose()

    assert reclaimed == [ids["two_ops"]], "the entry was not claimed again between the commit and the error"
    assert outcomes[0] is None
    two_ops = _read(database, 4701)
    assert two_ops.attempts == 1, f"the first operation's answer was applied {two_ops.attempts} times"
    assert [a[1] for a in _dispatcher_audit(two_ops)] == ["posted_renumbered"]
    row = _entry_row(database, ids["two_ops"])
    assert (row.state, row.claimed_by, row.uncertain) == (OutboxState.READY, HOLDER, True), (
        "the answer applied again dropped the claim of the operation in flight"
    )
    assert _read(database, 4702).state == LinkState.LINKED


class Interrupt(BaseException):
    """Like KeyboardInterrupt or SystemExit: not an Exception."""


def test_an_interrupt_while_a_group_is_applied_fails_only_the_call_it_came_from(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying one call's answers raises a BaseException (an interrupt, SystemExit) in whichever
    thread leads the group. That is that call's outcome alone: the other calls of the group, whose
    answers are sound, are applied and return; the interrupted call's rows are not committed; the
    queue keeps working."""
    ids = _pending(database, [4800, 4801, 4802, 4803, 4804])
    real = apply_batch

    def interrupted(repos: Any, results: Sequence[ElementResult], *args: Any) -> None:
        real(repos, results, *args)
        if ids[4803] in {r.outbox_id for r in results}:
            raise Interrupt("interrupted while applying")

    monkeypatch.setattr(answer_groups, "apply_batch", interrupted)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [[_created(ids[n], n)] for n in (4800, 4801, 4802, 4803)]

    outcomes = _queued(groups, hold, calls)

    assert isinstance(outcomes[3], Interrupt)
    assert _untouched(_read(database, 4803))
    groups.apply([_created(ids[4804], 4804)])
    assert _read(database, 4804).state == LinkState.LINKED, "the queue stopped working after the interrupt"
    assert outcomes[0] is None
    assert (outcomes[1], outcomes[2]) == (None, None), (
        f"sound calls were failed by another call's interrupt: {outcomes[1]!r}, {outcomes[2]!r}"
    )
    assert [_read(database, n).state for n in (4801, 4802)] == [LinkState.LINKED, LinkState.LINKED]


def test_a_caller_holding_a_write_unit_of_work_fails_at_once_and_does_not_stop_other_calls(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A careless caller applies answers inside a write unit of work of its own (before the change
    its transaction raised at once: "a write unit of work opened inside another on the same
    thread"). It must fail at once, and the call being applied meanwhile must still be applied and
    return: the caller must not wait for a group that waits for the writer it holds."""
    ids = _pending(database, [4900, 4901])
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    outcomes: dict[str, Any] = {}

    def lead() -> None:
        try:
            groups.apply([_created(ids[4900], 4900)])
            outcomes["lead"] = None
        except BaseException as exc:
            outcomes["lead"] = exc

    def careless() -> None:
        with UnitOfWork(database):
            try:
                groups.apply([_created(ids[4901], 4901)])
                outcomes["careless"] = None
            except BaseException as exc:
                outcomes["careless"] = exc

    leader = threading.Thread(target=lead, daemon=True)
    leader.start()
    assert hold.entered.wait(10), "the first call never led"
    caller = threading.Thread(target=careless, daemon=True)
    caller.start()
    # The careless caller either fails at once or queues behind the first call.
    wait_for(lambda: "careless" in outcomes or groups.waiting >= 1, timeout=10, what="the caller queued")
    hold.set()
    leader.join(10)
    caller.join(10)
    hung = leader.is_alive() or caller.is_alive()
    if hung:
        # Undo the deadlock to leave the registry usable: hand the writer the careless caller
        # holds to the first call's transaction, which waits for it.
        turns = database.write_turns
        assert turns is not None
        turns.release()
        leader.join(20)
        caller.join(20)
    assert not hung, "the first call and the careless caller waited for each other (the writer it held)"
    assert outcomes["lead"] is None
    assert _read(database, 4900).state == LinkState.LINKED
    assert isinstance(outcomes["careless"], RuntimeError)


# -- leadership and figures ---------------------------------------------------------------------


def test_calls_queued_beyond_a_groups_size_are_all_applied_by_later_leaders_in_order(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven calls queue behind a first one with groups of at most two: while they wait, `waiting`
    says seven; each is applied in the order queued (the late refusal for the first queued call's
    entry, sixth in line, is dropped), none waits for ever, no transaction applies more than two
    calls, and nothing is left queued."""
    records = list(range(5000, 5007))
    ids = _pending(database, records)
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR, max_calls=2)
    calls = [[_created(ids[n], n)] for n in records]
    calls.insert(6, [_rejected(ids[5001])])
    seen: list[int] = []

    outcomes = _queued(groups, hold, calls, before_release=lambda: seen.append(groups.waiting))

    assert seen == [7]
    assert outcomes == dict.fromkeys(range(8))
    for n in records:
        stored = _read(database, n)
        assert (stored.state, _events(stored)) == (LinkState.LINKED, [Event.POSTED]), n
    assert groups.waiting == 0
    assert groups.figures[1] == 8
    assert groups.figures[2] <= 2


def test_the_figures_count_the_transactions_that_applied_answers(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench prints "the answers of N calls applied in G transactions" from `figures`. When a
    group is cut because two calls answer one entry (A, A'), each part is a transaction of its
    own: G must be the commits the registry saw, and the most calls in one transaction must be the
    most that shared a commit (one here, for A and A' never share)."""
    ids = _pending(database, [5100, 5101])
    hold = _hold_first_transaction(monkeypatch)
    groups = AnswerGroups(database, HOLDER, ACTOR)
    calls = [[_created(ids[5100], 5100)], [_created(ids[5101], 5101)], [_rejected(ids[5101])]]

    with counted_commits(database) as commits:
        outcomes = _queued(groups, hold, calls)

    assert outcomes == dict.fromkeys(range(3))
    assert _events(_read(database, 5101)) == [Event.POSTED]
    transactions, applied, largest = groups.figures
    assert applied == 3
    assert (transactions, largest) == (len(commits), 1), (
        f"figures say {applied} calls in {transactions} transactions, at most {largest} in one; the registry saw "
        f"{len(commits)} commits, none of two calls"
    )
