"""Attacks on two changes: a listed object's Status read only as the values Xero's OpenAPI
enumerates for its type (`xero_payloads.is_live`, used by `lookups._listed`), and the entries of
one failed call or look-up sharing one jitter draw (`Results.retry`), so they come back together
in one claim, one look-up and one create call.

Whatever happens: nothing is created twice, lost, or linked to an object Xero does not hold live;
the elements of a failed call are not split into many calls; rate limits never count attempts;
records still fail with a reason after the last attempt. The last two tests go beyond the two
changes, to what `Results.retry` is given: a 429 without Retry-After (`at` in the past), and work
held back while disconnected (`uncertain=False` written over the entry's mark). Each test runs on
SQLite and PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.service_layer.dispatch import results

from tests.fixtures.contacts import Handler, intercept, post_all, settle, wait
from tests.fixtures.lookups import ID_FIELD, answer_listing, collection_of, is_lookup, live_objects, unavailable
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for, xero_objects
from tests.integration.connection_helpers import connect_request, new_code, posters, write_apps
from tests.integration.connection_helpers import stub as lifecycle_stub

LINKED = poster_pb2.LINK_STATE_LINKED
CLIENT_BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
REFUND = common_pb2.TRANSACTION_KIND_OVERPAYMENT_REFUND


# -- helpers -----------------------------------------------------------------------------------
def _bill(record_id: int, reference: str) -> transaction_pb2.Transaction:
    bill = samples.client_bill(record_id)
    bill.header.reference = reference
    return bill


def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> Any:
    record = common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]
    return stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link


class Calls:
    """The create calls (elements sent in each) and look-ups the poster made of each collection,
    behind `change`, which may answer a request itself (returning None lets Xero answer)."""

    def __init__(
        self, emulator: EmulatorServer, change: Callable[[Request, int, int], Response | None] | None = None
    ) -> None:
        self.lock = threading.Lock()
        self.creates: dict[str, list[int]] = {}
        self.lookups: dict[str, list[str]] = {}
        self.change = change
        intercept(emulator, self._handle)

    def _handle(self, request: Request, handle: Handler) -> Response:
        resource = collection_of(request)
        with self.lock:
            if request.method == "PUT" and request.body:
                sent = json.loads(request.body).get(resource)
                self.creates.setdefault(resource, []).append(len(sent) if isinstance(sent, list) else 0)
            if request.method == "GET" and request.param("where"):
                self.lookups.setdefault(resource, []).append(request.param("where") or "")
            puts = len(self.creates.get(resource, []))
            gets = len(self.lookups.get(resource, []))
        answered = self.change(request, puts, gets) if self.change else None
        return answered if answered is not None else handle(request)

    def of(self, resource: str) -> list[int]:
        with self.lock:
            return list(self.creates.get(resource, []))

    def looked(self, resource: str) -> list[str]:
        with self.lock:
            return list(self.lookups.get(resource, []))


# -- the entries of one failed call, looked up in several GETs -----------------------------------
def _overpayment_refunds() -> list[transaction_pb2.Transaction]:
    return [samples.sample_transactions(70_000 + 100 * n)["overpayment_refund"] for n in range(6)]


def _long_referenced_bills() -> list[transaction_pb2.Transaction]:
    # 190 characters each: about eight tags fill a look-up's URL (Xero serves 2,091 characters).
    return [_bill(70_900 + n, f"{n:02d} " + "Conveyance of 12 Harbour Street " * 6) for n in range(40)]


# Records whose create call is one, and whose look-ups are several GETs: overpayments (no
# Reference, each looked up alone on type and contact) and bills whose tags fill several URLs.
SPREAD = {
    "overpayments": ("BankTransactions", _overpayment_refunds, mapper_pb2.POLICY_PROFILE_EXTENDED, REFUND),
    "long-references": (
        "Invoices",
        _long_referenced_bills,
        mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
        CLIENT_BILL,
    ),
}


@pytest.mark.parametrize("case", sorted(SPREAD))
def test_a_failed_call_whose_look_ups_take_several_gets_and_fail_comes_back_in_one_call(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, case: str
) -> None:
    """One create call (six RECEIVE-OVERPAYMENT bank transactions, or 40 bills with 190-character
    references) is answered 503: its outcome unknown, its elements are looked up before being sent
    again. Their look-ups take several GETs (an overpayment has no Reference and is looked up
    alone, `Lookup.clause` empty; long tags fill a URL every eight or so), and Xero, still down,
    answers those GETs 503 too. The elements failed together, in one call and one outage, and must
    come back together in one create call. Each failed GET's retry draws its own jitter
    (`LookUps.look_up` calls `Results.retry` per GET), so the elements scatter over the back-off's
    width and come back in as many calls (and rounds of look-ups) as there were GETs.
    Independent of Xero beyond a 5xx leaving a create's outcome unknown."""
    resource, make, profile, kind = SPREAD[case]
    records = make()
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(
        poster_factory(settings(backoff_base=2.0, backoff_cap=2.0, http_timeout=0.5, max_attempts=20, batch_size=50))
    )
    _, org = connect(stub, emulator, context=samples.demo_context(profile))
    down_until: list[float] = []
    refused: list[str] = []  # the look-ups Xero answered 503

    def outage(request: Request, puts: int, gets: int) -> Response | None:
        if request.method == "PUT" and collection_of(request) == resource and puts == 1:
            return unavailable()
        if is_lookup(request, resource) and puts == 1:
            # Down for the first round of look-ups (made within milliseconds; the next round
            # comes after a back-off of half a second at least).
            if not down_until:
                down_until.append(time.monotonic() + 0.3)
            if time.monotonic() < down_until[0]:
                refused.append(request.param("where") or "")
                return unavailable()
        return None

    calls = Calls(emulator, outage)

    states = settle(stub, records)

    assert states == [LINKED] * len(records), [_link(stub, kind, r.header.id).last_error.message for r in records]
    made = live_objects(xero_objects(emulator, org["tenant_id"], resource))
    assert len(made) == len(records), f"{len(made)} {resource} for {len(records)} records"
    assert calls.of(resource)[0] == len(records), f"not one call to begin with: {calls.of(resource)}"
    assert len(refused) >= 2, f"the look-ups of the failed call took {len(refused)} GET"
    assert calls.of(resource) == [len(records), len(records)], (
        f"the elements of one failed call came back in {len(calls.of(resource)) - 1} calls: {calls.of(resource)}"
    )


# -- mixed attempt counts within one call ------------------------------------------------------
def test_a_failed_call_mixing_entries_of_different_attempt_counts_comes_back_in_one_call(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Four bills A are sent and Xero answers 503 (one attempt counted). Four bills B, posted
    next, are answered 429 with Retry-After: 3, which counts no attempt, and the tenant waits.
    When the wait ends A (their back-off over) and B are claimed together and sent in one call of
    eight, which Xero answers 503 again. The eight failed together and must come back together,
    in one call: the back-off's step depends on each entry's own attempts (A's is twice B's), so
    with one shared jitter draw B always come back first and A after, in two calls and two
    rounds of look-ups. Independent of Xero beyond a 5xx leaving a create's outcome unknown."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(backoff_base=2.0, backoff_cap=8.0, http_timeout=0.5, max_attempts=20)))
    _, org = connect(stub, emulator)
    first = [samples.client_bill(71_000 + n) for n in range(4)]
    second = [samples.client_bill(71_100 + n) for n in range(4)]

    def answers(request: Request, puts: int, gets: int) -> Response | None:
        if request.method != "PUT" or collection_of(request) != "Invoices":
            return None
        if puts in (1, 3):
            return unavailable()
        if puts == 2:
            return Response.json(
                429,
                {"Title": "Too Many Requests", "Status": 429},
                {"Retry-After": "3", "X-Rate-Limit-Problem": "minute"},
            )
        return None

    calls = Calls(emulator, answers)
    names = post_all(stub, first)
    wait_for(lambda: len(calls.of("Invoices")) >= 1, what="the first call")
    wait_for(lambda: bool(_link(stub, CLIENT_BILL, first[0].header.id).last_error.message), what="A retried")
    names += post_all(stub, second)

    states = wait(stub, names)

    assert states == [LINKED] * 8
    made = [i for i in live_objects(xero_objects(emulator, org["tenant_id"], "Invoices")) if i["Type"] == "ACCREC"]
    assert len(made) == 8, f"{len(made)} invoices for 8 bills"
    assert calls.of("Invoices")[:3] == [4, 4, 8], f"the scenario did not unfold: {calls.of('Invoices')}"
    assert calls.of("Invoices")[3:] == [8], (
        f"the call of 8 Xero failed whole came back in {len(calls.of('Invoices')) - 3} calls: {calls.of('Invoices')}"
    )


# -- a rate limit at the last attempt -----------------------------------------------------------
def test_a_rate_limit_answered_to_entries_at_their_last_attempt_counts_none(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Four bills; Xero answers their call 503 twice (two attempts of three counted), then 429
    with Retry-After: 1. The 429 says Xero did nothing and asks to wait: it must count no attempt
    (`Results.retry(count=False)`), so the bills, waiting it out, are then posted, each once.
    Counted, they would fail for good on a rate limit. Independent of Xero beyond a 5xx leaving
    a create's outcome unknown."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=3)))
    _, org = connect(stub, emulator)
    bills = [samples.client_bill(75_000 + n) for n in range(4)]

    def answers(request: Request, puts: int, gets: int) -> Response | None:
        if request.method != "PUT" or collection_of(request) != "Invoices":
            return None
        if puts in (1, 2):
            return unavailable()
        if puts == 3:
            return Response.json(
                429,
                {"Title": "Too Many Requests", "Status": 429},
                {"Retry-After": "1", "X-Rate-Limit-Problem": "minute"},
            )
        return None

    calls = Calls(emulator, answers)

    states = settle(stub, bills)

    assert calls.of("Invoices")[:3] == [4, 4, 4], f"the scenario did not unfold: {calls.of('Invoices')}"
    assert states == [LINKED] * 4, [_link(stub, CLIENT_BILL, b.header.id).last_error.message for b in bills]
    made = [i for i in live_objects(xero_objects(emulator, org["tenant_id"], "Invoices")) if i["Type"] == "ACCREC"]
    assert len(made) == 4, f"{len(made)} invoices for 4 bills"


# -- a Status in another form --------------------------------------------------------------------
# Values that are none of Invoice.Status's enum (Xero's OpenAPI: DRAFT, SUBMITTED, DELETED,
# AUTHORISED, PAID, VOIDED) in any case, but that Python's str.upper() turns into live ones.
NOT_XEROS = {
    "dotless-i": "AUTHOR\u0131SED",  # LATIN SMALL LETTER DOTLESS I: upper() is "I"
    "long-s": "AUTHORI\u017fED",  # LATIN SMALL LETTER LONG S: upper() is "S"
    "dotless-i-paid": "PA\u0131D",
}


@pytest.mark.parametrize("kind", sorted(NOT_XEROS))
def test_a_deleted_copy_whose_status_reads_live_only_through_unicode_case_mapping_is_never_adopted(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """The answer to three bills is lost. Each look-up lists, before each bill's own invoice, a
    DELETED copy carrying its tag (another id, which Xero does not hold) whose Status was garbled
    on the way into a value that is none of the OpenAPI's Invoice.Status values in any case
    (AUTHORISED or PAID spelt with a dotless i, U+0131, or a long s, U+017F). `is_live` upper-cases
    it with str.upper(), which maps those letters to ASCII: read as AUTHORISED or PAID, the copy is
    adopted and the bill linked to an object Xero never holds live (its money never posted). Such
    a value is no reading, as the change says of " DELETED" or "REMOVED": the look-up must be made
    again or the copy passed over, and each bill linked to its own invoice."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=20)))
    _, org = connect(stub, emulator)
    bills = [_bill(72_000 + n, f"Status {n}") for n in range(3)]
    copies: dict[str, str] = {}

    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices"))

    def garble(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not is_lookup(request, "Invoices") or response.status != 200:
            return response
        real = json.loads(response.body)["Invoices"]
        listed = [
            {**item, "InvoiceID": copies.setdefault(item["Reference"], str(uuid.uuid4())), "Status": NOT_XEROS[kind]}
            for item in real
        ]
        return answer_listing(response, "Invoices", listed + real)

    intercept(emulator, garble)

    states = settle(stub, bills)

    assert copies, "no look-up listed the copies"
    live = {i["InvoiceID"]: i for i in live_objects(xero_objects(emulator, org["tenant_id"], "Invoices"))}
    assert len(live) == len(bills)
    for b, state in zip(bills, states, strict=True):
        ids = [o.xero_id for o in _link(stub, CLIENT_BILL, b.header.id).xero_objects]
        assert not set(ids) & set(copies.values()), f"bill {b.header.id} linked to a copy Xero does not hold: {ids}"
        assert state == LINKED
        assert len(ids) == 1 and ids[0] in live, ids


# -- beyond the two changes: what Results.retry is given ----------------------------------------
def test_a_rate_limit_answered_without_retry_after_is_not_retried_at_once_over_and_over(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero answers a bill's create call 429 for a second and a half, without a Retry-After
    header. The poster waits out a 429 without counting an attempt, until `at=gate.blocked_until`
    (creating.py, the RATE_LIMITED answer): with no Retry-After that is a moment long past (0
    when none was ever given), so the bill is claimed and sent again at once, and again, as fast
    as the poster's own budget allows: the organisation's 60 calls of the minute spent in a burst
    of refused calls (and everything else of the organisation stalled for the rest of the
    minute). A rate limit must be backed off from, whatever the header. Independent of whether
    Xero itself always sends Retry-After (RFC 6585 makes it optional; a gateway in front of Xero
    may refuse without it)."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=5)))
    connect(stub, emulator)
    started: list[float] = []

    def limited(request: Request, puts: int, gets: int) -> Response | None:
        if request.method != "PUT" or collection_of(request) != "Invoices":
            return None
        if not started:
            started.append(time.monotonic())
        if time.monotonic() < started[0] + 1.5:
            return Response.json(429, {"Title": "Too Many Requests", "Status": 429}, {"X-Rate-Limit-Problem": "minute"})
        return None

    calls = Calls(emulator, limited)
    post_all(stub, [samples.client_bill(73_000)])
    wait_for(lambda: bool(started), what="the first call")
    time.sleep(1.6)

    refused = len(calls.of("Invoices"))
    assert refused <= 5, f"{refused} calls in 1.5 s to a Xero answering 429: the minute's budget spent on refusals"


# What a record creates, where its tag is, and its kind: a sales invoice (its number unique in
# Xero) and a trust receipt (a RECEIVE bank transaction, nothing unique but the tag).
HELD = {
    "client-bill": ("client_bill", "Invoices", "Reference", CLIENT_BILL),
    "trust-receipt": ("trust_receipt", "BankTransactions", "Reference", common_pb2.TRANSACTION_KIND_TRUST_RECEIPT),
}


@pytest.mark.parametrize("case", sorted(HELD))
def test_work_held_back_while_disconnected_keeps_its_uncertain_mark_and_is_not_created_twice(
    database_url: str,
    mapper_target: str,
    emulator_factory: EmulatorFactory,
    tmp_path: Path,
    case: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Xero creates a record's object but the answer is lost: the entry is marked uncertain, to
    be looked up before it is sent again. Before that, the firm disconnects the organisation and
    connects it again a little later (a careless caller, or a consent renewed). While
    disconnected the entry is held back (`TenantWorker._held_back`) through `Results.retry(...,
    uncertain=False)`, and `outcomes.record_retry` writes that over the entry's uncertain mark:
    once reconnected the record is sent again without a look-up. A trust receipt is then in the
    bank twice; a sales invoice is refused as its number is in use, and the bill fails with a
    validation error while Xero holds its invoice (linked to nothing). Either way the record
    must end linked to the one object Xero made for it. Independent of Xero beyond a lost
    answer after a commit (and, for the invoice, its number being unique: the OpenAPI's example
    answer to PUT Invoices, "Invoice # must be unique.")."""
    kind_name, resource, field, kind = HELD[case]
    # Held-back work is claimed again after this wait (5 s in the product), however soon the
    # organisation is connected again: a held-back entry then waits 1 s. Held back again if that
    # comes before the reconnection, it goes through the same retry, keeping or losing its mark.
    monkeypatch.setattr(results, "CONNECTION_RECHECK_SECONDS", 1.0)
    emulator = emulator_factory(idempotency_minutes=0.0005)
    org = emulator.create_organisation("Harper Legal")
    record = samples.sample_transactions(74_000)[kind_name]
    with posters(database_url, mapper_target) as make:
        poster = lifecycle_stub(make(write_apps(tmp_path / "xero-apps.json", org, emulator), http_timeout=1.0))
        poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
        emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains=resource))
        calls = Calls(emulator)
        [name] = post_all(poster, [record])
        wait_for(lambda: len(calls.of(resource)) == 1, what="the lost call")
        poster.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1"))
        wait_for(
            lambda: "disconnected" in _link(poster, kind, record.header.id).last_error.message,
            what="the entry held back",
        )
        emulator.state.identity.connect(emulator.state.identity.apps[org["client_id"]], org["tenant_id"], "Harper")
        poster.ConnectOrganisation(
            connection_pb2.ConnectOrganisationRequest(
                connection_id="firm-1", authorization_code=new_code(emulator, org)
            )
        )

        [state] = wait(poster, [name])

        tag = f"-{record.header.id}]"
        made = [i for i in live_objects(xero_objects(emulator, org["tenant_id"], resource)) if tag in str(i.get(field))]
        assert len(made) == 1, (
            f"{len(made)} live {resource} carrying the record's tag {[i.get(field) for i in made]}; "
            f"look-ups made before sending it again: {calls.looked(resource)}"
        )
        link = _link(poster, kind, record.header.id)
        assert state == LINKED, f"the record's object is in Xero, yet: {link.last_error.message} {link.last_error}"
        assert made[0][ID_FIELD[resource]] in [o.xero_id for o in link.xero_objects]
