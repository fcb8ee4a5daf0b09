"""Attacks, from outside, on four recent changes of the dispatcher: look-ups that page in the
order of the object's id (`lookups.LookUps._list_all`); a failed job that records its error only
on the entries it has not handed back (`Work.handed_back`, `tenant_loop._still_held`); a given-up
entry that keeps, as its available time, when the call Xero did not answer may still land, and a
repost that looks up no sooner (`OutboxRepository.latest_available`); and a 504 to a create call
that waits as no answer does (`creating.Creator._apply`).

Whatever fails (Xero, a gateway in front of it, the registry, the poster's own job), money must
never be posted twice, lost, or booked to the wrong organisation. Each test runs on SQLite and
PostgreSQL (the `database_url` fixture), against a real poster and the emulator over HTTP.

Xero behaviour relied on, beyond plain HTTP semantics, is cited where used. Throughout: a call the
poster gave up waiting for (its HTTP timeout) may still be carried out by Xero afterwards; that is
what `results.NO_ANSWER_SETTLE_TIMEOUTS` exists for (docs/poster.md), and a 504 is a gateway that
stopped waiting for an upstream server which may still carry the call out (RFC 9110, 15.6.5)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2, trust_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.database import now_us
from xerolink_poster.service_layer.dispatch.answer_groups import AnswerGroups
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker

from tests.fixtures.contacts import Handler, post_all, wait
from tests.fixtures.lookups import is_lookup, live_objects
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for, xero_objects
from tests.fixtures.recorded_xero import RecordedXero, is_create, sent, tagged, tags, too_many
from tests.fixtures.stored_rows import link_row, outbox_rows

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
TRUST_RECEIPT = common_pb2.TRANSACTION_KIND_TRUST_RECEIPT
BILL_PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT


# -- records --------------------------------------------------------------------------------------
def _receipt(record_id: int) -> transaction_pb2.Transaction:
    """A trust receipt of 5,000.00: a RECEIVE bank transaction, nothing in Xero unique to it but
    its tag."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
    )


def _payment(record_id: int, bill_id: int, cents: int = 10000) -> transaction_pb2.Transaction:
    """A payment of `cents` on client bill `bill_id` (waits for the bill to link)."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=bill_id, amount=samples.money(cents)),
    )


# -- what Xero saw and holds ------------------------------------------------------------------------
# -- the registry ---------------------------------------------------------------------------------
def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> Any:
    record = common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]
    return stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link


def _errors(stub: poster_grpc.PosterServiceStub, kind: int, records: Iterable[int]) -> dict[int, str]:
    return {r: _link(stub, kind, r).last_error.message for r in records}


# == 2 + 4. a job failing after a call Xero did not answer ==========================================
def test_a_job_that_fails_writing_the_retry_of_an_unanswered_call_still_waits_for_that_call_before_looking_up(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust receipt A (5,000.00) is sent alone; Xero is slow and carries the call out only after
    the poster's HTTP timeout (within two of them, the settle `NO_ANSWER_SETTLE_TIMEOUTS` grants
    Xero). Meanwhile receipt B is refused 429 (Retry-After: 3), which holds the organisation's
    calls. When the timeout fires, the registry fails as the retry of A is written (a session
    ended mid-statement): the job fails and records its error on A, which it still holds
    (`TenantWorker._record_failure`: DISPATCH_ERROR, uncertain, "the next attempt looks up
    first").

    The call on A is still unanswered, and Xero may still land it: A must not be looked up
    before the settle an unanswered call gets, whatever reason the retry is written under. Looked
    up after the back-off alone (when the 429's wait ends), A is not found, is created again in a
    call with B (another body, so Xero's Idempotency-Key does not replay the first), and then the
    first call lands: 5,000.00 deposited twice. A and B must each be in Xero once."""
    emulator = emulator_factory()  # Xero keeps Idempotency-Keys for minutes
    timeout = 2.5
    app = poster_factory(settings(http_timeout=timeout, backoff_base=0.05, backoff_cap=0.2, max_attempts=20))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipt_a, receipt_b = _receipt(98_000), _receipt(98_100)
    a, b = receipt_a.header.id, receipt_b.header.id
    lock = threading.Lock()
    a_looked_up = threading.Event()
    timeline: dict[str, float] = {}  # seconds after the first call on A reached Xero
    started: list[float] = []

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions"):
            carried = sent(request, "BankTransactions")
            with lock:
                first_on_a = carried == [a] and not started
                if first_on_a:
                    started.append(time.monotonic())
            if first_on_a:
                # Xero carries the call out late: after the poster's timeout, within two of them.
                a_looked_up.wait(1.9 * timeout - 0.05)
                handle(request)
                timeline["the first call on A landed"] = time.monotonic() - started[0]
                return Response.json(200, {})  # nobody reads it: the poster gave up
            if carried == [b] and "B refused 429" not in timeline:
                timeline["B refused 429"] = time.monotonic() - started[0]
                return too_many(3)
            return None
        if is_lookup(request, "BankTransactions") and started and a in tags(request.param("where") or ""):
            answer = handle(request)
            timeline.setdefault("A looked up again", time.monotonic() - started[0])
            a_looked_up.set()
            return answer
        return None

    calls = RecordedXero(emulator, xero)
    failed = threading.Event()
    retry_together = Results.retry_together

    def registry_fails_once(self: Results, retries: Any) -> None:
        unanswered = any(r.reason == Reason.XERO_NO_ANSWER for r in retries)
        if unanswered and not failed.is_set():
            failed.set()
            timeline["the retry's write failed"] = time.monotonic() - started[0]
            raise OperationalError("UPDATE outbox", {}, Exception("server closed the connection unexpectedly"))
        retry_together(self, retries)

    monkeypatch.setattr(Results, "retry_together", registry_fails_once)
    [name_a] = post_all(stub, [receipt_a])
    wait_for(lambda: bool(started), timeout=10, interval=0.01, what="the first call on A")
    [name_b] = post_all(stub, [receipt_b])

    states = wait(stub, [name_a, name_b])

    assert failed.is_set() and "B refused 429" in timeline, f"the scenario did not unfold: {timeline}"
    made = tagged(emulator, org["tenant_id"], "BankTransactions")
    assert made == {a: 1, b: 1}, (
        f"deposits per receipt {made}; {timeline}; create calls {calls.created('BankTransactions')}"
    )
    assert states == [LINKED, LINKED], _errors(stub, TRUST_RECEIPT, [a, b])


# == 3. a given-up entry purged before its settle =====================================================
def test_a_given_up_entry_is_not_purged_before_a_repost_may_look_it_up(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Two payments of 100.00 on a client bill are posted before the bill, and wait for it for
    longer than the outbox retention (30 days in production, `outbox_retention`, counted from
    acceptance; scaled here to 1 s). The bill is posted and links; the payments go to Xero in one
    call, which Xero carries out only after the poster's HTTP timeout. max_attempts=1: both are
    given up at once, "Check Xero for the reference before posting again"; the entry keeps the
    time the unanswered call's settle ends as its available time.

    The supervisor's purge deletes the done entries accepted more than the retention ago; it
    deleted the given-up ones too, their settle not yet over. A careless caller reposts payment 1
    once a purge has run (a receipt done after the give-up is purged): its first call is a look-up
    (the link remembers the unknown outcome), which must still wait for the call Xero may be
    carrying out. Made at once (`latest_available` found no entry: 0), it found nothing, the
    payment was made again in a call of its own (another body than the first call's, so Xero's
    Idempotency-Key did not replay it), and then the first call landed: the client's bill paid
    100.00 twice. The given-up entry must outlive its settle, and each payment be in Xero once."""
    emulator = emulator_factory()  # Xero keeps Idempotency-Keys for minutes
    timeout = 2.0
    retention = 1.0
    app = poster_factory(
        settings(
            http_timeout=timeout,
            backoff_base=0.05,
            backoff_cap=0.2,
            max_attempts=1,
            outbox_retention=retention,
            purge_interval=0.05,
        )
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    kinds = samples.sample_transactions(99_000)
    bill = kinds["client_bill"]
    bill_id = bill.header.id
    pay_1, pay_2 = _payment(99_101, bill_id), _payment(99_102, bill_id)
    p1, p2 = pay_1.header.id, pay_2.header.id
    lock = threading.Lock()
    started: list[float] = []
    p1_looked_up = threading.Event()
    timeline: dict[str, float] = {}

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "Payments"):
            with lock:
                first = not started
                if first:
                    started.append(time.monotonic())
            if first:
                p1_looked_up.wait(1.9 * timeout - 0.05)
                handle(request)
                timeline["the first call landed"] = time.monotonic() - started[0]
                return Response.json(200, {})  # nobody reads it: the poster gave up
            return None
        if is_lookup(request, "Payments") and started and p1 in tags(request.param("where") or ""):
            answer = handle(request)
            timeline.setdefault("payment 1 looked up", time.monotonic() - started[0])
            p1_looked_up.set()
            return answer
        return None

    calls = RecordedXero(emulator, xero)
    post_all(stub, [pay_1, pay_2])
    accepted = now_us()
    wait_for(
        lambda: now_us() - accepted > retention * 1_000_000, timeout=5, interval=0.05, what="the wait past retention"
    )
    post_all(stub, [bill])
    wait_for(lambda: _link(stub, BILL_PAYMENT, p1).state == FAILED, timeout=20, interval=0.01, what="given up")
    receipt = samples.sample_transactions(99_500)["trust_receipt"]
    post_all(stub, [receipt])  # done at once, then purged once older than the retention
    wait_for(lambda: outbox_rows(app, receipt.header.id) != [], timeout=5, interval=0.01, what="the receipt accepted")
    wait_for(
        lambda: not outbox_rows(app, receipt.header.id), timeout=10, interval=0.01, what="a purge after the give-up"
    )
    timeline["purged, reposted"] = time.monotonic() - started[0]
    assert outbox_rows(app, p1), f"the given-up entry was purged before its settle was over: {timeline}"
    given_up = _link(stub, BILL_PAYMENT, p1).last_error

    [again] = post_all(stub, [pay_1])  # the careless caller, at once
    [state] = wait(stub, [again])

    assert calls.created("Payments")[0] == [p1, p2], f"the scenario did not unfold: {calls.created('Payments')}"
    assert "Check Xero for the reference" in given_up.message, given_up
    made = tagged(emulator, org["tenant_id"], "Payments")
    assert made.get(p1) == 1, f"payments per record {made}; {timeline}; create calls {calls.created('Payments')}"
    assert state == LINKED, _errors(stub, BILL_PAYMENT, [p1])


# == 2. an answer whose commit went through, though the job was told it failed =======================
def _refund(record_id: int) -> transaction_pb2.Transaction:
    """An overpayment refund of 25.00 by the sample firm's client (participant 501): two
    operations, the client's RECEIVE-OVERPAYMENT and then the refund paid out of it."""
    refund = samples.sample_transactions(64_000)["overpayment_refund"]
    refund.header.id = record_id
    refund.header.reference = f"AS-{record_id}"
    return refund


def _overpayments_of(emulator: EmulatorServer, tenant: str, record_id: int) -> int:
    """Live overpayments whose first line carries the record's tag (an overpayment has no Reference)."""
    return sum(
        1
        for t in live_objects(xero_objects(emulator, tenant, "BankTransactions"))
        if f"-{record_id}]" in str((t.get("LineItems") or [{}])[0].get("Description", ""))
    )


def test_a_job_told_its_committed_answer_failed_leaves_alone_the_entry_another_job_claimed_since(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overpayment refund takes two calls: the client's overpayment, then the refund paid out
    of it. Xero makes the overpayment; the job applies the answer, and the registry commits it,
    but the acknowledgement of the COMMIT is lost on the way back (the server's connection drops):
    the job is told the write failed, though it went through. answer_groups.py says so itself
    ("one that fails at the commit (which may have gone through)"), and fails the call.

    Committed, the answer released the entry for its next operation, and another job of the same
    poster claimed it and is sending the refund (Xero takes a moment to answer). The failed job
    then records its error on the entries it "still holds" (`_still_held`): this one was never
    marked handed back, because the write raised. Matched by poster name, the other job's claim is
    voided under it, an attempt counted, DISPATCH_ERROR recorded, and the entry queued again while
    that job still sends it: the very race `Work.handed_back` was added against (a third job
    claims it, looks the refund up before the second job's call lands, and pays it out again).
    The failure must touch no entry another job holds; the refund is in Xero once."""
    emulator = emulator_factory()
    app = poster_factory(
        settings(http_timeout=3.0, backoff_base=0.05, backoff_cap=0.2, max_attempts=20, idle_release=5.0)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    refund = _refund(64_101)
    rid = refund.header.id
    refund_sent, failure_recorded, ack_lost = threading.Event(), threading.Event(), threading.Event()
    snapshot: dict[str, Any] = {}

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "Payments") and rid in sent(request, "Payments"):
            refund_sent.set()
            failure_recorded.wait(3)  # Xero takes a moment to answer the second job's call
        return None

    calls = RecordedXero(emulator, xero)
    write = AnswerGroups._write

    def commit_ack_lost(self: AnswerGroups, results: Any, count: int, committing: list[bool]) -> None:
        write(self, results, count, committing)  # committed
        made_overpayment = any(r.created is not None and r.created.local_ref == "overpayment" for r in results)
        if made_overpayment and not ack_lost.is_set():
            ack_lost.set()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    record_failure = TenantWorker._record_failure

    def record_failure_once_the_refund_is_sent(self: TenantWorker, claimed: Any, exc: Exception) -> None:
        refund_sent.wait(3)  # the thread is descheduled a moment on a loaded box
        snapshot["refund sent before"] = refund_sent.is_set()
        try:
            record_failure(self, claimed, exc)
        finally:
            [row] = outbox_rows(app, rid)
            error = json.loads(link_row(app, rid).last_error or "{}")
            snapshot.update(claimed_by=row.claimed_by, attempts=row.attempts, reason=error.get("reason", ""))
            failure_recorded.set()

    monkeypatch.setattr(AnswerGroups, "_write", commit_ack_lost)
    monkeypatch.setattr(TenantWorker, "_record_failure", record_failure_once_the_refund_is_sent)

    [state] = wait(stub, post_all(stub, [refund]))

    assert ack_lost.is_set() and failure_recorded.is_set() and snapshot["refund sent before"], (
        f"the scenario did not unfold: {snapshot}"
    )
    assert snapshot["reason"] != Reason.DISPATCH_ERROR, (
        f"the failed job recorded its error on the refund another job of {app.config.instance_id} was sending: "
        f"{snapshot}"
    )
    tenant = org["tenant_id"]
    assert _overpayments_of(emulator, tenant, rid) == 1
    assert tagged(emulator, tenant, "Payments").get(rid) == 1, f"refunds paid: {calls.created('Payments')}"
    assert state == LINKED


# == 4. a 504 to a payments call at its last attempt ==================================================
def test_payments_whose_call_a_gateway_answered_504_at_their_last_attempt_are_paid_once_when_posted_again(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Two payments of 100.00 on a client bill go to Xero in one call; a gateway in front of
    Xero answers it 504 at once (it stopped waiting: RFC 9110, 15.6.5), and Xero carries the call
    out a second later. max_attempts=1: both are given up, "Check Xero for the reference before
    posting again". A careless caller reposts payment 1 at once. Its look-up must wait the
    settle of a call left unanswered (a 504 is one): made at once it finds nothing, the payment is
    made again in a call of its own (another body, so Xero's Idempotency-Key does not replay the
    first), and the first call lands: the bill paid twice. Each payment in Xero once."""
    emulator = emulator_factory()
    timeout = 1.0
    app = poster_factory(settings(http_timeout=timeout, backoff_base=0.05, backoff_cap=0.2, max_attempts=1))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bill = samples.sample_transactions(99_200)["client_bill"]
    pay_1, pay_2 = _payment(99_301, bill.header.id), _payment(99_302, bill.header.id)
    p1, p2 = pay_1.header.id, pay_2.header.id
    landed = threading.Event()
    first: list[float] = []

    def gateway(request: Request, handle: Handler) -> Response | None:
        if not is_create(request, "Payments") or first:
            return None
        first.append(time.monotonic())

        def xero_finishes() -> None:
            time.sleep(1.0)  # Xero books the call a second after the gateway gave up (< 2 timeouts)
            handle(request)
            landed.set()

        threading.Thread(target=xero_finishes, daemon=True).start()
        return Response.json(504, {"Title": "Gateway Timeout", "Status": 504})

    calls = RecordedXero(emulator, gateway)
    assert wait(stub, post_all(stub, [bill])) == [LINKED]
    post_all(stub, [pay_1, pay_2])
    wait_for(lambda: _link(stub, BILL_PAYMENT, p1).state == FAILED, timeout=20, interval=0.01, what="given up")
    given_up = _link(stub, BILL_PAYMENT, p1).last_error

    [state] = wait(stub, post_all(stub, [pay_1]))  # the careless caller, at once

    assert calls.created("Payments")[0] == [p1, p2], f"the scenario did not unfold: {calls.created('Payments')}"
    assert landed.wait(5), "Xero never carried out the first call"
    assert "Check Xero for the reference" in given_up.message, given_up
    made = tagged(emulator, org["tenant_id"], "Payments")
    assert made.get(p1) == 1, f"payments per record {made}; create calls {calls.created('Payments')}"
    assert state == LINKED, _errors(stub, BILL_PAYMENT, [p1])


# == 1. a grouped look-up at Xero's URL limit, with its order =========================================
# Xero answers 404 to a URL longer than this (XeroAPI/Xero-NetStandard#471, XeroAPI/xero-node#404).
XERO_URL_MAX = 2091
XERO_ORIGIN = "https://api.xero.com"


def _encoded(value: str) -> int:
    """Characters `value` takes as a query parameter's value in the URL httpx sends."""
    return len(httpx.URL("http://h/", params={"v": value}).raw_path) - len(b"/?v=")


def _receipt_tag(record_id: int, reference: str) -> str:
    return f"{reference} [AS-TR-{record_id}]"


def test_receipts_whose_tags_fill_xeros_url_limit_without_the_order_are_looked_up_within_it(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Trust receipts with long references (the mapper allows 200 characters: an integration that
    puts the matter's description there) are sent in one call, which Xero answers 503: their
    outcome unknown, all are looked up before being sent again, their tags ORed in one `where` as
    far as a URL Xero serves allows (2,091 characters at https://api.xero.com; longer, Xero answers
    404: XeroAPI/Xero-NetStandard#471). The references are sized so that the tags fill the URL to
    exactly 2,091 characters with the `where` and `page` alone: the `order` a look-up now sends
    (`order=BankTransactionID ASC`; Xero's OpenAPI: "Order by an any element") does not fit too.
    Every look-up must reach Xero within its limit (one refused 404 fails the look-up again and
    again until the receipts give up unresolved), and each receipt is deposited once."""
    emulator = emulator_factory()
    app = poster_factory(settings(http_timeout=3.0, backoff_base=0.05, backoff_cap=0.2, max_attempts=5))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    path = "/api.xro/2.0/BankTransactions"
    prefix = max(len(str(httpx.URL(emulator.base_url.rstrip("/") + path))), len(XERO_ORIGIN + path))
    by_where_and_page = prefix + len("?where=") + len("&page=20")
    separator = _encoded(" OR ")

    def clause(record_id: int, reference: str) -> str:
        return f'Reference=="{_receipt_tag(record_id, reference)}"'

    # k references filling the `where` exactly: each "Settlement <id> " followed by x's, the
    # x's shared out so that the clauses and their separators take all the room there is.
    room = XERO_URL_MAX - by_where_and_page
    first = 98_501
    head = [f"Settlement {first + i} " for i in range(20)]
    widest = _encoded(clause(first, head[0].ljust(200, "x"))) + separator
    count = -(-(room + separator) // widest)  # as few as can fill it
    bare = sum(_encoded(clause(first + i, head[i])) for i in range(count)) + (count - 1) * separator
    xs = room - bare
    share = [xs // count + (1 if i < xs % count else 0) for i in range(count)]
    assert all(0 < n <= 200 - len(head[i]) for i, n in enumerate(share)), share
    references = {first + i: head[i] + "x" * share[i] for i in range(count)}
    where = " OR ".join(clause(r, ref) for r, ref in references.items())
    assert by_where_and_page + _encoded(where) == XERO_URL_MAX
    together = httpx.URL(XERO_ORIGIN + path, params={"where": where, "order": "BankTransactionID ASC", "page": "1"})
    assert len(str(together)) > XERO_URL_MAX  # all in one GET, with the order, Xero would answer 404
    ids = list(references)
    lock = threading.Lock()
    looked: list[tuple[int, int, set[int]]] = []  # (URL length at Xero's host, status, records)
    seen: list[str] = []

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions") and not seen:
            seen.extend(e.get("Reference", "") for e in json.loads(request.body)["BankTransactions"])
            return Response.json(503, {"Title": "Service Unavailable", "Status": 503})  # nothing made
        if is_lookup(request, "BankTransactions"):
            answer = handle(request)
            with lock:
                looked.append(
                    (len(XERO_ORIGIN) + len(request.target), answer.status, tags(request.param("where") or ""))
                )
            return answer
        return None

    RecordedXero(emulator, xero)
    receipts = [
        transaction_pb2.Transaction(
            header=samples.header(r, reference=ref),
            trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
        )
        for r, ref in references.items()
    ]

    states = wait(stub, post_all(stub, receipts))

    assert sorted(seen) == sorted(_receipt_tag(r, ref) for r, ref in references.items()), (
        "the references Xero saw are not the ones the test sized the URL for"
    )
    assert looked, "the receipts were never looked up"
    refused = [(length, status, sorted(records)) for length, status, records in looked if status != 200]
    assert not refused, f"look-ups Xero refused (URL length at Xero's host, status, records): {refused}"
    too_long = [length for length, _, _ in looked if length > XERO_URL_MAX]
    assert not too_long, f"look-up URLs longer than Xero serves: {too_long}"
    assert {r for _, _, records in looked for r in records} == set(ids)
    assert tagged(emulator, org["tenant_id"], "BankTransactions") == dict.fromkeys(ids, 1)
    assert states == [LINKED] * len(ids), _errors(stub, TRUST_RECEIPT, ids)


# == 1 + 4. a look-up refused, or answered 504 ========================================================
@pytest.mark.parametrize("status", [400, 504])
def test_a_receipt_whose_look_ups_are_refused_or_time_out_at_a_gateway_is_not_deposited_again(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, status: int
) -> None:
    """Xero books trust receipt A (5,000.00) but answers its create call 503: its outcome unknown,
    A is looked up before being sent again. The first two look-ups (GETs, which change nothing at
    Xero: RFC 9110, 9.2.1) are answered `status`: 400, Xero refusing the request (the `order` a
    look-up now sends, say; a refusal lists nothing), or 504, a gateway that stopped waiting (RFC
    9110, 15.6.5). Neither says what Xero holds: read as "none found", A would be deposited a
    second time. A must be found by a later look-up, linked to the one bank transaction, and never
    sent again."""
    emulator = emulator_factory(idempotency_minutes=0.0005)  # no replay to hide a second create
    app = poster_factory(settings(http_timeout=1.0, backoff_base=0.05, backoff_cap=0.2, max_attempts=10))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipt = _receipt(98_701 if status == 400 else 98_702)
    a = receipt.header.id
    lock = threading.Lock()
    refused: list[int] = []

    def xero(request: Request, handle: Handler) -> Response | None:
        with lock:
            creates = len(calls.created("BankTransactions"))
        if is_create(request, "BankTransactions") and creates == 1:
            handle(request)  # carried out, then answered 503
            return Response.json(503, {"Title": "Service Unavailable", "Status": 503})
        if is_lookup(request, "BankTransactions") and len(refused) < 2:
            refused.append(status)
            if status == 400:
                return Response.json(
                    400,
                    {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred"},
                )
            return Response.json(504, {"Title": "Gateway Timeout", "Status": 504})
        return None

    calls = RecordedXero(emulator, xero)

    [state] = wait(stub, post_all(stub, [receipt]))

    assert refused == [status, status], f"the scenario did not unfold: {refused}"
    assert calls.created("BankTransactions") == [[a]], f"A sent again: {calls.created('BankTransactions')}"
    [made] = live_objects(xero_objects(emulator, org["tenant_id"], "BankTransactions"))
    assert state == LINKED, _errors(stub, TRUST_RECEIPT, [a])
    assert [o.xero_id for o in _link(stub, TRUST_RECEIPT, a).xero_objects] == [made["BankTransactionID"]]
