"""Attacks on ResolveDrift's row locks (docs/drift.md "Resolving a drift", "Rows held, in one
order"): a resolution takes the drifted bill's link and the held payments' links, then the drift,
then the payments' entries, and decides on what it holds. Here it races what else writes those rows: an
operator unlinking the bill and its payment together, a webhook's (or poll's) drift detection of
the same bill, a second resolution, an unlink of the held payment and the dispatcher's sweep of
satisfied waits. Two posters (two Database handles) on one registry, both registries: SQLite's one
writer orders everything, PostgreSQL's row locks are the point. Every wait has a timeout.

The setup is what the product writes: the payment was posted before its bill linked (so its link
has the lower id), the bill linked with its invoice's snapshot, a poll found the invoice changed in
Xero (drift_checks.record_observations) and the dispatcher held the payment on the blocking drift
(drift_holds.hold)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from xerolink_common.reasons import Reason
from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.repositories.drift import SqlDriftRepository
from xerolink_poster.adapters.repositories.outbox import SqlOutboxRepository
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.service_layer import drift_resolution
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
from xerolink_poster.service_layer.unlinking import unlink, unlink_links

from tests.fixtures.drift_races import (
    BILL,
    BOOKKEEPER,
    C1,
    DEADLOCK,
    HOLD,
    PAID,
    PAYMENT,
    PAYMENT_XERO_ID,
    WEBHOOK,
    XERO_ID,
    answer,
    bill_with_our_payment,
    gate,
    held_payment,
    invoice,
    marked,
    observe_invoice,
    payment_state,
    resolve_drift,
)
from tests.fixtures.threads import Call

RESTORED = "XERO_RESTORED"  # drift_checks.RESTORED


# -- the registry ----------------------------------------------------------------------------------


def _drifts(db: Database) -> list[tuple[int, str, str, str, str]]:
    """Every drift of the invoice: (id, kind, state, resolution, resolved_by), by id."""
    with UnitOfWork(db, write=False) as uow:
        rows = uow.drift.list_drifts(C1, None, [], None, None, 100)
        return sorted((r.id or 0, r.kind, r.state, r.resolution, r.resolved_by) for r in rows if r.xero_id == XERO_ID)


def _agrees(db: Database) -> tuple[str, list[str], list[str]]:
    """The payment's link and entries agree: failed or unlinked with nothing left to send,
    pending with one ready entry, or waiting with one waiting entry."""
    state, entries, _ = found = payment_state(db)
    expected = {
        LinkState.FAILED.value: [],
        LinkState.UNLINKED.value: [],
        LinkState.PENDING.value: [OutboxState.READY.value],
        LinkState.WAITING.value: [OutboxState.WAITING.value],
    }
    assert state in expected and entries == expected[state], found
    return found


# -- an unlink of the bill and its payment together -------------------------------------------------


@pytest.mark.timeout(60)
def test_unlinking_the_bill_and_its_held_payment_together_never_deadlocks_with_accepting_xeros_version(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bookkeeper accepts Xero's version of the bill (un-approved in Xero): the resolution
    holds the bill's link and its drift. Meanwhile the operator unlinks the bill and its payment in
    one request (unlink_plan: "an operator selects records together because they belong together
    (an invoice and its payments)"). The unlink takes both links in one statement in id order, and
    the payment, posted before its bill was linked, has the lower id: it holds the payment's link
    and waits for the bill's. The resolution then takes the held payment's link (the order the doc
    promises) and each waits for the other: PostgreSQL cancels one as a deadlock after a second."""
    drift_id = held_payment(database, invoice("DRAFT"))["STATUS_CHANGED"]
    reached, go = gate(monkeypatch, drift_resolution, "held_drift")
    resolve = Call(marked(lambda: resolve_drift(database, drift_id, rules.ACCEPT_XERO, invoice("DRAFT"))), callers=True)
    assert reached.wait(15.0), "the resolution never held the bill's drift"

    records = [(PAYMENT.kind, PAYMENT.id), (BILL.kind, BILL.id)]
    unlinked = Call(
        lambda: unlink_links(
            other, C1, records, validate_only=False, confirm=True, cascade=False, reason="", actor="operator:test"
        ),
        callers=True,
    )
    unlinked.answered_within(HOLD)  # it waits for the bill's link (PostgreSQL) or the writer (SQLite)
    go.set()
    told = answer(resolve)
    unlinked.result(timeout=30.0)

    assert told in ("applied", Reason.DRIFT_ALREADY_RESOLVED), told
    state, _, _ = _agrees(database)
    assert state == LinkState.UNLINKED.value
    assert DEADLOCK not in conflicts, (
        f"the resolution and the unlink deadlocked: {conflicts}; the resolution was answered {told} "
        f"after {resolve.took:.2f} s"
    )


# -- drift detection of the same bill ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_webhook_that_read_the_drift_open_never_writes_its_own_resolution_over_an_accepted_one(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bill was un-approved in Xero (STATUS_CHANGED, the payment held). Someone approves it
    again in Xero; the webhook's transaction reads the bill's open drifts (the drift open) to
    resolve it as XERO_RESTORED. Right then the bookkeeper, from a read a moment older, accepts
    Xero's version: the resolution holds the link and the drift, fails the held payment and
    commits, and the caller is told it was applied. The webhook then goes on from what it read and
    writes XERO_RESTORED, by the webhook, over ACCEPT_XERO, by the bookkeeper: ListDrift now says
    Xero was put back, while the payment was failed by an acceptance the drift no longer records.
    Whichever comes second must see the first: the caller's answer, the drift and the payment must
    tell one story (SQLite's one writer gives that: the resolution is refused DRIFT_ALREADY_RESOLVED)."""
    drift_id = held_payment(database, invoice("DRAFT"))["STATUS_CHANGED"]
    reached, go = gate(monkeypatch, SqlDriftRepository, "open_drifts_of_object")
    webhook = Call(marked(lambda: observe_invoice(other, invoice())))
    assert reached.wait(15.0), "the webhook never read the bill's open drifts"

    resolve = Call(lambda: resolve_drift(database, drift_id, rules.ACCEPT_XERO, invoice("DRAFT")), callers=True)
    resolve.answered_within(HOLD)
    go.set()
    webhook.result(timeout=30.0)
    told = answer(resolve)

    ((_, _, state, resolution, resolved_by),) = [d for d in _drifts(database) if d[0] == drift_id]
    _, _, events = _agrees(database)
    assert state == rules.RESOLVED
    if told == "applied":
        assert "drift_accepted" in events, events
        assert (resolution, resolved_by) == (rules.ACCEPT_XERO, BOOKKEEPER), (
            f"the caller was told ACCEPT_XERO was applied and the payment failed on it, but the drift "
            f"says {resolution} by {resolved_by}"
        )
    else:
        assert told == Reason.DRIFT_ALREADY_RESOLVED, told
        assert (resolution, resolved_by, "drift_accepted" in events) == (RESTORED, WEBHOOK, False)


@pytest.mark.timeout(60)
def test_a_webhook_that_read_the_snapshot_before_xeros_version_was_accepted_never_reopens_the_drift(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bill was un-approved in Xero; a poll recorded it (STATUS_CHANGED, the payment held). The
    webhook of that same change arrives late: its transaction reads the invoice's snapshot (as
    posted, AUTHORISED). Right then the bookkeeper accepts Xero's version: the snapshot becomes
    Xero's DRAFT invoice and the drift is resolved. The webhook goes on comparing Xero's DRAFT
    invoice with the AUTHORISED snapshot it read, finds no open drift and opens a new one: after
    the bookkeeper accepted Xero's version, the bill has an open drift that blocks payment (every
    payment posted on it is held again) and that says the opposite of the snapshot; a voided or
    un-approved bill is never modified again, so no later poll clears it. Xero holds exactly what
    was accepted: no drift may be open on it."""
    drift_id = held_payment(database, invoice("DRAFT"))["STATUS_CHANGED"]
    reached, go = gate(monkeypatch, SqlDriftRepository, "snapshots_by_xero_ids")
    webhook = Call(marked(lambda: observe_invoice(other, invoice("DRAFT"))))
    assert reached.wait(15.0), "the webhook never read the invoice's snapshot"

    resolve = Call(lambda: resolve_drift(database, drift_id, rules.ACCEPT_XERO, invoice("DRAFT")), callers=True)
    resolve.answered_within(HOLD)
    go.set()
    webhook.result(timeout=30.0)
    told = answer(resolve)

    assert told == "applied", told
    with UnitOfWork(database, write=False) as uow:
        snapshot = uow.drift.get_snapshot(C1, XERO_ID)
        assert snapshot is not None and '"Status": "DRAFT"' in snapshot.document, "the acceptance was not kept"
    still_open = [d for d in _drifts(database) if d[2] == rules.OPEN]
    assert still_open == [], f"a drift opened against the snapshot the bookkeeper replaced: {still_open}"


@pytest.mark.timeout(60)
def test_corrected_and_the_webhook_of_the_correction_never_deadlock_over_the_bills_two_drifts(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bill was un-approved and re-dated in Xero: two open drifts (STATUS_CHANGED, holding the
    payment, and DATE_CHANGED). The bookkeeper puts both back in Xero and resolves one of them
    CORRECTED; the resolution holds the bill's link and that drift. The webhook of the same
    correction, on another poster, resolves both drifts XERO_RESTORED, one after the other, in the
    order it read them: it updates the first and waits for the second, which the resolution holds.
    The resolution then resolves every open drift of the invoice, the first among them, and waits
    for the webhook: a deadlock, one of them cancelled after a second and run again. The doc
    promises that what the resolution holds is taken in one order so that nothing waits in a
    cycle; a detection takes no link and the drifts in another order."""
    held_payment(database, invoice("DRAFT", Date="2026-03-05"))
    with UnitOfWork(database, write=False) as uow:
        order = [d.id or 0 for d in uow.drift.open_drifts_of_object(C1, XERO_ID)]
    assert len(order) == 2, order
    second = order[-1]  # the drift the webhook resolves last: the resolution holds it first
    reached, go = gate(monkeypatch, drift_resolution, "held_drift")
    resolve = Call(marked(lambda: resolve_drift(database, second, rules.CORRECTED, invoice())), callers=True)
    assert reached.wait(15.0), "the resolution never held the drift"

    webhook = Call(lambda: observe_invoice(other, invoice()))
    webhook.answered_within(HOLD)  # it waits for the drift the resolution holds (or the writer)
    go.set()
    webhook.result(timeout=30.0)
    told = answer(resolve)

    assert told in ("applied", Reason.DRIFT_ALREADY_RESOLVED), told
    assert all(d[2] == rules.RESOLVED for d in _drifts(database)), _drifts(database)
    _agrees(database)
    assert DEADLOCK not in conflicts, (
        f"the resolution and the webhook deadlocked: {conflicts}; the resolution was answered {told} "
        f"after {resolve.took:.2f} s"
    )


# -- two resolutions, an unlink of the payment, the sweep -------------------------------------------


@pytest.mark.timeout(60)
def test_accepting_one_drift_while_another_of_the_same_bill_is_resolved_corrected_applies_one_and_refuses_the_other(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """Two bookkeepers, two posters, two drifts of one invoice: one accepts Xero's version of the
    status drift, the other says the date drift was corrected. Each resolution resolves every open
    drift of the invoice. The first to hold the bill's link wins; the other reads the drift again
    after it and is refused DRIFT_ALREADY_RESOLVED: the payment fails once, nothing is released."""
    drifts = held_payment(database, invoice("DRAFT", Date="2026-03-05"))
    reached, go = gate(monkeypatch, drift_resolution, "held_drift")
    accept = Call(
        marked(lambda: resolve_drift(database, drifts["STATUS_CHANGED"], rules.ACCEPT_XERO, invoice("DRAFT"))),
        callers=True,
    )
    assert reached.wait(15.0), "the acceptance never held the drift"
    corrected = Call(lambda: resolve_drift(other, drifts["DATE_CHANGED"], rules.CORRECTED, invoice()), callers=True)
    corrected_in_time = corrected.answered_within(HOLD)
    go.set()

    assert (answer(accept), answer(corrected)) == ("applied", Reason.DRIFT_ALREADY_RESOLVED)
    assert not corrected_in_time, "the second resolution did not wait for the first"
    assert {(d[2], d[3]) for d in _drifts(database)} == {(rules.RESOLVED, rules.ACCEPT_XERO)}
    state, _, events = _agrees(database)
    assert (state, events.count("drift_accepted"), events.count("released")) == (LinkState.FAILED.value, 1, 0)
    assert DEADLOCK not in conflicts, conflicts


@pytest.mark.timeout(60)
def test_unlinking_the_held_payment_while_xeros_version_is_accepted_leaves_it_unlinked_with_nothing_queued(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The resolution holds the held payment's link and entry and is failing it when the operator
    unlinks the payment on another poster. The unlink waits, then unlinks the failed link: nothing
    of the payment is left to send, and nobody deadlocks."""
    drift_id = held_payment(database, invoice("DRAFT"))["STATUS_CHANGED"]
    reached, go = gate(monkeypatch, SqlOutboxRepository, "lock_entries")
    resolve = Call(marked(lambda: resolve_drift(database, drift_id, rules.ACCEPT_XERO, invoice("DRAFT"))), callers=True)
    assert reached.wait(15.0), "the resolution never held the payment's entry"
    unlinked = Call(lambda: unlink(other, C1, PAYMENT, "operator:test"), callers=True)
    unlink_in_time = unlinked.answered_within(HOLD)
    go.set()

    assert answer(resolve) == "applied"
    unlinked.result(timeout=30.0)
    assert not unlink_in_time, "the unlink did not wait for the resolution holding the payment"
    state, _, events = _agrees(database)
    assert (state, events[-2:]) == (LinkState.UNLINKED.value, ["drift_accepted", "unlinked"]), events
    assert DEADLOCK not in conflicts, conflicts


def _sweep(db: Database) -> int:
    """The dispatcher's sweep of satisfied waits on `db` (its read, then its write): how many it
    found."""
    dispatcher = Dispatcher(db, cast(XeroClient, None), DispatcherSettings(max_tenants=0), "poster-b")
    found = dispatcher.satisfied_waits()
    dispatcher.release_waits(found)
    return len(found)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("resolution", [rules.ACCEPT_XERO, rules.CORRECTED])
def test_the_sweep_never_releases_a_payment_a_resolution_is_failing_or_releasing(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str], resolution: str
) -> None:
    """The resolution holds the held payment (ACCEPT_XERO: failing it; CORRECTED: releasing it)
    when another poster's sweep of satisfied waits finds its entry (the bill is linked). The sweep
    must leave it to the resolution: the payment ends failed with nothing queued, or released once
    with one ready entry."""
    drift_id = held_payment(database, invoice("DRAFT"))["STATUS_CHANGED"]
    element = invoice("DRAFT") if resolution == rules.ACCEPT_XERO else invoice()
    gated = "lock_entries" if resolution == rules.ACCEPT_XERO else "lock_entry"
    reached, go = gate(monkeypatch, SqlOutboxRepository, gated)
    resolve = Call(marked(lambda: resolve_drift(database, drift_id, resolution, element)), callers=True)
    assert reached.wait(15.0), "the resolution never held the payment's entry"
    swept = Call(lambda: _sweep(other))
    swept.answered_within(HOLD)
    go.set()

    assert answer(resolve) == "applied"
    swept.result(timeout=30.0)
    _sweep(other)
    state, _, events = _agrees(database)
    if resolution == rules.ACCEPT_XERO:
        assert (state, events.count("released")) == (LinkState.FAILED.value, 0), events
    else:
        assert (state, events.count("released")) == (LinkState.PENDING.value, 1), events
    assert DEADLOCK not in conflicts, conflicts


# -- a resolution of the bill's payment's drift, writing the bill's snapshot ------------------------


def _voided_after_its_payment_was_deleted(db: Database) -> dict[str, int]:
    """The bill, linked with xerolink's payment of 40.00 on it (linked, its own snapshot; the
    bill's snapshot expects it). In Xero the payment was deleted and then the bill voided (Xero
    voids a bill only once its payments are gone); a poll records both: VOIDED_IN_XERO on the
    bill, PAYMENT_DELETED_IN_XERO on the payment. Open drift ids by kind."""
    bill_with_our_payment(db)
    observe_invoice(db, invoice("VOIDED"), "dispatcher:poll")
    with UnitOfWork(db, write=False) as uow:
        found = uow.drift.open_drifts_of_object(C1, XERO_ID) + uow.drift.open_drifts_of_object(C1, PAYMENT_XERO_ID)
        return {d.kind: d.id or 0 for d in found}


@pytest.mark.timeout(60)
def test_accepting_the_payments_deletion_never_writes_the_bills_snapshot_back_over_its_accepted_void(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """Two drifts of one bill, as ListDrift shows them side by side: the bill voided in Xero, and
    xerolink's payment on it deleted there. The bookkeeper accepts both (two clicks, two posters).
    Accepting the payment's deletion takes the payment's link and drift, and rewrites the bill's
    snapshot without the payment, from a read of it; accepting the void takes the bill's link and
    drift and makes the bill's snapshot Xero's voided invoice. The payment's resolution reads the
    bill's snapshot (never holding the bill's link, nor the snapshot) just before the void's
    resolution commits, then writes the bill's snapshot back as posted (AUTHORISED): the accepted
    void is lost, and the next read of the voided bill opens VOIDED_IN_XERO again, holding every
    payment posted on it, though the bookkeeper accepted it."""
    drifts = _voided_after_its_payment_was_deleted(database)
    assert set(drifts) == {"VOIDED_IN_XERO", "PAYMENT_DELETED_IN_XERO"}, drifts
    reached, go = gate(monkeypatch, SqlDriftRepository, "get_snapshot", lambda _r, _c, x, **_: x == XERO_ID)
    deletion = Call(
        marked(lambda: resolve_drift(database, drifts["PAYMENT_DELETED_IN_XERO"], rules.ACCEPT_XERO, None)),
        callers=True,
    )
    assert reached.wait(15.0), "the payment's resolution never read the bill's snapshot"
    void = Call(
        lambda: resolve_drift(other, drifts["VOIDED_IN_XERO"], rules.ACCEPT_XERO, invoice("VOIDED")), callers=True
    )
    void.answered_within(HOLD)
    go.set()

    assert (answer(deletion), answer(void)) == ("applied", "applied")
    with UnitOfWork(database, write=False) as uow:
        snapshot = uow.drift.get_snapshot(C1, XERO_ID)
        assert snapshot is not None
        status = json.loads(snapshot.document).get("Status")
    observe_invoice(database, invoice("VOIDED"))  # the next webhook or poll of the voided bill
    reopened = [d for d in _drifts(database) if d[2] == rules.OPEN]
    assert (status, reopened) == ("VOIDED", []), (
        f"the bill's snapshot says {status} after both were accepted; a read of the voided bill opened {reopened}"
    )
    assert DEADLOCK not in conflicts, conflicts


@pytest.mark.timeout(60)
def test_accepting_the_payments_deletion_never_deadlocks_with_an_unlink_of_its_bill(
    database: Database, other: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """Accepting the deletion of xerolink's payment rewrites its bill's snapshot, so it needs the
    bill's link as well as the payment's. The operator unlinks the bill and the payment together:
    the unlink takes both links in id order, the bill's first (it was linked first). A resolution
    that took the payment's link first and the bill's only when it came to the snapshot would wait
    for the unlink while the unlink waits for it."""
    drifts = _voided_after_its_payment_was_deleted(database)
    reached, go = gate(monkeypatch, drift_resolution, "held_drift")
    deletion = Call(
        marked(lambda: resolve_drift(database, drifts["PAYMENT_DELETED_IN_XERO"], rules.ACCEPT_XERO, None)),
        callers=True,
    )
    assert reached.wait(15.0), "the payment's resolution never held its drift"
    unlinked = Call(
        lambda: unlink_links(
            other,
            C1,
            [(BILL.kind, BILL.id), (PAID.kind, PAID.id)],
            validate_only=False,
            confirm=True,
            cascade=False,
            reason="",
            actor="op",
        ),
        callers=True,
    )
    unlink_in_time = unlinked.answered_within(HOLD)
    go.set()

    assert answer(deletion) == "applied"
    assert unlinked.result(timeout=30.0).unlinked == 2
    assert not unlink_in_time, "the unlink did not wait for the resolution holding the bill's link"
    assert DEADLOCK not in conflicts, (
        f"the resolution and the unlink deadlocked: {conflicts}; answered after {deletion.took:.2f} s"
    )


# -- Xero changed again between ResolveDrift's read and its write -----------------------------------


def _with_payment(payment_id: str, updated: str) -> dict[str, Any]:
    """The bill's invoice with 30.00 applied in Xero that xerolink did not make (a bank-feed match)."""
    return {**invoice(), "Payments": [{"PaymentID": payment_id, "Amount": "30.00"}], "UpdatedDateUTC": updated}


@pytest.mark.timeout(60)
def test_corrected_never_releases_a_payment_on_a_read_older_than_the_drift_it_resolves(
    database: Database, conflicts: list[str]
) -> None:
    """A bank-feed match put 30.00 on the bill in Xero (ALLOCATION_ADDED_IN_XERO), and the caller's
    payment of the same money is held on it. The bookkeeper removes the match in Xero and resolves
    CORRECTED: ResolveDrift reads the invoice (no foreign money: as posted) through the tenant's
    budget, which may wait seconds for the tenant's lease. Meanwhile the bank feed matches the money
    again and the webhook records it: the same open drift, its differences now naming the new
    payment, Xero's UpdatedDateUTC later than the read's. ResolveDrift's transaction then holds the
    bill's link and the drift, "read again", and still decides on its older read: the drift is
    resolved CORRECTED and the held payment released, to be sent on a bill Xero shows paid by the
    bank feed: the money twice in Xero. The registry knows better than the read (the drift changed
    after it); the caller must not be told the drift was corrected."""
    drift_id = held_payment(database, _with_payment("MATCH-A", "/Date(1767225600000+0000)/"))[
        "ALLOCATION_ADDED_IN_XERO"
    ]
    read = {**invoice(), "UpdatedDateUTC": "/Date(1767229200000+0000)/"}  # ResolveDrift's Xero read
    observe_invoice(database, _with_payment("MATCH-B", "/Date(1767232800000+0000)/"))  # the webhook, after it

    with UnitOfWork(database, write=False) as uow:
        drift = uow.drift.get_drift(C1, drift_id)
        assert drift is not None and drift.state == rules.OPEN and "match-b" in drift.differences, drift
    told = answer(Call(lambda: resolve_drift(database, drift_id, rules.CORRECTED, read), callers=True))
    state, entries, events = _agrees(database)
    assert (told, state, events.count("released")) != ("applied", LinkState.PENDING.value, 1), (
        f"resolved CORRECTED on a read older than the drift's last change; the payment was released to be "
        f"sent over the new bank-feed match: {state} {entries}"
    )
