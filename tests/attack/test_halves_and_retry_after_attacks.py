"""Attacks from outside on two commits: a batch that failed before sending runs again in halves
(136ab67, `TenantWorker._run`, `Work.sending`), and Xero's Retry-After capped at a day and read as
seconds or an HTTP-date (2a175d0, `rate_limits._retry_after`, `RateHeaders.parse`).

Real Xero (the emulator behind an interceptor that answers as Xero, or a proxy in front of it,
could), a real poster over gRPC, on SQLite and PostgreSQL (the `database_url` fixture). Whatever
happens: nothing is posted twice, nothing is lost or left stuck, a rate limit is no failed attempt,
and no entry another job of the poster holds is sent by a job that no longer holds it."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import pytest
from sqlmodel import col, select
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import transaction_pb2, trust_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters import xero_payloads
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.rate_limits import MAX_RETRY_AFTER_SECONDS, RateHeaders
from xerolink_poster.entrypoints.bootstrap import PosterApp

from tests.fixtures.contacts import Handler, bill_to, is_contact_lookup, post_all
from tests.fixtures.lookups import is_lookup, unavailable
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    wait_settled,
)
from tests.fixtures.recorded_xero import RecordedXero, is_create, tagged, tags
from tests.fixtures.stored_rows import link_row, outbox_rows

LINKED = poster_pb2.LINK_STATE_LINKED
NOW = 1_800_000_000.0
# HTTP-dates whose fields Python cannot hold in a C integer: parsedate_to_datetime raises
# OverflowError (not ValueError) for them. None names a wait the clock can hold.
OVERFLOWING_DATES = [
    "Mon, 01 Jan 2030 99999999999999999999:00:00 GMT",  # the hour
    "Mon, 01 Jan 2030 00:00:00 +99999999999999999999",  # the zone
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",  # the year
]
# Unreadable as a date (an hour of 10^20): "anything else waits a second" (`_retry_after`).
GARBLED = OVERFLOWING_DATES[0]


def _receipt(record_id: int) -> transaction_pb2.Transaction:
    """A trust receipt of 5,000.00: a RECEIVE bank transaction, nothing unique to it in Xero but
    its tag, so one sent twice is deposited twice."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
    )


def _too_many(retry_after: str) -> Response:
    return Response.json(
        429,
        {"Title": "Too Many Requests", "Status": 429},
        {"Retry-After": retry_after, "X-Rate-Limit-Problem": "minute"},
    )


def _reason(app: PosterApp, record_id: int) -> str:
    error = link_row(app, record_id).last_error
    return str(json.loads(error).get("reason", "")) if error else ""


def _states(app: PosterApp, records: list[int]) -> dict[int, str]:
    with app.db.session(write=False) as session:
        rows = session.exec(select(LinkRow).where(col(LinkRow.record_id).in_(records))).all()
    return {row.record_id: str(row.state) for row in rows}


def _claimed(app: PosterApp, records: list[int]) -> dict[int, str]:
    with app.db.session(write=False) as session:
        rows = session.exec(
            select(OutboxRow, LinkRow).where(
                col(OutboxRow.link_id) == col(LinkRow.id), col(LinkRow.record_id).in_(records)
            )
        ).all()
    return {link.record_id: row.claimed_by for row, link in rows if row.claimed_by}


# == 2a175d0: Retry-After ============================================================================
@pytest.mark.parametrize("value", OVERFLOWING_DATES)
def test_a_retry_after_date_whose_fields_overflow_is_read_as_a_wait_not_raised(value: str) -> None:
    """Xero (or a proxy in front of it) answers with a Retry-After that looks like an HTTP-date
    but whose hour, zone or year is a 20-digit number. `_retry_after` catches TypeError,
    ValueError and IndexError from `parsedate_to_datetime`, but a field too large for a C integer
    raises OverflowError, which escapes `RateHeaders.parse`, and so `XeroClient.call` for every
    answer carrying the header, whatever its status (before the commit, `float()` failed with
    ValueError and the wait was a second). The money consequence is shown end to end below: a
    refused create is recorded as a dispatcher failure with an attempt, and the tenant's budget
    leaks a call slot on each such answer until the tenant stops posting at all."""
    wait = RateHeaders.parse({"Retry-After": value}, now=NOW).retry_after
    assert wait is not None and math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER_SECONDS


def _asctime(at: float) -> str:
    """RFC 9110, 5.6.7: asctime-date, an obsolete HTTP-date a recipient MUST accept; in GMT."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%a %b %e %H:%M:%S %Y")


@pytest.mark.parametrize("form", ["asctime", "minus-zero-zone"])
def test_an_http_date_without_gmt_is_read_in_utc_not_in_the_posters_local_time(form: str) -> None:
    """Xero says to wait two minutes with an HTTP-date in asctime form ("Mon Dec  7 06:29:32
    2026": RFC 9110, 5.6.7, which recipients MUST accept, always GMT) or with the zone "-0000"
    (RFC 5322, 3.3: UTC). `parsedate_to_datetime` returns both naive, and `_retry_after`'s
    `.timestamp()` reads them in the poster's local zone. On a poster in Sydney (the firms are
    Australian; UTC+10/+11) the date is 10-11 hours in the past, so the wait is 0: the tenant is
    not paused and the refused work is sent straight back into Xero's limit; west of UTC the
    tenant is paused for hours instead of two minutes (capped at a day) and the firm's postings
    wait that long. Minor: Xero itself sends seconds."""
    at = NOW + 120
    value = _asctime(at) if form == "asctime" else formatdate(at, usegmt=True).replace("GMT", "-0000")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Australia/Sydney"
    time.tzset()
    try:
        wait = RateHeaders.parse({"Retry-After": value}, now=NOW).retry_after
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert wait == pytest.approx(120.0, abs=1.0), f"a wait of two minutes ({value!r}) read as {wait} s"


def test_a_create_refused_for_rate_with_an_unreadable_retry_after_waits_as_a_rate_limit(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero answers a bill's create 429 (nothing created) with a Retry-After it cannot be read
    (an HTTP-date whose hour overflows). Expected: a rate limit, as for any other Retry-After
    (XERO_RATE_LIMITED, no attempt counted, not marked perhaps in Xero). Found: `RateHeaders.parse`
    raises OverflowError inside `XeroClient.call` after the call was sent, the job fails
    (DISPATCH_ERROR), an attempt is counted and the bill is marked uncertain (outcome unknown) and
    held back for the settle. Money: each such 429 (Xero's day limit keeps answering 429 for hours)
    burns an attempt, and after max_attempts the bill is given up "outcome unknown" although Xero
    refused it every time: a client's bill never raised, and the firm told to check Xero for it."""
    emulator = emulator_factory()
    app = poster_factory(settings(max_attempts=5, http_timeout=1.0))
    stub = stub_for(app)
    connect(stub, emulator)
    refused: list[float] = []

    def limited(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "Invoices") and not refused:
            refused.append(time.time())
            return _too_many(GARBLED)
        return None

    RecordedXero(emulator, limited)
    post_all(stub, [samples.client_bill(95_001)])
    wait_for(lambda: bool(_reason(app, 95_001)), timeout=15, what="the refusal recorded")
    [row] = outbox_rows(app, 95_001)
    link = link_row(app, 95_001)
    seen = (_reason(app, 95_001), row.attempts, row.uncertain)
    assert seen == (Reason.XERO_RATE_LIMITED, 0, False), (
        f"a 429 recorded as (reason, attempts, uncertain) = {seen}: {link.last_error}"
    )


def test_unreadable_retry_afters_do_not_leak_the_tenants_call_slots_until_it_stops_posting(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Eight bills to eight new clients, accepted together and claimed as one batch. Xero answers
    the first five look-ups of their contacts 429 with an unreadable Retry-After, then recovers.
    Expected: each 429 waits (a second) and the bills are all posted once Xero recovers.
    Found: `RateHeaders.parse` raises OverflowError out of `XeroClient.call`; `Gate.call` gives the
    reserved call back to the budget only for `Uncertain`, so each such answer leaks one of the
    tenant's five concurrent slots (`TenantBudget.in_progress`). The job failed before sending,
    so it runs again in halves (136ab67): 8 -> 4 -> 2 -> 1 -> 1 makes the five refused look-ups in
    a burst, the budget then says "wait" forever (`wait_time` 0.005 s while in_progress >= 5), the
    next half waits in `Gate._wait_for_budget` holding its claims, and the worker never claims or
    hands the tenant back (no other tenant waits). Money: none of the firm's postings for this
    organisation reach Xero again until the poster is restarted, silently "pending"."""
    emulator = emulator_factory()
    app = poster_factory(settings(max_attempts=20, http_timeout=2.0, idle_release=2.0))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [bill_to(95_100 + n, 95_500 + n) for n in range(8)]
    ids = [b.header.id for b in bills]
    lock = threading.Lock()
    refused: list[int] = []

    def limited(request: Request, handle: Handler) -> Response | None:
        if is_contact_lookup(request):
            with lock:
                if len(refused) < 5:
                    refused.append(1)
                    return _too_many(GARBLED)
        return None

    RecordedXero(emulator, limited)
    post_all(stub, bills)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and set(_states(app, ids).values()) != {"linked"}:
        time.sleep(0.2)
    states = _states(app, ids)
    assert len(refused) == 5, f"Xero refused {len(refused)} look-ups"
    made = tagged(emulator, org["tenant_id"], "Invoices")
    assert states == dict.fromkeys(ids, "linked"), (
        f"bills not posted 15 s after Xero recovered: {states}; still claimed: {_claimed(app, ids)}; "
        f"invoices in Xero: {made}"
    )
    assert made == dict.fromkeys(ids, 1)


# == 136ab67: halves =================================================================================
def test_a_half_that_waited_out_its_claim_does_not_send_what_another_job_of_the_poster_now_holds(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four trust receipts P, C, A, B (5,000.00 each) are sent in one call that Xero answers 503:
    outcome unknown, they come back together and one job claims them to look them up. Looking up
    P raises (a bug its data reaches) before any call, so the batch runs again in halves
    ([P, C] then [A, B]; [P, C] as [P], given up, then [C]). Xero answers the look-up of C 429 with
    Retry-After: 3 s, a wait longer than the entries' claim (claim_ttl 2 s here; 300 s in
    production, where Xero's Retry-After may now be taken for up to a day, 2a175d0). The half
    [A, B] waits the 3 s in `Gate._wait_for_budget` holding claims that run out; when the wait
    ends the worker's next job claims C, A and B, looks them up (nothing) and creates them, and the
    half goes on as if it still held A and B: it is never re-claimed (`_load` reads no claim) and
    `mark_uncertain` matches the claim by poster name only, so it passes on the other job's claim.
    No single call outlives a claim (http_timeout 0.5 s). Both create calls reach Xero with
    different bodies (so different Idempotency-Keys): A's and B's 5,000.00 are each deposited into
    the trust account twice. Before the commit the failed batch was recorded as failed and the job
    sent nothing of it again."""
    emulator = emulator_factory()
    app = poster_factory(
        settings(claim_ttl=2.0, http_timeout=0.5, backoff_base=0.05, backoff_cap=0.2, max_attempts=2, idle_release=5.0)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipts = [_receipt(96_000 + n) for n in range(4)]
    p, c, a, b = (r.header.id for r in receipts)
    lock = threading.Lock()
    puts: list[list[int]] = []
    half_waited, sibling_looked_up, half_sent = (threading.Event() for _ in range(3))

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions"):
            carried = sorted(tags(request.body.decode()))
            with lock:
                puts.append(carried)
                first = len(puts) == 1
            if first:
                return unavailable()  # nothing created, outcome unknown: all four looked up next
            if carried == [a, b]:
                half_sent.set()
            elif a in carried:
                half_sent.wait(0.45)  # within http_timeout: both jobs that send A and B are in flight
            return None
        if is_lookup(request, "BankTransactions"):
            asked = tags(request.param("where") or "")
            if asked == {c}:
                return _too_many("3")
            if asked == {a, b}:  # the half [A, B], after its wait
                half_waited.set()
                sibling_looked_up.wait(0.45)  # within http_timeout
                return None
            if {a, b} <= asked:
                response = handle(request)
                sibling_looked_up.set()
                return response
        return None

    RecordedXero(emulator, xero)
    lookup_of = xero_payloads.lookup_of

    def buggy(operation: Any, reference: str, *args: Any, **kwargs: Any) -> Any:
        if p in tags(reference):
            raise ValueError("a bug this record's data reaches")
        return lookup_of(operation, reference, *args, **kwargs)

    monkeypatch.setattr(xero_payloads, "lookup_of", buggy)
    names = dict(zip((p, c, a, b), post_all(stub, receipts), strict=True))
    states = {r: wait_settled(stub, names[r], timeout=20).state for r in (c, a, b)}

    assert half_waited.is_set(), f"the half [A, B] never looked up; create calls {puts}"
    made = tagged(emulator, org["tenant_id"], "BankTransactions")
    twice = {r: n for r, n in made.items() if n > 1}
    assert not twice, f"receipts deposited more than once: {twice}; create calls {puts}"
    assert states == dict.fromkeys((c, a, b), LINKED)
    assert {r: made.get(r) for r in (c, a, b)} == dict.fromkeys((c, a, b), 1)


def test_a_poster_stopping_during_the_halves_leaves_nothing_claimed_and_its_successor_posts_each_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard (passes now). Four trust receipts P, C, A, B, outcome unknown after a 503, are
    claimed by one job; looking up P raises, so the batch runs in halves. While Xero answers the
    look-up of C alone, the poster is stopped (a deploy). The half must not create C once the
    dispatcher stops (`Gate._wait_for_budget` raises LeaseLost), and the rest of the halves must be
    put back (`TenantWorker._run`: lease lost or stopping), not left claimed for claim_ttl (300 s
    in production: five minutes of receipts not deposited) nor given up. A second poster then
    takes the tenant, looks each receipt up and deposits each exactly once."""
    emulator = emulator_factory()
    tuned = settings(http_timeout=3.0, backoff_base=0.05, backoff_cap=0.2, max_attempts=20, idle_release=5.0)
    first = poster_factory(tuned, name="first")
    stub = stub_for(first)
    _, org = connect(stub, emulator)
    receipts = [_receipt(97_000 + n) for n in range(4)]
    p, c, a, b = (r.header.id for r in receipts)
    lock = threading.Lock()
    puts: list[tuple[list[int], bool]] = []
    holding, stopping = threading.Event(), threading.Event()

    def xero(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "BankTransactions"):
            carried = sorted(tags(request.body.decode()))
            with lock:
                puts.append((carried, stopping.is_set()))
                if len(puts) == 1:
                    return unavailable()
            return None
        if (
            is_lookup(request, "BankTransactions")
            and tags(request.param("where") or "") == {c}
            and not holding.is_set()
        ):
            holding.set()
            stopping.wait(2)
            time.sleep(0.3)  # the stop is under way when the answer arrives
        return None

    RecordedXero(emulator, xero)
    lookup_of = xero_payloads.lookup_of

    def buggy(operation: Any, reference: str, *args: Any, **kwargs: Any) -> Any:
        if p in tags(reference):
            raise ValueError("a bug this record's data reaches")
        return lookup_of(operation, reference, *args, **kwargs)

    monkeypatch.setattr(xero_payloads, "lookup_of", buggy)
    post_all(stub, receipts)
    assert holding.wait(15), f"the batch never ran C alone; create calls {puts}"
    stopping.set()
    first.stop(0)

    after_stop = [carried for carried, late in puts if late]
    assert not after_stop, f"created after the poster began to stop: {after_stop}"

    second = poster_factory(tuned, name="second")
    claimed = _claimed(second, [c, a, b])
    assert not claimed, f"entries left claimed by the stopped poster: {claimed}"
    wait_for(
        lambda: all(s == "linked" for s in _states(second, [c, a, b]).values()),
        timeout=15,
        what="C, A and B posted by the second poster",
    )
    made = tagged(emulator, org["tenant_id"], "BankTransactions")
    assert {r: made.get(r) for r in (c, a, b)} == dict.fromkeys((c, a, b), 1), f"create calls {puts}"
