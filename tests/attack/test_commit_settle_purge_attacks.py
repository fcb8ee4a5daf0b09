"""Attacks on three recent changes of the dispatcher: a call's answers whose commit failed and may
have gone through (`answer_groups.AnswersMayBeCommitted`, `Results.write` marking the entries
handed back); a failed job's retry (DISPATCH_ERROR) waiting two HTTP timeouts before its look-up
(`results._SETTLE_AFTER`); and the outbox purge keeping a done entry until its available time is
also past the retention (`SqlOutboxRepository.purge_done_outbox`).

Whatever fails (Xero, the registry, the poster's own job), money must never be posted twice,
lost, or booked to the wrong organisation. Each test runs on SQLite and PostgreSQL (the
`database_url` fixture), against a real poster and the emulator over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import transaction_pb2, trust_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.service_layer.dispatch import results as results_module
from xerolink_poster.service_layer.dispatch.answer_groups import AnswerGroups
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.outcomes import apply_batch
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.contacts import Handler, post_all, wait
from tests.fixtures.lookups import is_lookup, unavailable
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for
from tests.fixtures.recorded_xero import RecordedXero, is_create, sent, tagged
from tests.fixtures.stored_rows import link_row, outbox_rows

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
US = 1_000_000


def _receipt(record_id: int) -> transaction_pb2.Transaction:
    """A trust receipt of 5,000.00: a RECEIVE bank transaction, nothing in Xero unique to it but
    its tag."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
    )


# == 1. answers whose commit failed and did NOT go through ========================================
def test_answers_whose_commit_failed_without_going_through_are_looked_up_once_the_claim_runs_out(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receipt R is created in Xero; applying the answer fails at the commit, and this time the
    commit did not go through (the transaction rolled back: the connection dropped before the
    COMMIT reached the server). `AnswersMayBeCommitted` is raised, `Results.write` marks R handed
    back, and the job's failure handler leaves it alone. b82133a says R then stays claimed until
    its claim runs out (`claim_ttl` from the call's `mark_uncertain`), and is looked up then (it
    was marked uncertain before the call).

    Must hold: within about one claim TTL, R is reclaimed, looked up (not created again), and
    linked; Xero holds R once."""
    emulator = emulator_factory()
    claim_ttl = 2.0
    app = poster_factory(
        settings(http_timeout=1.0, claim_ttl=claim_ttl, backoff_base=0.05, backoff_cap=0.2, idle_release=0.3)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipt = _receipt(71_001)
    rid = receipt.header.id
    lost_at: list[float] = []
    write = AnswerGroups._write

    def commit_lost_before_the_server(
        self: AnswerGroups, results: Sequence[Any], calls: int, committing: list[bool]
    ) -> None:
        if lost_at or not any(r.created is not None for r in results):
            write(self, results, calls, committing)
            return
        with UnitOfWork(self.db) as uow:
            committing.clear()
            apply_batch(uow, results, self.holder, self.actor, now_us())
            committing.append(True)
            lost_at.append(time.monotonic())
            # Raised before uow.commit(): the unit of work rolls back, nothing is written.
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(AnswerGroups, "_write", commit_lost_before_the_server)
    calls = RecordedXero(emulator, lambda request, handle: None)

    [name] = post_all(stub, [receipt])
    wait_for(lambda: bool(lost_at), timeout=8, what="the answer's commit to fail")
    [row] = outbox_rows(app, rid)
    assert row.state == "ready" and row.uncertain and row.claimed_by == app.config.instance_id, (
        f"after the commit failed, R should be held, uncertain: {row}"
    )
    # Within the claim TTL (plus a poll and a look-up), R must link.
    wait_for(
        lambda: link_row(app, rid).state == "linked",
        timeout=claim_ttl + 5.0,
        what="R reclaimed after its claim ran out, looked up and linked",
    )
    linked_after = time.monotonic() - lost_at[0]
    [state] = wait(stub, [name])
    tenant = org["tenant_id"]
    assert state == LINKED
    assert tagged(emulator, tenant, "BankTransactions").get(rid) == 1, f"creates: {calls.created('BankTransactions')}"
    assert calls.created("BankTransactions").count([rid]) == 1, "R was created again instead of looked up"
    assert any(rid in asked for asked in calls.asked("BankTransactions")), "R was never looked up"
    assert linked_after < claim_ttl + 5.0


# == 1b. the same door, through the retry's commit ================================================
def test_a_job_told_its_committed_retry_failed_leaves_alone_the_entry_another_job_claimed_since(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b82133a closes one door: a call's answers committed though the commit raised. A retry is
    written the same way (`Results.retry_together`, one `run_in_transaction`), and its commit can
    go through and then raise just as well (the server's acknowledgement lost). Receipt R's create
    call is answered 503: the retry is committed (R unclaimed, back-off 0.05 s), and another job of
    the same poster claims R and looks it up; then the first job is told its retry failed. It never
    marked R handed back (`handed_back` runs only after the commit returns), so its failure handler
    (`TenantWorker._record_failure(_still_held(...))`) records DISPATCH_ERROR on R, matched by the
    poster's name: the other job's claim is voided under it and an attempt counted while that job
    sends R: the race `Work.handed_back` exists against.

    Must hold: the failed job's error touches no entry another job holds (R's error is not
    DISPATCH_ERROR when the failure is recorded, its claim still the other job's), and R is in
    Xero once, linked."""
    emulator = emulator_factory()
    app = poster_factory(
        settings(http_timeout=1.0, backoff_base=0.05, backoff_cap=0.1, max_attempts=20, idle_release=5.0)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipt = _receipt(71_101)
    rid = receipt.header.id
    second_claim_looking, failure_recorded, ack_lost = threading.Event(), threading.Event(), threading.Event()
    answered_503 = threading.Event()
    snapshot: dict[str, Any] = {}

    def xero(request: Request, handle: Handler) -> Response | None:
        creates_r = is_create(request, "BankTransactions") and rid in sent(request, "BankTransactions")
        if creates_r and not answered_503.is_set():
            answered_503.set()
            return unavailable()
        looks_r_up = is_lookup(request, "BankTransactions") and str(rid) in (request.param("where") or "")
        if looks_r_up and not second_claim_looking.is_set():
            second_claim_looking.set()
            failure_recorded.wait(4)  # Xero takes a moment to answer the second job's look-up
        return None

    calls = RecordedXero(emulator, xero)
    real_transaction = run_in_transaction  # what results.py imported

    def retry_ack_lost(db: Any, work: Any, attempts: int = 5) -> Any:
        done = real_transaction(db, work, attempts)  # committed
        if answered_503.is_set() and not ack_lost.is_set():
            # The first write after the 503: R's retry (Results.retry_together).
            ack_lost.set()
            second_claim_looking.wait(4)  # another job of this poster has claimed R and looks it up
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return done

    record_failure = TenantWorker._record_failure

    def record_failure_snapshot(self: TenantWorker, claimed: Any, exc: Exception) -> None:
        try:
            record_failure(self, claimed, exc)
        finally:
            if ack_lost.is_set() and not failure_recorded.is_set():
                [row] = outbox_rows(app, rid)
                error = json.loads(link_row(app, rid).last_error or "{}")
                snapshot.update(
                    second_claim_looking=second_claim_looking.is_set(),
                    claimed_by=row.claimed_by,
                    attempts=row.attempts,
                    reason=error.get("reason", ""),
                )
                failure_recorded.set()

    monkeypatch.setattr(results_module, "run_in_transaction", retry_ack_lost)
    monkeypatch.setattr(TenantWorker, "_record_failure", record_failure_snapshot)

    [name] = post_all(stub, [receipt])
    wait_for(failure_recorded.is_set, timeout=9, what="the failed job's error to be recorded")
    [state] = wait(stub, [name])

    assert snapshot["second_claim_looking"], f"the scenario did not unfold: {snapshot}"
    assert snapshot["reason"] != Reason.DISPATCH_ERROR and snapshot["claimed_by"] == app.config.instance_id, (
        f"the failed job recorded its error on R, which another job of {app.config.instance_id} held and was "
        f"looking up: {snapshot}"
    )
    tenant = org["tenant_id"]
    assert tagged(emulator, tenant, "BankTransactions").get(rid) == 1, f"creates: {calls.created('BankTransactions')}"
    assert state == LINKED


# == 2. a job failing every time, and its siblings ================================================
# == 3. the purge and entries it keeps ============================================================
def test_done_entries_kept_for_their_available_time_do_not_stall_the_purge_of_those_behind_them(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The purge reads done entries oldest by `create_us`, `purge_batch` a transaction, and stops
    when a batch deletes fewer than `purge_batch`. 6bf16f8 keeps a done entry until its available
    time is past the retention too. Two of the oldest done entries have an available time years
    ahead (a Retry-After Xero or a gateway sent, which nothing bounds): they must be kept, but
    must not stall the purge: with `purge_batch=2`, the three purgeable entries created after
    them are deleted in one call."""
    emulator = emulator_factory()
    app = poster_factory(settings(outbox_retention=3600.0, purge_interval=3600.0, purge_batch=2))
    assert app.dispatcher is not None
    stub = stub_for(app)
    connect(stub, emulator)
    receipts = [_receipt(73_000 + i) for i in range(5)]
    states = wait(stub, post_all(stub, receipts))
    assert states == [LINKED] * 5
    rows = [outbox_rows(app, r.header.id)[0] for r in receipts]
    assert all(r.state == "done" for r in rows)
    old = now_us() - 2 * 3600 * US
    far = now_us() + 10 * 365 * 86400 * US
    table: Any = OutboxRow.__table__  # type: ignore[attr-defined]
    with app.db.write.begin() as conn:
        for i, row in enumerate(rows):
            conn.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(create_us=old + i, available_us=far if i < 2 else old + i)
            )

    purged = app.dispatcher.purge_done_outbox()

    left = [r.header.id for r in receipts if outbox_rows(app, r.header.id)]
    assert purged == 3 and left == [73_000, 73_001], f"purged {purged}, left {left}"
