"""Attacks from outside on d711c12, "Match a job's marks, unclaims and retries to its own claim, not
the poster's name": a claim's end (`lease_until_us`) is now a per-job token. The claim returns it
(`ClaimedEntry.lease_until_us`), the job keeps it on each Work (`Work.claim_until_us`, extended after
each successful mark in `Gate.call`), and the mark before a create call (`mark_uncertain(claims=)`),
the unclaim after a lost claim (`unclaim(claims=)`) and every retry or failure written through
`Results.reload` require it: a write is skipped when the stored claim's end differs from the job's.

Attacked as real Xero, a registry that drops a connection at the wrong moment, and the poster's own
jobs racing would: a real poster over gRPC against the emulator, on SQLite and PostgreSQL (the
`database_url` fixture). Whatever happens, money must never be posted twice, lost, left stuck
without a reason the caller can see, or booked to the wrong client."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import transaction_pb2, trust_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.repositories.outbox import SqlOutboxRepository
from xerolink_poster.service_layer.dispatch import gate as gate_module
from xerolink_poster.service_layer.unit_of_work import run_in_transaction

from tests.fixtures.contacts import Handler, post_all
from tests.fixtures.lookups import is_lookup, unavailable
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.fixtures.recorded_xero import RecordedXero, is_create, sent, tagged, tags, too_many
from tests.fixtures.stored_rows import link_row, outbox_rows
from tests.integration.connection_helpers import connect_request, posters, write_apps
from tests.integration.connection_helpers import stub as lifecycle_stub

LINKED = poster_pb2.LINK_STATE_LINKED
US = 1_000_000


# -- records and what the registry holds of them ------------------------------------------------------
def _receipt(record_id: int, cents: int = 500000) -> transaction_pb2.Transaction:
    """A trust receipt (5,000.00 unless `cents`): a RECEIVE bank transaction, nothing unique to it in
    Xero but its tag, so one sent twice is deposited twice."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(cents), description="Deposit on purchase"),
    )


def _stored(app: Any, record_id: int) -> dict[str, Any]:
    """The record's open entry and link as stored: what a caller's GetLink reflects."""
    rows = outbox_rows(app, record_id)
    row = rows[-1]
    link = link_row(app, record_id)
    error = json.loads(link.last_error) if link.last_error else {}
    return {
        "link state": str(link.state),
        "reason": error.get("reason", ""),
        "entry state": str(row.state),
        "claimed_by": row.claimed_by,
        "claim left (s)": round((row.lease_until_us - now_us()) / US, 1) if row.lease_until_us else 0,
        "uncertain": bool(row.uncertain),
        "attempts": row.attempts,
    }


# == 1. the mark's commit went through, its acknowledgement did not ==================================
def test_a_mark_whose_commit_went_through_unacknowledged_is_retried_not_left_claimed_without_a_reason(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trust receipt of 5,000.00 is claimed and, before its create call, `Gate.call` runs the
    one short transaction that counts the call and marks the entry uncertain, extending its claim
    (`mark_uncertain`: lease_until_us := now + claim_ttl). The registry commits it, but the
    acknowledgement of the COMMIT is lost (the server's connection drops; answer_groups.py and
    Results.handing_back treat exactly this case as "may have gone through"). `Gate.call` raises
    before it sets `Work.claim_until_us` to the new end, and Xero is never called. The job fails
    and `_record_failure` writes a retry of the entry (DISPATCH_ERROR, uncertain, after the
    settle) through `Results.reload`, which now skips it: the stored claim's end is the mark's,
    the Work's is the claim's. Nothing is written, nothing sets `claims_left`, and the entry
    stays claimed by this poster, uncertain, with no error on its link, until the extended claim
    runs out (claim_ttl: 300 s in production, 60 s here). Before d711c12 the reload matched by
    poster name and the retry was written.

    Money: the client's deposit is not in the trust account for the whole claim (five minutes),
    and meanwhile GetLink/WatchPosting show it in flight with no reason, no attempt counted.
    Expected: the receipt is retried after the settle (2 x http_timeout = 2 s) and posted once,
    well within 12 s."""
    emulator = emulator_factory()
    app = poster_factory(
        settings(claim_ttl=60.0, http_timeout=1.0, backoff_base=0.05, backoff_cap=0.2, max_attempts=20)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipt = _receipt(98_001)
    rid = receipt.header.id

    marked_here = threading.local()
    mark = SqlOutboxRepository.mark_uncertain

    def noting_mark(self: SqlOutboxRepository, *args: Any, **kwargs: Any) -> int:
        marked_here.flag = True
        return mark(self, *args, **kwargs)

    real = run_in_transaction
    lost = threading.Event()

    def ack_lost_after_the_mark(db: Any, work: Any, *args: Any, **kwargs: Any) -> Any:
        marked_here.flag = False
        result = real(db, work, *args, **kwargs)  # committed
        if getattr(marked_here, "flag", False) and not lost.is_set():
            lost.set()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return result

    monkeypatch.setattr(SqlOutboxRepository, "mark_uncertain", noting_mark)
    monkeypatch.setattr(gate_module, "run_in_transaction", ack_lost_after_the_mark)
    calls = RecordedXero(emulator, lambda request, handle: None)

    post_all(stub, [receipt])
    wait_for(lost.is_set, timeout=10, what="the mark's commit acknowledgement lost")
    time.sleep(1.0)  # the job's failure is recorded at once
    after_failure = _stored(app, rid)
    try:
        wait_for(lambda: link_row(app, rid).state == "linked", timeout=12, interval=0.1)
    except AssertionError:
        pytest.fail(
            f"the receipt was not posted 12 s after the lost acknowledgement; 1 s after it: {after_failure}; "
            f"now: {_stored(app, rid)}; create calls {calls.created('BankTransactions')}"
        )
    assert tagged(emulator, org["tenant_id"], "BankTransactions") == {rid: 1}


# == 2. a job that waited out its claim applies its look-up's answer to another job's claim ==========
def _refund(record_id: int) -> transaction_pb2.Transaction:
    """An overpayment refund of 25.00 by the sample firm's client (participant 501): two operations,
    the client's RECEIVE-OVERPAYMENT, then the refund paid out of it (extended profile)."""
    refund = samples.sample_transactions(record_id)["overpayment_refund"]
    refund.header.id = record_id
    refund.header.reference = f"AS-{record_id}"
    return refund


def _paid_from_trust(record_id: int, bill_id: int, cents: int) -> transaction_pb2.Transaction:
    """The firm takes `cents` of its fee for bill `bill_id` out of trust: two operations in one
    organisation, the trust bank's SPEND, then the bill's payment into the office bank."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        invoice_paid_from_trust=trust_pb2.InvoicePaidFromTrust(bill_id=bill_id, amount=samples.money(cents)),
    )


def _payments_on(emulator: Any, tenant: str, invoice_id: str) -> list[float]:
    """The amounts of the live payments Xero holds on the invoice."""
    return [
        float(p.get("Amount", 0))
        for p in xero_objects(emulator, tenant, "Payments")
        if str(p.get("Status", "")).upper() != "DELETED"
        and str((p.get("Invoice") or {}).get("InvoiceID", "")).lower() == invoice_id.lower()
    ]


def test_a_job_that_waited_out_its_claim_does_not_apply_its_look_up_to_the_claim_another_job_now_sends(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Bill B (936.55) is posted. Then, together, an overpayment refund Y and E, 400.00 of B's fee
    paid from trust (two operations each: E's trust SPEND, then B's payment). Their first
    operations go in one create call that Xero carries out but answers 503: outcome unknown, both
    come back together, and job H claims them to look them up. Xero answers the look-up of Y 429
    with Retry-After: 3 s, longer than the claim (claim_ttl 2 s here; 300 s in production, where
    Xero's Retry-After may be taken for up to a day). H waits the 3 s before looking E up, its
    claim runs out meanwhile, and the poster's next job J claims Y and E, finds both spends in
    Xero and records them (under J's own claim: right). E is released for its next operation and
    job J2 claims it and sends B's payment (Xero takes a moment to answer). H's look-up of E now
    answers (found): the token added by d711c12 keeps H's retry of Y off J2's claim
    (`Results.reload`), but the look-up's answer goes through `Results.write` ->
    `AnswerGroups` -> `outcomes.apply_batch`, which still matches the claim by poster name only
    (`still_ours`). H's stale answer is applied to the entry J2 holds: its claim is voided
    (claimed_by '', lease_until_us 0) and its uncertain mark cleared while J2's payment is at
    Xero. A third job claims E at once and, nothing marking it uncertain, sends B's payment again
    without a look-up, in another body than J2's (so another Idempotency-Key). No single call
    outlives a claim (http_timeout 2 s).

    Money: B is paid 400.00 twice in Xero for one 400.00 taken out of trust: the office bank shows
    400.00 the firm never received, and the client's bill shows 400.00 less owing than it is.
    Expected: the answer of a job that no longer holds the entry is dropped, like its retries, and
    B is paid once."""
    emulator = emulator_factory()
    app = poster_factory(
        settings(claim_ttl=2.0, http_timeout=2.0, backoff_base=0.05, backoff_cap=0.1, max_attempts=20, idle_release=5.0)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    tenant = org["tenant_id"]
    bill = samples.client_bill(99_001)
    b = bill.header.id
    [posted] = post_all(stub, [bill])
    assert wait_settled(stub, posted, timeout=15).state == LINKED
    refund, paid = _refund(99_010), _paid_from_trust(99_020, b, 40000)
    y, e = refund.header.id, paid.header.id

    lock = threading.Lock()
    seen = {"spends": 0, "overpayment look-ups": 0, "E look-ups": 0, "payments": 0}
    h_looks_e, j2_pays, j3_pays = threading.Event(), threading.Event(), threading.Event()

    def count(what: str) -> int:
        with lock:
            seen[what] += 1
            return seen[what]

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions") and {y, e} <= set(sent(request, "BankTransactions")):
            if count("spends") == 1:
                handle(request)  # Xero makes both, but the answer is lost: a 503
                return unavailable()
            return None
        where = request.param("where") or ""
        if is_lookup(request, "BankTransactions") and "OVERPAYMENT" in where.upper():
            n = count("overpayment look-ups")
            if n == 1:
                return too_many(3)  # H's look-up of Y: wait longer than the claim
            if n == 2:
                h_looks_e.wait(1.5)  # J's: after H asked for E
            return None
        if is_lookup(request, "BankTransactions") and e in tags(where):
            if count("E look-ups") == 1:  # H's, after its 3 s wait
                h_looks_e.set()
                j2_pays.wait(1.8)  # within http_timeout: J has found E, and J2 is paying B
            return None
        if is_create(request, "Payments") and e in sent(request, "Payments"):
            if count("payments") == 1:  # J2's
                j2_pays.set()
                j3_pays.wait(1.8)  # Xero takes a moment to answer (within http_timeout)
            else:
                j3_pays.set()
        return None

    calls = RecordedXero(emulator, xero)
    names = post_all(stub, [refund, paid])
    states = [wait_settled(stub, name, timeout=20).state for name in names]

    invoice_id = next(o["xero_id"] for o in json.loads(link_row(app, b).xero_objects) if o["local_ref"] == "invoice")
    payments = _payments_on(emulator, tenant, invoice_id)
    assert seen["overpayment look-ups"] >= 2 and h_looks_e.is_set(), f"the scenario did not unfold: {seen}"
    assert payments == [400.0], (
        f"bill {b} paid {payments} for one 400.00 taken out of trust; payment calls carrying E: "
        f"{[c for c in calls.created('Payments') if e in c]}; {seen}"
    )
    assert states == [LINKED, LINKED]


# == 3. guard: a look-up's retry written after its job waited out its claim ===========================
def _overpayments_of(emulator: Any, tenant: str, record_id: int) -> int:
    """Live overpayments whose first line carries the record's tag (an overpayment has no Reference)."""
    return sum(
        1
        for t in xero_objects(emulator, tenant, "BankTransactions")
        if str(t.get("Status", "")).upper() not in ("DELETED", "VOIDED")
        and f"-{record_id}]" in str((t.get("LineItems") or [{}])[0].get("Description", ""))
    )


def test_a_look_up_retry_written_after_its_job_waited_out_its_claim_leaves_the_new_claim_alone(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Guard (passes now; failed before d711c12). An overpayment refund X (the client's 25.00
    overpayment first) and a trust receipt R (5,000.00) go in one create call that Xero answers 503
    without doing anything: both come back uncertain, together, and job H claims them to look them
    up. Xero answers H's look-up of X 429 with Retry-After: 3 s, longer than the claim (2 s here).
    H waits before looking R up, its claim runs out, and the poster's next job J claims X and R,
    finds neither and sends both in one call, which Xero is slow to answer. H's look-up of R now
    answers, and H writes the retry of X it collected (XERO_LOOKUP_FAILED, uncertain, back after a
    short back-off, no settle). Matched by poster name, that retry voided J's claim while J's call
    was at Xero: a third job claimed X, looked it up before J's call landed, found nothing and
    created the overpayment again in a body of its own (another Idempotency-Key); and H, whose mark
    matched J's claim by name, deposited R a second time. With the claim's own end as the token
    (`Results.reload`, `mark_uncertain(claims=)`) H writes nothing on J's claims and sends nothing.

    Money: the client's overpayment recorded twice (25.00 the firm owes it twice) and the trust
    receipt deposited twice. Each must be in Xero once."""
    emulator = emulator_factory()
    app = poster_factory(
        settings(claim_ttl=2.0, http_timeout=2.0, backoff_base=0.05, backoff_cap=0.1, max_attempts=20, idle_release=5.0)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    tenant = org["tenant_id"]
    refund, receipt = _refund(99_110), _receipt(99_120)
    x, r = refund.header.id, receipt.header.id

    lock = threading.Lock()
    seen = {"first call": 0, "overpayment look-ups": 0, "R look-ups": 0, "J's call": 0}
    h_looks_r, j_sends, third_sends = threading.Event(), threading.Event(), threading.Event()

    def count(what: str) -> int:
        with lock:
            seen[what] += 1
            return seen[what]

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions"):
            carried = set(sent(request, "BankTransactions"))
            if {x, r} <= carried and count("first call") == 1:
                return unavailable()  # nothing made, outcome unknown: both looked up next
            if {x, r} <= carried:  # J's call
                count("J's call")
                j_sends.set()
                third_sends.wait(1.2)  # Xero takes a moment (within http_timeout)
            elif x in carried:
                third_sends.set()  # another job sends X again
            return None
        where = request.param("where") or ""
        if is_lookup(request, "BankTransactions") and "OVERPAYMENT" in where.upper():
            n = count("overpayment look-ups")
            if n == 1:
                return too_many(3)  # H's look-up of X: wait longer than the claim
            if n == 2:
                h_looks_r.wait(1.5)  # J's: after H asked for R
            return None
        if is_lookup(request, "BankTransactions") and r in tags(where):
            if count("R look-ups") == 1:  # H's, after its 3 s wait
                h_looks_r.set()
                j_sends.wait(1.5)  # within http_timeout: J found nothing and is sending both
            return None
        return None

    calls = RecordedXero(emulator, xero)
    names = post_all(stub, [refund, receipt])
    states = [wait_settled(stub, name, timeout=20).state for name in names]

    assert h_looks_r.is_set() and seen["J's call"] == 1, f"the scenario did not unfold: {seen}"
    made = (_overpayments_of(emulator, tenant, x), tagged(emulator, tenant, "BankTransactions").get(r, 0))
    assert made == (1, 1), (
        f"(overpayments of X, deposits of R) in Xero: {made}; create calls {calls.created('BankTransactions')}"
    )
    assert states == [LINKED, LINKED]


# == 4. guard: the call repeated after a 401 carries the claim its first mark extended ===============
def test_a_create_answered_401_is_repeated_under_the_claim_its_first_mark_extended(
    database_url: str, mapper_target: str, emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Guard (passes now). Xero answers a trust receipt's create call 401 (the access token was
    revoked early: it changed nothing at Xero). `Gate.call` refreshes the token once and repeats
    the call, marking the entry again first. The first mark moved the claim's end (the job's
    token) to its own; the repeated mark must match that end, not the claim's (`Gate.call` sets
    `Work.claim_until_us` right after the mark's commit, before the call). Carried stale, the
    repeated mark matches nothing: ClaimsLost, the worker ends its turn as if its lease were
    lost, and the put-back (matching the stale end too) leaves the entry claimed until the
    extended claim runs out (30 s here, 300 s in production), the deposit not in the bank.
    Expected: deposited once, within a few seconds."""
    emulator = emulator_factory()
    org = emulator.create_organisation("Harper Legal")
    receipt = _receipt(99_201)
    rid = receipt.header.id
    lock = threading.Lock()
    refused: list[float] = []

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions"):
            with lock:
                if not refused:
                    refused.append(time.monotonic())
                    return Response.json(401, {"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired"})
        return None

    with posters(database_url, mapper_target) as make:
        app = make(write_apps(tmp_path / "xero-apps.json", org, emulator), claim_ttl=30.0, http_timeout=1.0)
        poster = lifecycle_stub(app)
        poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
        calls = RecordedXero(emulator, xero)
        post_all(poster, [receipt])
        try:
            wait_for(lambda: link_row(app, rid).state == "linked", timeout=10, interval=0.1)
        except AssertionError:
            pytest.fail(
                f"not posted 10 s after the 401: {_stored(app, rid)}; calls {calls.created('BankTransactions')}"
            )
        assert refused, "Xero never answered 401"
        [row] = outbox_rows(app, rid)
        assert row.attempts == 0, f"the 401 was not answered by a refresh and a repeat within the call: {row}"
        assert tagged(emulator, org["tenant_id"], "BankTransactions") == {rid: 1}
