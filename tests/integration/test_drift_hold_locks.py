"""Resolving a drift while a caller posts the held payment again, or an operator unlinks the
document (docs/drift.md "Resolving a drift"), on the real PostgreSQL where row locks are the
point. A resolution decides on the rows as they are, held, not as it read them a moment before:
accepting Xero's version fails the payments held on the document, but not one a Post has just
queued again, and not over an unlink that resolved the drift first. It takes the rows in the order
a Post and an unlink do (a link, then what hangs on it), so none of them deadlock. Every wait has a
timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.reasons import Reason
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.repositories.outbox import SqlOutboxRepository
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.service_layer import drift_holds, drift_resolution
from xerolink_poster.service_layer.drift_resolving import resolve_in
from xerolink_poster.service_layer.errors_json import error_json
from xerolink_poster.service_layer.posting import record_mapped
from xerolink_poster.service_layer.posting_values import Mapped
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction
from xerolink_poster.service_layer.unlinking import unlink

from tests.fixtures.registry_rows import linked_record, unreachable_connection, waiting_entry
from tests.fixtures.threads import Call

BILL = RecordRef(1, 1)
PAYMENT = RecordRef(1, 2)
HOLD = 0.5  # long enough for the other side to reach its lock, well under deadlock_timeout (1 s)


def _held_payment(database: Database) -> int:
    """A linked bill voided in Xero (an open drift that blocks payment) and a payment held on it,
    as the dispatcher holds one: the drift's id."""

    def setup(uow: UnitOfWork) -> int:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        bill = linked_record(uow, BILL)
        drift = uow.drift.save_drift(
            DriftRow(
                connection_id="c1",
                link_id=bill.id or 0,
                xero_id="inv-c1-1",
                object_type=1,
                kind="VOIDED_IN_XERO",
                state=rules.OPEN,
                source="webhook",
                detected_us=now_us(),
            )
        )
        waiting_entry(uow, PAYMENT.id, [("c1", BILL)])
        payment = uow.links.get_link("c1", PAYMENT)
        assert payment is not None
        name = rules.drift_name("c1", drift.id or 0)
        payment.last_error = error_json(
            ErrorCode.FAILED_PRECONDITION, Reason.XERO_DOCUMENT_CHANGED, "held", [("drift", name)]
        )
        uow.links.save(payment)
        return drift.id or 0

    result: int = run_in_transaction(database, setup)
    return result


def _accept_xero(database: Database, drift_id: int) -> Any:
    """ResolveDrift's transaction accepting Xero's version, Xero's object as read not found."""
    return run_in_transaction(
        database, lambda uow: resolve_in(uow, "c1", drift_id, rules.ACCEPT_XERO, "", None, "caller:bookkeeper")
    )


def _edited_payment(database: Database) -> Mapped:
    with UnitOfWork(database, write=False) as uow:
        connection = uow.connections.get_connection("c1")
        assert connection is not None
    response = mapper_pb2.MapTransactionResponse()
    response.record.kind = PAYMENT.kind  # type: ignore[assignment]
    response.record.id = PAYMENT.id
    return Mapped(
        index=0,
        connection=connection,
        transaction=transaction_pb2.Transaction(),
        response=response,
        fingerprint="e" * 64,  # other content than the held posting's "f" * 64
        actor="caller:test",
        trace_context="",
    )


def _post(database: Database) -> Any:
    item = _edited_payment(database)
    return run_in_transaction(database, lambda uow: record_mapped(uow, [item]))


def _payment(database: Database) -> tuple[str, str, list[tuple[int, str, str]], list[str]]:
    """The payment link's state and fingerprint, its open entries (id, state, posting) and its
    audit events."""
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", PAYMENT)
        assert link is not None
        found = uow.outbox.open_outbox_of_link(link.id or 0)
        events = [a.event for a in uow.links.audit(link.id or 0)]
        entries = sorted((r.id or 0, str(r.state), r.posting_id) for r in found)
        return str(link.state), link.fingerprint, entries, events


def _agrees(database: Database) -> tuple[str, str, list[tuple[int, str, str]], list[str]]:
    """The payment's link and entries, asserted to agree: failed with nothing left to send, or
    pending with the one entry of the posting the link holds."""
    state, fingerprint, entries, events = found = _payment(database)
    if state == LinkState.FAILED.value:
        assert entries == [], f"a failed link whose entry is still queued (sent after its failure): {found}"
    else:
        assert state == LinkState.PENDING.value, found
        assert len(entries) == 1 and entries[0][1] == OutboxState.READY.value, found
        assert fingerprint == "e" * 64, found
    return state, fingerprint, entries, events


def _gate(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> tuple[threading.Event, threading.Event]:
    """Pauses the first call of `owner`.`name` made off the test's own thread, once it has
    answered, until `go` is set: (reached, go)."""
    reached, go = threading.Event(), threading.Event()
    real = getattr(owner, name)

    def gated(*args: Any) -> Any:
        found = real(*args)
        if not reached.is_set() and threading.current_thread() is not threading.main_thread():
            reached.set()
            go.wait(15.0)
        return found

    monkeypatch.setattr(owner, name, gated)
    return reached, go


@pytest.mark.timeout(60)
def test_accepting_xeros_version_never_fails_a_payment_a_post_queued_again_since_it_read_the_hold(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bookkeeper accepts Xero's version (the bill stays voided) and the resolution reads the
    payments held on the bill. Right then the caller posts the edited payment on poster B: it
    closes the held entry and queues the edited payment (its link PENDING). The resolution must
    not go on to fail the link from what it read: the link would be FAILED, saying "delete this
    record in Actionstep", while its new entry is sent to Xero, and a repost of a FAILED link
    closes its open entry even when a worker is sending it (the payment twice in Xero)."""
    drift_id = _held_payment(pg)
    read, go = _gate(monkeypatch, drift_holds, "held_on")
    resolve = Call(lambda: _accept_xero(pg, drift_id))
    assert read.wait(15.0), "the resolution never read the bill's held payments"

    post = Call(lambda: _post(other_poster), callers=True)
    post_in_time = post.answered_within(5.0)
    go.set()
    resolve.result(timeout=30.0)
    post.result(timeout=30.0)

    assert post_in_time, "the Post waited for a resolution that had only read"
    state, _, entries, events = _agrees(pg)
    assert state == LinkState.PENDING.value, (state, entries, events)
    assert events.count("drift_accepted") == 0, events
    assert conflicts == []


@pytest.mark.timeout(60)
def test_a_post_holding_the_held_payments_link_is_waited_for_by_the_resolution_not_deadlocked(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The caller's Post of the edited payment has taken the payment's link (a Post locks the
    link of a waiting record before it closes its entries) when the bookkeeper accepts Xero's
    version. The resolution must wait for the Post's commit on the link, then find nothing held:
    if it took the held entry first, each would wait for the other until PostgreSQL cancelled one
    as a deadlock (after deadlock_timeout, a second of the caller's time) to be run again."""
    drift_id = _held_payment(pg)
    read, go = _gate(monkeypatch, SqlOutboxRepository, "open_outbox_of_link")
    post = Call(lambda: _post(other_poster), callers=True)
    assert read.wait(15.0), "the Post never read the payment's open entries"

    resolve = Call(lambda: _accept_xero(pg, drift_id))
    resolve_in_time = resolve.answered_within(HOLD)
    go.set()
    began = time.monotonic()
    post.result(timeout=30.0)
    resolve.result(timeout=30.0)
    took = time.monotonic() - began

    assert not resolve_in_time, "the resolution did not wait for the Post holding the payment's link"
    state, _, entries, events = _agrees(pg)
    assert state == LinkState.PENDING.value, (state, entries, events)
    assert conflicts == [], f"rolled back and run again: {conflicts} ({took:.2f} s)"


@pytest.mark.timeout(60)
def test_a_resolution_holding_the_held_payment_has_a_post_of_it_wait_and_then_replace_the_failed_link(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The other order: the resolution has taken the held payment and is failing it when the
    caller posts the edited payment. The Post waits for its commit, then reads the link FAILED and
    queues the edited payment once."""
    drift_id = _held_payment(pg)
    read, go = _gate(monkeypatch, SqlOutboxRepository, "clear_waits")
    resolve = Call(lambda: _accept_xero(pg, drift_id))
    assert read.wait(15.0), "the resolution never failed the held payment"

    post = Call(lambda: _post(other_poster), callers=True)
    post_in_time = post.answered_within(HOLD)
    go.set()
    resolve.result(timeout=30.0)
    post.result(timeout=30.0)

    assert not post_in_time, "the Post did not wait for the resolution failing the payment"
    state, _, entries, events = _agrees(pg)
    assert state == LinkState.PENDING.value, (state, entries, events)
    assert events[-2:] == ["drift_accepted", "retry_accepted"], events
    assert conflicts == []


@pytest.mark.timeout(60)
def test_a_resolution_that_read_the_drift_before_the_bill_was_unlinked_is_refused_not_written_over_the_unlink(
    pg: Database, other_poster: Database, monkeypatch: pytest.MonkeyPatch, conflicts: list[str]
) -> None:
    """The bookkeeper accepts Xero's version and the resolution reads the drift, open. Right then
    an operator unlinks the bill on poster B: the unlink resolves the drift as UNLINKED and has
    the held payment wait for the bill to link again. The resolution must not go on from what it
    read and record the drift resolved as ACCEPT_XERO over the unlink's resolution: it is answered
    DRIFT_ALREADY_RESOLVED, as it would have been a moment later, and the payment keeps waiting."""
    drift_id = _held_payment(pg)
    read, go = _gate(monkeypatch, drift_resolution, "get_drift")
    resolve = Call(lambda: _accept_xero(pg, drift_id))
    assert read.wait(15.0), "the resolution never read the drift"
    unlinked = Call(lambda: unlink(other_poster, "c1", BILL, "operator:test"), callers=True)
    unlink_in_time = unlinked.answered_within(5.0)
    go.set()
    unlinked.result(timeout=30.0)
    with pytest.raises(XerolinkError) as refused:
        resolve.result(timeout=30.0)

    assert unlink_in_time, "the unlink waited for a resolution that had only read"
    assert refused.value.reason == Reason.DRIFT_ALREADY_RESOLVED, refused.value
    with UnitOfWork(pg, write=False) as uow:
        drift = uow.drift.get_drift("c1", drift_id)
        assert drift is not None
        assert (drift.state, drift.resolution, drift.resolved_by) == (rules.RESOLVED, rules.UNLINKED, "operator:test")
        payment = uow.links.get_link("c1", PAYMENT)
        assert payment is not None
        assert payment.state == LinkState.WAITING.value
        assert "DEPENDENCY_NOT_LINKED" in (payment.last_error or ""), payment.last_error
        assert "drift_accepted" not in [a.event for a in uow.links.audit(payment.id or 0)]
    assert conflicts == ["XerolinkError"]  # the refusal, seen once and not run again
