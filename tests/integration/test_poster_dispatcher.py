"""The dispatcher against the emulator: limits kept before Xero refuses, Retry-After obeyed,
batches with per-element outcomes, backoff on 5xx, uncertain outcomes looked up before any
re-creation, and contacts found or created once."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import event
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.tables import LinkRow, OutboxRow, TenantLeaseRow
from xerolink_poster.domain import drift
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_settled,
    xero_objects,
)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


def _post_all(
    stub: poster_grpc.PosterServiceStub, bills: list[transaction_pb2.Transaction]
) -> list[poster_pb2.Posting]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=bills)
    ).results
    return [r.posting for r in results]


def _link(stub: poster_grpc.PosterServiceStub, record_id: int) -> poster_pb2.Link:
    link: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(
            connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=record_id), include_audit=True
        )
    ).link
    return link


def test_more_calls_than_a_minute_allows_are_spread_out_and_xero_never_refuses(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # A one-second "minute" of 20 calls, so the limit binds long before the poster runs out of work.
    emulator = emulator_factory(minute_seconds=1.0, minute_limit=20)
    app = poster_factory(settings(batch_size=2, limits=scaled_limits(1.0, per_minute=20)))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    count = 100  # 50 invoice calls + a contact look-up and creation: 52 calls, three minutes' worth
    started = time.monotonic()

    postings = _post_all(stub, [samples.client_bill(1000 + i) for i in range(count)])

    for posting in postings:
        assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    assert app.dispatcher is not None
    assert app.dispatcher.calls_refused == 0
    assert app.dispatcher.calls_made == math.ceil(count / 2) + 2
    assert time.monotonic() - started >= 2.0  # 52 calls at 20 a (scaled) minute need two full windows
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == count


def test_retry_after_is_obeyed_and_the_refused_call_is_not_counted_as_a_failure(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    emulator.faults.add(FaultRule("rate_limit", count=1, retry_after=1, path_contains="Invoices"))

    posting = _post_all(stub, [samples.client_bill(7)])[0]

    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert app.dispatcher is not None and app.dispatcher.calls_refused == 1
    # contact look-up, contact creation, the refused call and its retry: no look-up, since a 429
    # applied nothing
    assert app.dispatcher.calls_made == 4
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1
    assert _link(stub, 7).attempts == 1


def test_one_call_carries_a_batch_and_each_element_gets_its_own_outcome(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory(settings(batch_size=50))
    stub = stub_for(app)
    # Without the chart the mapper cannot catch the unknown account; Xero does, for that element only.
    _, org = connect(stub, emulator, context=samples.demo_context(with_chart=False))
    bad = samples.client_bill(22, [samples.line("Advice", "999", "GST", 10000, 1000)])
    bills = [samples.client_bill(21), bad, samples.client_bill(23)]

    postings = _post_all(stub, bills)

    states = [wait_settled(stub, p.name).state for p in postings]
    assert states == [poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED, poster_pb2.LINK_STATE_LINKED]
    failed = _link(stub, 22)
    assert failed.last_error.reason == "XERO_VALIDATION"
    assert any("999" in v.description for v in failed.last_error.field_violations)
    assert [a.event for a in failed.audit] == ["accepted", "xero_rejected"]
    assert app.dispatcher is not None
    assert app.dispatcher.calls_made == 3  # contact look-up, contact creation, ONE invoice call
    # Both writes carried a deterministic Idempotency-Key within Xero's 128 characters.
    keys = [key for tenant, key in emulator.state.idempotency._entries if tenant == org["tenant_id"]]
    assert len(keys) == 2
    assert all(key.startswith("xerolink-") and len(key) <= 128 for key in keys)
    assert sorted(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")) == [
        "INV-21",
        "INV-23",
    ]


def test_xeros_elements_are_trimmed_to_their_snapshots_before_the_answers_take_the_writer(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's answers are applied while the process's one SQLite writer is held, and a Post
    waits for that writer: trimming Xero's elements to what drift keeps is work on the answer
    alone, and was a fifth of that hold."""
    writing = threading.local()
    trimmed_while_writing: list[bool] = []
    real_enter, real_exit, real_trim = UnitOfWork.__enter__, UnitOfWork.__exit__, drift.trim

    def enter(self: UnitOfWork) -> UnitOfWork:
        unit = real_enter(self)
        writing.depth = getattr(writing, "depth", 0) + int(self.write)
        return unit

    def leave(self: UnitOfWork, *exc: Any) -> None:
        writing.depth -= int(self.write)
        real_exit(self, *exc)

    def trim(object_type: int, element: Any) -> dict[str, Any]:
        if threading.current_thread().name.startswith("xero-"):  # the dispatcher's jobs
            trimmed_while_writing.append(getattr(writing, "depth", 0) > 0)
        return real_trim(object_type, element)

    monkeypatch.setattr(UnitOfWork, "__enter__", enter)
    monkeypatch.setattr(UnitOfWork, "__exit__", leave)
    monkeypatch.setattr(drift, "trim", trim)
    app = poster_factory(settings(batch_size=50))
    stub = stub_for(app)
    _, org = connect(stub, emulator)

    postings = _post_all(stub, [samples.client_bill(31 + i) for i in range(4)])

    assert {wait_settled(stub, p.name).state for p in postings} == {poster_pb2.LINK_STATE_LINKED}
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 4
    assert len(trimmed_while_writing) >= 4  # each invoice's snapshot was made from its element
    assert not any(trimmed_while_writing)


def test_the_dispatcher_reads_entries_links_and_leases_as_values_not_orm_objects(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Every claim read its batch's entries and links as ORM objects, and every lease taken was
    read back as one, which the dispatcher then only read: building them was a tenth of the
    poster's CPU while it drained 200 organisations."""
    loaded: list[str] = []
    models = (LinkRow, OutboxRow, TenantLeaseRow)

    def count(target: Any, _context: Any) -> None:
        if threading.current_thread().name.startswith(("dispatcher", "tenant-", "xero-")):
            loaded.append(type(target).__name__)

    for model in models:
        event.listen(model, "load", count)
    try:
        app = poster_factory(settings(batch_size=50))
        stub = stub_for(app)
        _, org = connect(stub, emulator)
        postings = _post_all(stub, [samples.client_bill(41 + i) for i in range(4)])
        assert {wait_settled(stub, p.name).state for p in postings} == {poster_pb2.LINK_STATE_LINKED}
    finally:
        for model in models:
            event.remove(model, "load", count)
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 4
    assert loaded == []


def test_server_errors_are_retried_with_backoff_until_posted(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    emulator.faults.add(FaultRule("error", status=503, count=2, path_contains="Invoices"))

    posting = _post_all(stub, [samples.client_bill(8)])[0]

    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert _link(stub, 8).attempts == 3
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1


def test_an_answer_lost_after_xero_committed_is_looked_up_not_created_twice(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)

    posting = _post_all(stub, [samples.client_bill(9)])[0]

    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert dropped.hits == 1
    [invoice] = xero_objects(emulator, org["tenant_id"], "Invoices")
    assert _link(stub, 9).xero_objects[0].xero_id == invoice["InvoiceID"]


def test_a_participant_is_matched_by_contact_number_first_and_created_only_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    # The participant exists in Xero under another name (renamed in Actionstep since).
    existing = httpx.put(
        f"{emulator.base_url}/api.xro/2.0/Contacts",
        json={"Contacts": [{"Name": "Harper and Cole (old name)", "ContactNumber": "AS-501"}]},
        headers={"Authorization": f"Bearer {org['access_token']}", "xero-tenant-id": org["tenant_id"]},
    ).json()["Contacts"][0]
    other = samples.client_bill(62)
    other.header.participant.participant_id = 777
    other.header.participant.display_name = "Nguyen Family Trust"

    postings = _post_all(stub, [samples.client_bill(60), samples.client_bill(61), other])

    for posting in postings:
        assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    contacts = {c["ContactNumber"]: c for c in xero_objects(emulator, org["tenant_id"], "Contacts")}
    assert sorted(contacts) == ["AS-501", "AS-777"]
    invoices = {i["InvoiceNumber"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert invoices["INV-60"]["Contact"]["ContactID"] == existing["ContactID"]
    assert invoices["INV-61"]["Contact"]["ContactID"] == existing["ContactID"]
    assert invoices["INV-62"]["Contact"]["ContactID"] == contacts["AS-777"]["ContactID"]
    # A later bill of the same participant reuses the stored contact link: no look-up, no creation.
    later = _post_all(stub, [samples.client_bill(63)])[0]
    assert wait_settled(stub, later.name).state == poster_pb2.LINK_STATE_LINKED
    assert len(xero_objects(emulator, org["tenant_id"], "Contacts")) == 2


def test_a_lost_answer_never_mistakes_another_records_payment_with_the_same_reference_for_its_own(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Two instalments on one bill, same amount, both referenced "Smith" by the user. The second's
    answer is lost after Xero committed it; its look-up must find its own payment, not the first."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bill = samples.client_bill(70)
    assert wait_settled(stub, _post_all(stub, [bill])[0].name).state == poster_pb2.LINK_STATE_LINKED
    instalments = []
    for record_id in (7101, 7102):
        tx = transaction_pb2.Transaction(
            header=samples.header(record_id, reference="Smith"),
            client_bill_payment=billing_pb2.ClientBillPayment(bill_id=70, amount=samples.money(10000)),
        )
        instalments.append(tx)
    first = _post_all(stub, instalments[:1])[0]
    assert wait_settled(stub, first.name).state == poster_pb2.LINK_STATE_LINKED
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Payments")
    emulator.faults.add(dropped)

    second = _post_all(stub, instalments[1:])[0]

    assert wait_settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED
    assert dropped.hits == 1
    payments = [p for p in xero_objects(emulator, org["tenant_id"], "Payments") if p.get("Status") != "DELETED"]
    assert len(payments) == 2, "the second instalment was lost or duplicated"
    ids = {
        _link_of(stub, common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, r).xero_objects[0].xero_id for r in (7101, 7102)
    }
    assert ids == {p["PaymentID"] for p in payments}


def _link_of(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> poster_pb2.Link:
    link: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    ).link
    return link


def test_an_unexpected_dispatch_error_is_recorded_and_resolved_by_looking_up_not_left_pending(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Xero commits the invoice but the answer arrives mangled, so processing it raises. The
    posting must not sit PENDING with no reason: the attempt is recorded as DISPATCH_ERROR, and
    the next one looks the invoice up and links it instead of creating a second."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    garbled = FaultRule("garble_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(garbled)

    posting = _post_all(stub, [samples.client_bill(80)])[0]

    assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    assert garbled.hits == 1
    [invoice] = xero_objects(emulator, org["tenant_id"], "Invoices")
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(
            connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=80), include_audit=True
        )
    ).link
    assert link.xero_objects[0].xero_id == invoice["InvoiceID"]
    # The failed attempt counted: without the fix the entry waited out its claim (300 s) instead.
    assert link.attempts >= 2, link


def test_a_repost_after_giving_up_on_an_unknown_outcome_looks_up_first_and_refuses_changed_content(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero creates two invoices but the answer is lost, and every look-up fails until the
    dispatcher gives up: both links FAILED, the invoices in Xero. Reposting the same content must
    find each invoice, not create a second; changed content would be linked to an invoice with
    the old amounts, so it is refused until the same content has been reposted. Xero's
    idempotency keys have expired by then (half a second here, minutes at Xero)."""
    emulator = emulator_factory(minute_seconds=1.0, idempotency_minutes=0.5)
    stub = stub_for(poster_factory(settings(max_attempts=3, http_timeout=0.5)))
    _, org = connect(stub, emulator)
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    lookups_fail = FaultRule("error", status=503, methods=("GET",), path_contains="Invoices")
    emulator.faults.add(dropped)
    emulator.faults.add(lookups_fail)

    postings = _post_all(stub, [samples.client_bill(91), samples.client_bill(92)])

    for posting in postings:
        assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_FAILED
    # Both looked up at each remaining attempt (together, or apart once their back-offs differ).
    assert dropped.hits == 1 and lookups_fail.hits >= 2
    emulator.faults.set([r for r in emulator.faults.rules() if r is not lookups_fail])
    invoices = {i["InvoiceID"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert len(invoices) == 2
    assert "Check Xero for the reference" in _link(stub, 91).last_error.message

    changed = samples.client_bill(92, [samples.line("Advice, revised", "200", "GST", 99_000, 9_900)])
    with pytest.raises(grpc.RpcError) as refused:
        stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=changed))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "gave up without knowing whether Xero created it" in str(refused.value.details())

    again = _post_all(stub, [samples.client_bill(91), samples.client_bill(92)])

    for posting in again:
        assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    assert {i["InvoiceID"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")} == invoices
    assert {_link(stub, r).xero_objects[0].xero_id for r in (91, 92)} == invoices


def test_calls_another_client_made_are_adopted_from_xeros_remaining_header_and_nothing_is_refused(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Another client of the same tenant (or this poster before a crash lost its log) has used
    15 of the minute's 20 calls. The poster counts none of them; Xero's X-MinLimit-Remaining
    says so on the first answer, and the poster must wait for the window rather than be refused."""
    emulator = emulator_factory(minute_seconds=2.0, minute_limit=20)
    app = poster_factory(settings(batch_size=1, limits=scaled_limits(2.0, per_minute=20)))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    headers = {"Authorization": f"Bearer {org['access_token']}", "xero-tenant-id": org["tenant_id"]}
    for _ in range(15):
        answer = httpx.get(f"{emulator.base_url}/api.xro/2.0/Organisation", headers=headers)
        assert answer.status_code == 200
    assert int(answer.headers["X-MinLimit-Remaining"]) == 5

    postings = _post_all(stub, [samples.client_bill(5100 + i) for i in range(8)])

    for posting in postings:
        assert wait_settled(stub, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    assert app.dispatcher is not None
    assert app.dispatcher.calls_made == 10  # a contact look-up, its creation, 8 invoices
    assert app.dispatcher.calls_refused == 0
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 8


def test_the_day_limit_stops_calls_before_xero_refuses_and_the_rest_waits_visibly(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """A day of 8 calls (Xero's minute scaled to 10 ms, so the day lasts 14.4 s) and 14 calls of
    work: the poster makes 8, none refused, and the rest waits pending for the next day."""
    emulator = emulator_factory(minute_seconds=0.01, day_limit=8)
    app = poster_factory(settings(batch_size=1, limits=scaled_limits(0.01, per_day=8)))
    stub = stub_for(app)
    _, org = connect(stub, emulator)

    postings = _post_all(stub, [samples.client_bill(5200 + i) for i in range(12)])

    assert app.dispatcher is not None
    deadline = time.monotonic() + 10
    while app.dispatcher.calls_made < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # ample time for calls beyond the day's eight, were any allowed
    assert app.dispatcher.calls_made == 8  # a contact look-up, its creation, 6 invoices
    assert app.dispatcher.calls_refused == 0
    states = [stub.GetPosting(poster_pb2.GetPostingRequest(name=p.name)).posting.state for p in postings]
    assert states.count(poster_pb2.LINK_STATE_LINKED) == 6
    assert states.count(poster_pb2.LINK_STATE_PENDING) == 6
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 6


def test_tenants_beyond_the_workers_take_turns_instead_of_waiting_for_whole_backlogs(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # Four organisations, workers for two. Each backlog needs 22 calls at 10 a one-second
    # "minute": over two seconds of work per tenant, most of it waiting for Xero's budget.
    emulator = emulator_factory(minute_seconds=1.0, minute_limit=10)
    app = poster_factory(settings(batch_size=2, max_tenants=2, turn=0.3, limits=scaled_limits(1.0, per_minute=10)))
    stub = stub_for(app)
    tenants = {}
    for n in range(4):
        connection_id = f"firm-{n}"
        _, org = connect(stub, emulator, connection_id)
        tenants[connection_id] = org["tenant_id"]
    bills = 40
    for n, connection_id in enumerate(tenants):
        stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(
                connection_id=connection_id,
                transactions=[samples.client_bill(10_000 * (n + 1) + i) for i in range(bills)],
            )
        )
    started = time.monotonic()
    first: dict[str, float] = {}
    drained: dict[str, float] = {}
    while len(drained) < len(tenants) and time.monotonic() - started < 60:
        for connection_id, tenant in tenants.items():
            count = len(xero_objects(emulator, tenant, "Invoices"))
            if count and connection_id not in first:
                first[connection_id] = time.monotonic() - started
            if count == bills and connection_id not in drained:
                drained[connection_id] = time.monotonic() - started
        time.sleep(0.02)

    assert len(drained) == len(tenants), f"not every backlog was posted: {drained}"
    # Every organisation got its first invoice before any organisation's backlog was finished:
    # the two workers were shared, not kept by the first two tenants until they ran dry.
    assert max(first.values()) < min(drained.values()), (first, drained)
    assert app.dispatcher is not None and app.dispatcher.calls_refused == 0
