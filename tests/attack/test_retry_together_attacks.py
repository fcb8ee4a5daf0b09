"""Attacks on the retries written together (`Results.retry_together`: one transaction, one jitter
draw and the longest back-off for a job's retries, a wait that has passed replaced by the
back-off), on the look-ups that collect their retries for the end of the pass
(`LookUps.look_up`), and on the minute a 429 without Retry-After now blocks a tenant
(`Gate.call`), from the outside: as Xero, a gateway in front of it, or a poster handing over.

Whatever happens: nothing is created twice or lost, rate limits never count attempts, the
entries of one failed call come back together, and one tenant's block neither stalls another
tenant nor is forgotten by the poster that takes the tenant over. Each test runs on SQLite and
PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, intercept, post_all, settle, wait
from tests.fixtures.lookups import (
    bill_and_credit,
    collection_of,
    credit_application,
    is_lookup,
    live_objects,
    unavailable,
)
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
    xero_objects,
)

LINKED = poster_pb2.LINK_STATE_LINKED
CLIENT_BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION


# -- helpers -----------------------------------------------------------------------------------
def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int, connection_id: str = "firm-1") -> Any:
    record = common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]
    return stub.GetLink(poster_pb2.GetLinkRequest(connection_id=connection_id, record=record)).link


def _too_many(retry_after: str | None) -> Response:
    headers = {"X-Rate-Limit-Problem": "minute"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Response.json(429, {"Title": "Too Many Requests", "Status": 429}, headers)


def _invoices(emulator: EmulatorServer, tenant: str) -> list[dict[str, Any]]:
    return [i for i in live_objects(xero_objects(emulator, tenant, "Invoices")) if i["Type"] == "ACCREC"]


# -- a rate limit on the read of the credit note before an allocation ----------------------------
def test_a_rate_limit_on_the_credit_note_read_before_an_allocation_counts_no_attempt(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Before applying a credit note, the poster reads the note (`Creator._note_allocations`,
    GET CreditNotes/{id}) to tell its allocation apart later. Xero answers that read 429 with
    Retry-After: 1, three times (its organisation's minute is spent). A 429 says Xero did
    nothing and asks to wait: it must count no attempt (rate limits never count attempts), so
    after waiting the application is made, once. With max_attempts=3 a counted 429 fails the
    application for good on a rate limit, 50.00 of credit never applied. Independent of Xero
    beyond a 429 applying nothing (what the poster itself assumes of it everywhere else)."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=3)))
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    bill, credit = bill_and_credit(81_000)
    assert settle(stub, [bill, credit]) == [LINKED, LINKED]
    [note] = xero_objects(emulator, tenant, "CreditNotes")
    note_path = f"/creditnotes/{str(note['CreditNoteID']).lower()}"
    refused: list[str] = []

    def limited(request: Request, handle: Handler) -> Response:
        if request.method == "GET" and request.path.rstrip("/").lower().endswith(note_path) and len(refused) < 3:
            refused.append(request.path)
            return _too_many("1")
        return handle(request)

    intercept(emulator, limited)

    [outcome] = settle(stub, [credit_application(81_100, 81_000, 5000)])

    assert len(refused) == 3, f"the scenario did not unfold: {refused}"
    link = _link(stub, APPLICATION, 81_100)
    assert outcome == LINKED, f"failed on a rate limit: {link.last_error.message}"
    [stored] = xero_objects(emulator, tenant, "CreditNotes")
    allocations = [a for a in stored.get("Allocations") or [] if not a.get("IsDeleted")]
    assert len(allocations) == 1, f"{len(allocations)} allocations for one application"


# -- one failed call whose look-ups fail in two ways --------------------------------------------
def _long_referenced_bills() -> list[transaction_pb2.Transaction]:
    # 190 characters each: about eight tags fill a look-up's URL, so 40 take several GETs.
    bills = []
    for n in range(40):
        bill = samples.client_bill(82_000 + n)
        bill.header.reference = f"{n:02d} " + "Conveyance of 12 Harbour Street " * 6
        bills.append(bill)
    return bills


def test_a_failed_call_whose_look_ups_time_out_and_fail_comes_back_in_one_call(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """One create call of 40 bills is answered 503: its outcome unknown, the 40 are looked up
    before being sent again, in several GETs (their long references fill a URL every eight or
    so). Xero, still in trouble, never answers the first of those GETs (the poster times out)
    and answers the others 503. The look-up pass collects its retries to write them together,
    "the entries of one failed call come back together however many GETs their look-ups took"
    (`LookUps.look_up`, `Results.retry_together`), yet the wait after a timeout
    (NO_ANSWER_SETTLE_TIMEOUTS) is applied entry by entry after the shared back-off: the
    bills of the timed-out GET come back seconds after the others, in a second round of
    look-ups and a third create call. One failed call must come back as one call. Independent
    of Xero beyond a 5xx leaving a create's outcome unknown."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(
        poster_factory(settings(http_timeout=1.0, backoff_base=1.0, backoff_cap=1.0, max_attempts=20, batch_size=50))
    )
    _, org = connect(stub, emulator)
    bills = _long_referenced_bills()
    ids = [str(b.header.id) for b in bills]
    lock = threading.Lock()
    creates: list[int] = []
    seen: set[str] = set()
    first_round: list[str] = []  # how each GET of the first look-up pass was answered

    def trouble(request: Request, handle: Handler) -> Response:
        with lock:
            if request.method == "PUT" and collection_of(request) == "Invoices":
                sent = json.loads(request.body).get("Invoices")
                creates.append(len(sent) if isinstance(sent, list) else 0)
                if len(creates) == 1:
                    return unavailable()
                return handle(request)
            if not is_lookup(request, "Invoices") or len(creates) != 1:
                return handle(request)
            where = request.param("where") or ""
            members = {i for i in ids if i in where}
            in_first_round = not (members & seen)
            seen.update(members)
            if not in_first_round:
                return handle(request)
            first_round.append("timeout" if not first_round else "503")
            answer = first_round[-1]
        if answer == "timeout":
            time.sleep(1.4)  # the poster gave up at its 1 s timeout
        return unavailable()

    intercept(emulator, trouble)

    states = settle(stub, bills)

    assert states == [LINKED] * 40, [_link(stub, CLIENT_BILL, b.header.id).last_error.message for b in bills]
    assert len(_invoices(emulator, org["tenant_id"])) == 40
    assert len(first_round) >= 2 and first_round[0] == "timeout", f"the scenario did not unfold: {first_round}"
    assert creates[0] == 40, creates
    assert creates == [40, 40], f"the elements of one failed call came back in {len(creates) - 1} calls: {creates}"


# -- a 429 without Retry-After: other tenants, and the poster that takes the tenant over -------
def test_a_rate_limit_without_retry_after_stalls_no_other_tenant_and_outlives_the_poster(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero (or a gateway in front of it) answers firm-1's create call 429 without Retry-After:
    firm-1's organisation waits out one of Xero's minutes (`Gate.call`, 3 s here). Meanwhile
    firm-2's bills, another organisation, must post at once: one tenant's block must not stall
    another. The poster then stops (a deploy) and another takes firm-1 over and is given new
    work for it at once: the block is the organisation's, not the poster's, so no call may reach
    firm-1's organisation before the minute is over (`Gate._persist_block`, the lease's
    `blocked_until_us`), and every bill is then posted once. Independent of Xero beyond a 429
    applying nothing (RFC 6585 makes Retry-After optional)."""
    minute = 3.0
    dispatcher = settings(http_timeout=0.5, max_attempts=5, limits=scaled_limits(minute))
    emulator = emulator_factory(idempotency_minutes=0.0005)
    first = poster_factory(dispatcher, name="poster-a")
    stub = stub_for(first)
    _, org1 = connect(stub, emulator, "firm-1")
    _, org2 = connect(stub, emulator, "firm-2")
    lock = threading.Lock()
    refused_at: list[float] = []
    firm1_calls: list[float] = []

    def limited(request: Request, handle: Handler) -> Response:
        tenant = request.header("xero-tenant-id")
        with lock:
            if tenant == org1["tenant_id"] and collection_of(request) != "Connections":
                firm1_calls.append(time.monotonic())
            if (
                tenant == org1["tenant_id"]
                and request.method == "PUT"
                and collection_of(request) == "Invoices"
                and not refused_at
            ):
                refused_at.append(time.monotonic())
                return _too_many(None)
        return handle(request)

    intercept(emulator, limited)
    names1 = post_all(stub, [samples.client_bill(83_000 + n) for n in range(3)], "firm-1")
    wait_for(lambda: bool(refused_at), what="the 429")
    started = time.monotonic()
    names2 = post_all(stub, [samples.client_bill(83_100 + n) for n in range(3)], "firm-2")
    assert wait(stub, names2) == [LINKED] * 3
    took = time.monotonic() - started
    assert took < minute - 0.5, f"firm-2's bills waited {took:.1f} s behind firm-1's rate limit"

    first.stop(0)
    second = stub_for(poster_factory(dispatcher, name="poster-b"))
    names1 += post_all(second, [samples.client_bill(83_010)], "firm-1")

    assert wait(second, names1) == [LINKED] * 4
    with lock:
        early = [t - refused_at[0] for t in firm1_calls if refused_at[0] < t < refused_at[0] + minute - 0.3]
    assert not early, f"calls to firm-1's organisation {early} s after a 429 that blocked it for {minute} s"
    assert len(_invoices(emulator, org1["tenant_id"])) == 4
    assert len(_invoices(emulator, org2["tenant_id"])) == 3
