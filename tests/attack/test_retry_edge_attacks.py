"""Attacks on the edges of the dispatcher's retry path (`Results.retry_together`, `Retry`,
`LookUps.look_up`'s retries written in its `finally`, `Creator`): an exception that is no answer
of Xero's (a bug, a database error, an interrupt) in the middle of a look-up pass; entries that
Xero refused in a batch whole and that are retried alone; and a failed call some of whose entries
are at their last attempt.

Whatever happens: nothing is posted twice or lost, no entry another job holds is touched, an
entry given up fails visibly with its reason, the others come back together, and an entry whose
outcome is unknown keeps being looked up before anything of it is created again. Each test runs
on SQLite and PostgreSQL (the `database_url` fixture), against a real poster and the emulator
over HTTP."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2, trust_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.repositories.links import SqlLinkRepository
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.entrypoints.bootstrap import PosterApp
from xerolink_poster.service_layer.dispatch import lookups as lookups_module
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker

from tests.fixtures.contacts import Handler, post_all, wait
from tests.fixtures.lookups import collection_of, is_lookup, unavailable
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for
from tests.fixtures.recorded_xero import RecordedXero, is_create, tagged, tags, too_many

# Holds, back-offs and waits set against each other: another test worker's load stretched one
# past its wait (./dev test runs these alone).
pytestmark = pytest.mark.serial

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
CLIENT_BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
TRUST_RECEIPT = common_pb2.TRANSACTION_KIND_TRUST_RECEIPT
# Long enough that about eight tags fill a look-up's URL: a pass of 16 records takes two GETs.
LONG = "Conveyance of 12 Harbour Street " * 6
# The longest the emulator holds a call back while the scenario waits for another job (what it
# waits for comes within a back-off of at most 0.5 s: this is only a bound).
HOLD = 2.0


# -- records ----------------------------------------------------------------------------------------
def _bill(record_id: int, reference: str = "") -> transaction_pb2.Transaction:
    bill = samples.client_bill(record_id)
    if reference:
        bill.header.reference = reference
    return bill


def _receipt(record_id: int, reference: str = "") -> transaction_pb2.Transaction:
    """A trust receipt: a RECEIVE bank transaction, nothing in Xero unique to it but its tag."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id, reference=reference),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
    )


def _long(make: Callable[[int, str], transaction_pb2.Transaction], base: int, count: int) -> list[Any]:
    return [make(base + n, f"{n:02d} {LONG}") for n in range(count)]


# -- what Xero saw ----------------------------------------------------------------------------------
# -- the registry ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Entry:
    """A record's newest outbox entry and its link, as stored."""

    state: str
    claimed_by: str
    attempts: int
    uncertain: bool
    alone: bool
    available_us: int
    link_attempts: int
    reason: str
    message: str
    outcome_unknown: bool


def _entries(app: PosterApp, records: Iterable[int]) -> dict[int, Entry]:
    wanted = list(records)
    with app.db.session(write=False) as session:
        rows = session.exec(
            select(OutboxRow, LinkRow)
            .where(col(OutboxRow.link_id) == col(LinkRow.id), col(LinkRow.record_id).in_(wanted))
            .order_by(col(OutboxRow.id))
        ).all()
    found: dict[int, Entry] = {}
    for row, link in rows:
        error = json.loads(link.last_error) if link.last_error else {}
        found[link.record_id] = Entry(
            row.state,
            row.claimed_by,
            row.attempts,
            row.uncertain,
            row.alone,
            row.available_us,
            link.attempts,
            str(error.get("reason", "")),
            str(error.get("message", "")),
            link.outcome_unknown,
        )
    return found


def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> Any:
    record = common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]
    return stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link


def _errors(stub: poster_grpc.PosterServiceStub, kind: int, records: Iterable[int]) -> dict[int, str]:
    return {r: _link(stub, kind, r).last_error.message for r in records}


# == 1. an exception in the middle of a look-up pass =================================================
def _from(name: str) -> bool:
    """Called (a few frames up) from a function of this name."""
    frame = sys._getframe(1)
    for _ in range(6):
        if frame.f_back is None:
            return False
        frame = frame.f_back
        if frame.f_code.co_name == name:
            return True
    return False


@pytest.mark.parametrize("failing", ["while-reading-a-look-up", "after-the-look-up-pass"])
def test_a_job_failing_after_its_look_up_pass_wrote_its_retries_leaves_alone_what_another_job_claimed_since(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Sixteen trust receipts (16 x 5,000.00 into the trust account) are sent in one call, which
    Xero answers 503: their outcome unknown, they are looked up before being sent again, in two
    GETs (their long references fill a URL every eight or so). Xero answers the first GET 503:
    the pass collects that retry and writes it in its `finally`, and the job goes on. Then the
    registry fails (a session ended mid-statement), and the job records the failure on every
    entry it claimed (`TenantWorker._record_failure`, `Results.retry`):

    - while-reading-a-look-up: while the second GET's answer is read (`links.holders`), and the
      job's thread is descheduled for a moment between the pass's write and the failure's (a
      loaded box; here until the next job has claimed the first GET's receipts);
    - after-the-look-up-pass: when writing Xero's answer to the job's create call for the
      second GET's receipts, which Xero took a moment to answer. No thread stalls.

    Either way the first GET's receipts came back after their short back-off and another job of
    the same poster claimed them and is looking them up. The failure must be recorded only on
    entries this job still holds. Matched by poster name (`Results.reload` ->
    `outcomes.still_ours`), the other job's claim is voided under it, an attempt counted, and the
    receipts are queued again while that job still sends them: a third job claims them, both
    find nothing and both create. Where the two create calls differ (the third job's carries the
    other receipts too, not found in Xero) Xero's Idempotency-Key does not help, and 5,000.00 is
    deposited twice per receipt. Independent of Xero beyond a 5xx leaving a create's outcome
    unknown."""
    emulator = emulator_factory()  # Xero keeps Idempotency-Keys for minutes
    # Above HOLD, so no held call times out. Each receipt of the failed job waits two of these
    # (the settle of a DISPATCH_ERROR, results.NO_ANSWER_SETTLE_TIMEOUTS) before its look-up.
    app = poster_factory(
        settings(http_timeout=HOLD + 0.5, backoff_base=0.05, backoff_cap=0.5, max_attempts=20, idle_release=5.0)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipts = _long(_receipt, 90_000 if failing == "while-reading-a-look-up" else 90_100, 16)
    ids = [r.header.id for r in receipts]
    holder = app.config.instance_id
    lock = threading.Lock()
    first_get: set[int] = set()  # the records of the pass's first GET, answered 503
    asks: dict[int, int] = {}
    sibling_asked, failure_recorded, third_asked, sibling_answered = (threading.Event() for _ in range(4))
    snapshot: dict[int, Entry] = {}
    stolen: list[bool] = []
    puts: list[list[int]] = []
    two_puts = threading.Event()

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions"):
            carried = sorted(tags(request.body.decode()))
            with lock:
                puts.append(carried)
                if len(puts) == 1:
                    return unavailable()  # the first call: nothing created, outcome unknown
                slow = len(puts) == 2 and failing == "after-the-look-up-pass"
                mine = bool(stolen and stolen[0] and set(carried) & first_get)
                if mine and len([p for p in puts if set(p) & first_get]) >= 3:
                    two_puts.set()
            if slow:
                sibling_asked.wait(HOLD)  # Xero takes a moment to answer the job's create call
            if mine:
                two_puts.wait(HOLD)  # both jobs that hold the receipts send them
            return None
        if not is_lookup(request, "BankTransactions"):
            return None
        asked = tags(request.param("where") or "")
        with lock:
            for record in asked:
                asks[record] = asks.get(record, 0) + 1
            if not first_get:
                first_get.update(asked)
                return unavailable()
            round_ = max((asks[r] for r in asked & first_get), default=0)
        if round_ == 2:  # the next job, which claimed the first GET's receipts again
            sibling_asked.set()
            failure_recorded.wait(HOLD)
            if stolen and stolen[0]:
                third_asked.wait(HOLD)
            response = handle(request)
            sibling_answered.set()
            return response
        if round_ == 3 and not sibling_answered.is_set():  # a third job claimed them meanwhile
            third_asked.set()
            sibling_answered.wait(HOLD)
        return None

    RecordedXero(emulator, xero)
    failed_once = threading.Event()
    session_ended = OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
    holders = SqlLinkRepository.holders
    write = Results.write

    def failing_holders(self: SqlLinkRepository, connection_id: str, xero_ids: Any) -> Any:
        if first_get and not failed_once.is_set() and _from("look_up"):
            failed_once.set()
            raise session_ended
        return holders(self, connection_id, xero_ids)

    def failing_write(self: Results, created: Any, rejected: Any) -> None:
        if first_get and not failed_once.is_set() and _from("_apply"):
            failed_once.set()
            raise session_ended
        write(self, created, rejected)

    record_failure = TenantWorker._record_failure

    def descheduled(self: TenantWorker, claimed: Any, exc: Exception) -> None:
        sibling_asked.wait(HOLD)
        record_failure(self, claimed, exc)

    retry_together = Results.retry_together

    def watched(self: Results, retries: Sequence[Retry]) -> None:
        retry_together(self, retries)
        if any(r.reason == Reason.DISPATCH_ERROR for r in retries) and not failure_recorded.is_set():
            with lock:
                snapshot.update(_entries(app, first_get))
                stolen.append(any(e.reason == Reason.DISPATCH_ERROR for e in snapshot.values()))
            failure_recorded.set()

    if failing == "while-reading-a-look-up":
        monkeypatch.setattr(SqlLinkRepository, "holders", failing_holders)
        monkeypatch.setattr(TenantWorker, "_record_failure", descheduled)
    else:
        monkeypatch.setattr(Results, "write", failing_write)
    monkeypatch.setattr(Results, "retry_together", watched)

    names = post_all(stub, receipts)
    states = wait(stub, names)

    assert failed_once.is_set() and first_get and sibling_asked.is_set(), "the scenario did not unfold"
    assert failure_recorded.is_set(), "the job's failure was never recorded"
    made = tagged(emulator, org["tenant_id"], "BankTransactions")
    twice = {r: n for r, n in made.items() if n > 1}
    assert not twice, f"receipts deposited more than once {twice}; the create calls: {puts}"
    assert states == [LINKED] * len(ids), _errors(stub, TRUST_RECEIPT, ids)
    assert sorted(made) == sorted(ids)
    touched = {
        r: (e.attempts, e.reason, e.claimed_by) for r, e in snapshot.items() if e.reason == Reason.DISPATCH_ERROR
    }
    assert not touched, (
        f"the failing job recorded its failure on receipts another job of poster {holder} held: {touched}"
    )


class Interrupted(BaseException):
    """Not an Exception: what a KeyboardInterrupt, a SystemExit or a cancelled task raises."""


def _mid_pass_failure(
    poster_factory: PosterFactory,
    emulator_factory: EmulatorFactory,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    base: int,
    **dispatcher: Any,
) -> tuple[PosterApp, poster_grpc.PosterServiceStub, dict[str, Any], EmulatorServer, RecordedXero, list[int], set[int]]:
    """Sixteen bills with long references in one create call, answered 503; the look-up pass
    that follows takes two GETs: Xero answers the first 503, and `raised` is raised while the
    second GET's answer is read (`lookups._take`). Returns once raised, with the records of the
    first GET."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    app = poster_factory(
        settings(http_timeout=2.0, backoff_base=1.0, backoff_cap=2.0, max_attempts=20, idle_release=5.0, **dispatcher)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = _long(_bill, base, 16)
    ids = [b.header.id for b in bills]
    first_get: set[int] = set()
    lock = threading.Lock()

    def xero(request: Request, handle: Handler) -> Response | None:
        with lock:
            if is_create(request, "Invoices") and not calls.created("Invoices")[1:]:
                return unavailable()
            if is_lookup(request, "Invoices") and not first_get:
                first_get.update(tags(request.param("where") or ""))
                return unavailable()
        return None

    calls = RecordedXero(emulator, xero)
    take = lookups_module._take
    done = threading.Event()

    def buggy_take(*args: Any) -> Any:
        if not done.is_set():
            done.set()
            raise raised
        return take(*args)

    monkeypatch.setattr(lookups_module, "_take", buggy_take)
    post_all(stub, bills)
    assert done.wait(20), "the look-up pass never read a second GET"
    assert first_get and len(first_get) < len(ids), f"the scenario did not unfold: {sorted(first_get)}"
    return app, stub, org, emulator, calls, ids, first_get


def test_a_bug_in_the_middle_of_a_look_up_pass_writes_its_collected_retries_once_and_posts_each_bill_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen bills are sent in one call that Xero answers 503: each is looked up before being
    sent again, in two GETs. Xero answers the first GET 503 (a retry the pass collects), and a bug
    (a KeyError) is raised while the second GET's answer is read. The pass writes the retry it
    collected in its `finally` (the first GET's bills: XERO_LOOKUP_FAILED, one attempt). The job
    failed before sending anything of the bills it still holds, the second GET's, so they run
    again in halves (`TenantWorker._run`): looked up again, then created. No bill may count the
    failed pass twice (the retry written, then the failure written over it), none may be lost
    (left claimed, or failed), the first GET's stay marked uncertain (to be looked up), and each
    is then posted once."""
    app, stub, org, emulator, calls, ids, first_get = _mid_pass_failure(
        poster_factory, emulator_factory, monkeypatch, KeyError("Reference"), 91_000
    )

    def written() -> bool:
        entries = _entries(app, first_get)
        return all(not e.claimed_by and e.reason == Reason.XERO_LOOKUP_FAILED for e in entries.values())

    wait_for(written, timeout=10, what="the failed pass written")
    for record, entry in _entries(app, first_get).items():
        assert (entry.state, entry.uncertain) == ("ready", True), (record, entry)
        assert (entry.attempts, entry.link_attempts) == (2, 2), f"the failed pass counted twice: {record} {entry}"

    wait_for(
        lambda: all(_link(stub, CLIENT_BILL, r).state == LINKED for r in ids), timeout=30, what="every bill linked"
    )
    made = tagged(emulator, org["tenant_id"], "Invoices")
    assert made == dict.fromkeys(ids, 1), f"invoices per bill: {made}; create calls {calls.created('Invoices')}"
    final = _entries(app, ids)
    attempts = {r: e.link_attempts for r, e in final.items()}
    assert attempts == {r: 3 if r in first_get else 2 for r in ids}, "attempts counted twice"
    assert all(e.reason != Reason.DISPATCH_ERROR for e in final.values())


def test_an_interrupt_in_the_middle_of_a_look_up_pass_writes_its_collected_retries_and_loses_no_bill(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but what is raised while the second GET's answer is read is no Exception: a
    BaseException (a KeyboardInterrupt, a SystemExit, a task cancelled), which the job's handler
    does not catch. The pass must still write the retry it collected for the first GET's bills
    (its `finally`): back to the queue at once, counted, uncertain. The second GET's bills are
    left claimed; once their claim runs out (claim_ttl) they must come back, be looked up (still
    uncertain) and be posted once: nothing lost, nothing twice."""
    app, stub, org, emulator, calls, ids, first_get = _mid_pass_failure(
        poster_factory, emulator_factory, monkeypatch, Interrupted(), 92_000, claim_ttl=3.0
    )

    def written() -> bool:
        entries = _entries(app, first_get)
        return all(e.reason == Reason.XERO_LOOKUP_FAILED and e.attempts == 2 for e in entries.values())

    wait_for(written, timeout=10, what="the retries the pass collected, written")
    for record, entry in _entries(app, first_get).items():
        assert (entry.state, entry.claimed_by, entry.uncertain) == ("ready", "", True), (record, entry)

    wait_for(
        lambda: all(_link(stub, CLIENT_BILL, r).state == LINKED for r in ids),
        timeout=40,
        what="every bill linked",
    )
    made = tagged(emulator, org["tenant_id"], "Invoices")
    assert made == dict.fromkeys(ids, 1), f"invoices per bill: {made}; create calls {calls.created('Invoices')}"
    attempts = {r: e.link_attempts for r, e in _entries(app, ids).items()}
    assert attempts == {r: 3 if r in first_get else 2 for r in ids}, attempts


# == 2. entries retried alone =========================================================================
def _refused_whole() -> Response:
    """Xero's 400 for a batch as a whole: no element named (NOTES: Xero facts)."""
    return Response.json(
        400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred"}
    )


def test_entries_of_a_batch_refused_whole_stay_alone_through_failed_look_ups_and_count_each_attempt_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero refuses a call of four bills as a whole (a 400 naming no element) after it created the
    first two: each bill is unknown, to be looked up and then sent in a call of its own
    (`alone`). Their look-up is answered 429 (Retry-After: 1; no attempt counted), then 503 (one
    attempt); these retries are written by the look-up pass, grouped together, with `alone`
    unset in their `Retry`. Then the look-up finds the first two, the other two are sent alone,
    and Xero answers the first of those calls 503: it is looked up again and sent alone again.
    Through all of it the bills must stay alone (no later call carries two of them), every
    attempt count must be what was tried (the refusal, the 503 look-up, each 503 call, the
    creation; never the 429), and each bill must be in Xero once."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    app = poster_factory(settings(http_timeout=1.0, backoff_base=0.2, backoff_cap=0.4, max_attempts=20))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [_bill(93_000 + n) for n in range(4)]
    ids = [b.header.id for b in bills]
    lock = threading.Lock()
    gets: list[set[int]] = []
    alone_failed: list[int] = []
    seen: dict[str, dict[int, Entry]] = {}

    def xero(request: Request, handle: Handler) -> Response | None:
        with lock:
            puts = len(calls.created("Invoices"))
            if is_create(request, "Invoices") and puts == 1:
                body = json.loads(request.body)
                body["Invoices"] = body["Invoices"][:2]  # Xero made these two, then refused the call
                handle(dataclasses.replace(request, body=json.dumps(body).encode()))
                return _refused_whole()
            if is_create(request, "Invoices") and puts > 1 and not alone_failed:
                alone_failed.extend(tags(request.body.decode()))
                return unavailable()
            if is_lookup(request, "Invoices"):
                gets.append(tags(request.param("where") or ""))
                if len(gets) == 1:
                    return too_many(1)
                if len(gets) == 2:
                    seen["before 503"] = _entries(app, ids)
                    return unavailable()
        return None

    calls = RecordedXero(emulator, xero)
    names = post_all(stub, bills)

    states = wait(stub, names)

    created = calls.created("Invoices")
    assert created[0] == ids, f"the scenario did not unfold: {created}"
    assert len(gets) >= 4 and alone_failed, f"the scenario did not unfold: {gets}, {alone_failed}"
    assert all(len(c) == 1 for c in created[1:]), f"bills refused whole sent together again: {created}"
    assert sorted(r for c in created[1:] for r in c) == sorted(ids[2:] + alone_failed), created
    made = tagged(emulator, org["tenant_id"], "Invoices")
    assert made == dict.fromkeys(ids, 1), f"invoices per bill: {made}"
    assert states == [LINKED] * 4, _errors(stub, CLIENT_BILL, ids)
    before = seen["before 503"]
    assert {r: (e.alone, e.attempts, e.uncertain) for r, e in before.items()} == dict.fromkeys(ids, (True, 1, True)), (
        f"after the 429 on the look-up: {before}"
    )
    attempts = {r: e.link_attempts for r, e in _entries(app, ids).items()}
    # The refusal, the 503 look-up, the creation (or finding); a 503 alone call once more.
    assert attempts == {r: 4 if r in alone_failed else 3 for r in ids}, attempts


def test_retries_grouped_in_one_look_up_pass_keep_the_alone_flag_on_its_entries_only(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One job sends three calls: four bills, which Xero refuses whole (a 400 naming no element:
    each is to be sent alone), four trust receipts, answered 503 (sent together again), and a
    journal, answered 429 with Retry-After: 3, which holds the organisation's calls. When the
    wait is over the bills and receipts are claimed in one job and looked up in one pass, whose
    two GETs Xero answers 503: their retries are written together (`Results.retry_together`:
    one time for all). Grouped so, the bills must stay alone and the receipts must not become
    alone: then each bill goes in a call of its own, the receipts in one call, each once."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    app = poster_factory(settings(http_timeout=1.0, backoff_base=1.5, backoff_cap=1.5, max_attempts=20))
    stub = stub_for(app)
    # The extended profile posts general journals (as manual journals).
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    bills = [_bill(96_000 + n) for n in range(4)]
    receipts = [_receipt(96_100 + n) for n in range(4)]
    journal = samples.sample_transactions(96_200)["general_journal"]
    a = [t.header.id for t in bills]
    b = [t.header.id for t in receipts]
    lock = threading.Lock()
    looked: list[str] = []
    seen: dict[int, Entry] = {}

    def xero(request: Request, handle: Handler) -> Response | None:
        with lock:
            if is_create(request, "Invoices") and len(calls.created("Invoices")) == 1:
                return _refused_whole()
            if is_create(request, "BankTransactions") and len(calls.created("BankTransactions")) == 1:
                return unavailable()
            if is_create(request, "ManualJournals") and len(calls.created("ManualJournals")) == 1:
                return too_many(3)
            if is_lookup(request, "Invoices") or is_lookup(request, "BankTransactions"):
                looked.append(collection_of(request))
                if len(looked) <= 2:
                    return unavailable()
        return None

    calls = RecordedXero(emulator, xero)
    retry_together = Results.retry_together

    def watched(self: Results, retries: Any) -> None:
        retry_together(self, retries)
        if len(retries) == 2 and not seen:
            seen.update(_entries(app, a + b))

    monkeypatch.setattr(Results, "retry_together", watched)
    states = wait(stub, post_all(stub, [*bills, *receipts, journal]))

    assert calls.created("Invoices")[0] == a and calls.created("BankTransactions")[0] == b, "did not unfold"
    assert seen, f"the two look-ups' retries were not written together: {looked}"
    assert {r: e.alone for r, e in seen.items()} == {**dict.fromkeys(a, True), **dict.fromkeys(b, False)}, seen
    assert len({e.available_us for e in seen.values()}) == 1, "the pass's retries did not come back together"
    assert all(e.attempts == 2 and e.uncertain for e in seen.values()), seen
    assert all(len(c) == 1 for c in calls.created("Invoices")[1:]), calls.created("Invoices")
    assert [sorted(c) for c in calls.created("BankTransactions")] == [b, b], calls.created("BankTransactions")
    assert states == [LINKED] * 9, _errors(stub, CLIENT_BILL, a)
    assert tagged(emulator, org["tenant_id"], "Invoices") == dict.fromkeys(a, 1)
    assert tagged(emulator, org["tenant_id"], "BankTransactions") == dict.fromkeys(b, 1)


# == 3. giving up within a group ======================================================================
def _joined(
    stub: poster_grpc.PosterServiceStub,
    calls: RecordedXero,
    resource: str,
    first: list[transaction_pb2.Transaction],
    second: list[transaction_pb2.Transaction],
) -> list[str]:
    """`first` posted and failed once (its call answered 503 by the caller's `change`), then
    `second` posted and answered 429 with Retry-After: 4: when the tenant's wait ends, both are
    claimed together and sent in one call, `first` at its second attempt, `second` at its first.
    `second` is posted as soon as the first call reached Xero, not once its retry shows: `first`
    comes back after its back-off (1.5 to 3 s), and `second` must be sent alone before that, which
    a loaded machine did not always manage after polling for the retry."""
    names = post_all(stub, first)
    wait_for(lambda: len(calls.created(resource)) >= 1, interval=0.005, what="the first call")
    return names + post_all(stub, second)


def test_a_call_failing_with_some_entries_at_their_last_attempt_fails_those_visibly_and_finds_the_rest(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """max_attempts=2. Bills A fail once (503), bills B are refused 429 and wait; when the wait is
    over A (looked up, not found) and B go in one call, which Xero carries out but answers 503
    (its outcome unknown). A are at their last attempt: they must fail for good, visibly, with
    Xero's reason and a message saying they gave up and that Xero may hold them; their links
    remember the unknown outcome. B must come back together, be looked up in one GET and be
    found, never created again. A careless caller then posts A again at once: their first call
    must be a look-up, which finds them. Each bill in Xero once."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    app = poster_factory(settings(http_timeout=1.0, backoff_base=3.0, backoff_cap=3.0, max_attempts=2))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_bill(94_000 + n) for n in range(2)]
    second = [_bill(94_100 + n) for n in range(2)]
    a = [b.header.id for b in first]
    b = [t.header.id for t in second]
    lock = threading.Lock()

    def xero(request: Request, handle: Handler) -> Response | None:
        with lock:
            puts = len(calls.created("Invoices"))
        if is_create(request, "Invoices") and puts == 1:
            return unavailable()
        if is_create(request, "Invoices") and puts == 2:
            return too_many(4)
        if is_create(request, "Invoices") and puts == 3:
            handle(request)  # carried out, then answered 503
            return unavailable()
        return None

    calls = RecordedXero(emulator, xero)
    names = _joined(stub, calls, "Invoices", first, second)

    states = wait(stub, names)

    created = calls.created("Invoices")
    assert [sorted(c) for c in created[:3]] == [a, b, a + b], f"the scenario did not unfold: {created}"
    assert states == [FAILED, FAILED, LINKED, LINKED], _errors(stub, CLIENT_BILL, a + b)
    for record in a:
        link = _link(stub, CLIENT_BILL, record)
        assert link.last_error.reason == Reason.XERO_UNAVAILABLE, link.last_error
        assert "gave up after 2 attempts" in link.last_error.message, link.last_error.message
        assert "Check Xero for the reference" in link.last_error.message, link.last_error.message
    assert all(_entries(app, a)[r].outcome_unknown for r in a), _entries(app, a)
    after = len(calls.asked("Invoices"))
    assert created[3:] == [], f"B created again after Xero made them: {created}"
    b_lookups = [ids for ids in calls.asked("Invoices") if ids & set(b)]
    assert b_lookups[-1] == set(b), f"B did not come back together: {b_lookups}"

    again = wait(stub, post_all(stub, first))

    assert again == [LINKED, LINKED], _errors(stub, CLIENT_BILL, a)
    assert calls.created("Invoices")[3:] == [], f"A created again: {calls.created('Invoices')}"
    assert any(ids & set(a) for ids in calls.asked("Invoices")[after:]), "A posted again without a look-up"
    assert tagged(emulator, org["tenant_id"], "Invoices") == dict.fromkeys(a + b, 1)


def test_an_entry_given_up_while_its_unanswered_call_may_still_land_is_not_deposited_twice_when_posted_again(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """max_attempts=2. Trust receipt A fails once (503); receipt B is refused 429 and waits; then
    A (looked up, not found) and B go in one call, which Xero is slow to carry out: the poster
    gives up on it at its HTTP timeout (1.5 s), and Xero completes it a little later (within two
    timeouts, what `NO_ANSWER_SETTLE_TIMEOUTS` allows Xero: B is looked up only after that).
    A was at its last attempt and fails for good, "Check Xero for the reference before posting
    again". A careless caller (an integration that reposts whatever failed) posts A again at
    once. The repost is looked up first (the link remembers the unknown outcome), but at once:
    before Xero has completed the call the poster gave up on, so the look-up finds nothing, A is
    created again, and then the first call lands: 5,000.00 deposited twice. Xero's Idempotency-Key
    does not help: the repost's call carries A alone, another body than the call of B and A. The
    settle given to an unanswered call's entries must hold for the one given up too: A in Xero
    once."""
    emulator = emulator_factory()  # Xero keeps Idempotency-Keys for minutes
    timeout = 1.5
    app = poster_factory(settings(http_timeout=timeout, backoff_base=3.0, backoff_cap=3.0, max_attempts=2))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipt_a, receipt_b = _receipt(95_000), _receipt(95_100)
    a, b = receipt_a.header.id, receipt_b.header.id
    lock = threading.Lock()
    slow_started: list[float] = []
    repost_looked = threading.Event()
    timeline: dict[str, float] = {}  # seconds after the slow call reached Xero

    def xero(request: Request, handle: Handler) -> Response | None:
        with lock:
            puts = len(calls.created("BankTransactions"))
        if is_create(request, "BankTransactions") and puts == 1:
            return unavailable()
        if is_create(request, "BankTransactions") and puts == 2:
            return too_many(4)
        if is_create(request, "BankTransactions") and puts == 3:
            slow_started.append(time.monotonic())
            # Xero carries the call out late: after the poster's timeout, within two of them.
            repost_looked.wait(max(0.0, 1.9 * timeout - 0.05))
            handle(request)
            timeline["the slow call landed"] = time.monotonic() - slow_started[0]
            return Response.json(200, {})  # nobody reads it: the poster gave up
        if is_lookup(request, "BankTransactions") and slow_started and a in tags(request.param("where") or ""):
            answer = handle(request)
            timeline.setdefault("A looked up again", time.monotonic() - slow_started[0])
            repost_looked.set()
            return answer
        return None

    calls = RecordedXero(emulator, xero)
    names = _joined(stub, calls, "BankTransactions", [receipt_a], [receipt_b])
    wait_for(lambda: _link(stub, TRUST_RECEIPT, a).state == FAILED, timeout=30, interval=0.01, what="A given up")
    given_up = _link(stub, TRUST_RECEIPT, a).last_error
    [again] = post_all(stub, [receipt_a])  # the careless caller, at once

    states = wait(stub, [*names[1:], again])

    created = calls.created("BankTransactions")
    assert [sorted(c) for c in created[:3]] == [[a], [b], [a, b]], f"the scenario did not unfold: {created}"
    assert "gave up after 2 attempts" in given_up.message, given_up
    made = tagged(emulator, org["tenant_id"], "BankTransactions")
    assert timeline["the slow call landed"] < 2 * timeout, timeline
    assert made == {a: 1, b: 1}, f"deposits per receipt {made}; {timeline}; create calls {created}"
    assert states == [LINKED, LINKED], _errors(stub, TRUST_RECEIPT, [a, b])
