"""Preflight and the pre-integration backfill over real gRPC on loopback, with the real mapper, the
Xero emulator and the registry on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_cli.demo import mapping_context
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples
from xerolink_poster.entrypoints import bootstrap

from tests.fixtures.backfill_starts import at_once, meeting_at_the_mapper
from tests.fixtures.poster import PosterFactory, connect, stub_for, xero_objects
from tests.integration.test_poster_tenant_isolation import as_caller, poster  # noqa: F401  (fixture)

BEFORE = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)  # the demo connection is connected on 2026-01-01
AFTER = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
OPEN = backfill_pb2.BILL_STATUS_OPEN
ACCEPTED = backfill_pb2.BACKFILL_ITEM_OUTCOME_ACCEPTED
ALREADY_DONE = backfill_pb2.BACKFILL_ITEM_OUTCOME_ALREADY_DONE
REFUSED = backfill_pb2.BACKFILL_ITEM_OUTCOME_REFUSED
COMPATIBLE = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE
EXTENDED = mapper_pb2.POLICY_PROFILE_EXTENDED


def _dated(transaction: transaction_pb2.Transaction, posted: datetime) -> transaction_pb2.Transaction:
    transaction.header.posted_at.CopyFrom(samples.timestamp(posted))
    transaction.header.transaction_date.year, transaction.header.transaction_date.month = posted.year, posted.month
    transaction.header.transaction_date.day = posted.day
    return transaction


def _payment(record_id: int, bill_id: int, cents: int) -> transaction_pb2.Transaction:
    payment = transaction_pb2.Transaction(
        header=samples.header(record_id),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=bill_id, amount=samples.money(cents)),
    )
    return _dated(payment, BEFORE)


def open_bill(
    bill_id: int, payments: list[int], posted: datetime = BEFORE, status: int = OPEN, due_offset: int = 0
) -> backfill_pb2.BackfillBill:
    """An Actionstep bill with its payments (cents) and the totalDue Actionstep shows for it."""
    bill = _dated(samples.client_bill(bill_id), posted)
    bill.client_bill.bill_number = f"OLD-{bill_id}"
    paid = [_payment(bill_id * 10 + n, bill_id, cents) for n, cents in enumerate(payments, start=1)]
    due = bill.client_bill.totals.inclusive.units - sum(payments) + due_offset
    return backfill_pb2.BackfillBill(bill=bill, status=status, total_due=samples.money(due), payments=paid)  # type: ignore[arg-type]


def thirty_bills() -> list[backfill_pb2.BackfillBill]:
    # 0, 1 or 2 partial payments per bill, of varying amounts.
    return [open_bill(5000 + n, [1000 + 37 * n + 100 * k for k in range(n % 3)]) for n in range(30)]


def watch(stub: poster_grpc.PosterServiceStub, name: str) -> list[backfill_pb2.Backfill]:
    return [u.backfill for u in stub.WatchBackfill(backfill_pb2.WatchBackfillRequest(name=name), timeout=60)]


def ledger_counts(emulator: EmulatorServer, tenant_id: str) -> dict[str, Any]:
    return dict(emulator.ledger(tenant_id)["objects"])


def _link(stub: poster_grpc.PosterServiceStub, key: common_pb2.RecordKey) -> poster_pb2.Link:
    link: poster_pb2.Link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=key)).link
    return link


def test_a_backfill_of_30_open_bills_links_them_with_their_partial_payments_and_a_second_run_adds_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bills = thirty_bills()
    transactions = sum(1 + len(b.payments) for b in bills)

    started = stub.StartBackfill(backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=bills)).backfill

    assert started.name == f"backfills/{started.backfill_id}"
    assert (started.bills, started.total, started.accepted, started.refused) == (30, transactions, transactions, 0)
    updates = watch(stub, started.name)
    final = updates[-1]
    assert final.state == backfill_pb2.BACKFILL_STATE_DONE
    assert (final.linked, final.pending, final.waiting, final.failed) == (transactions, 0, 0, 0)
    linked_seen = [u.linked for u in updates]
    assert linked_seen == sorted(linked_seen)  # progress only moves forward
    assert stub.GetBackfill(backfill_pb2.GetBackfillRequest(name=started.name)).backfill.linked == transactions

    # Each Xero invoice owes what Actionstep says is due on the bill; each payment is on its invoice.
    invoices = {i["InvoiceID"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    payments = {p["PaymentID"]: p for p in xero_objects(emulator, org["tenant_id"], "Payments")}
    assert len(invoices) == 30 and len(payments) == transactions - 30
    for bill in bills:
        invoice_id = (
            _link(stub, common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=bill.bill.header.id))
            .xero_objects[0]
            .xero_id
        )
        assert invoices[invoice_id]["AmountDue"] == Decimal(bill.total_due.units) / 100
        assert invoices[invoice_id]["InvoiceNumber"] == bill.bill.client_bill.bill_number
        for payment in bill.payments:
            key = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, id=payment.header.id)
            payment_id = _link(stub, key).xero_objects[0].xero_id
            assert payments[payment_id]["Invoice"]["InvoiceID"] == invoice_id
    ledger = emulator.ledger(org["tenant_id"])
    assert ledger["receivables_outstanding"] == Decimal(sum(b.total_due.units for b in bills)) / 100
    before = ledger_counts(emulator, org["tenant_id"])

    again = stub.StartBackfill(backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=bills)).backfill

    assert again.name != started.name
    assert (again.accepted, again.already_done, again.refused) == (0, transactions, 0)
    assert {i.outcome for i in again.items} == {ALREADY_DONE}
    assert again.state == backfill_pb2.BACKFILL_STATE_DONE and again.linked == transactions
    assert [i.posting for i in again.items] == [i.posting for i in final.items]  # the existing postings
    assert ledger_counts(emulator, org["tenant_id"]) == before


def test_closed_draft_post_connection_and_mismatched_bills_are_refused_with_reasons_and_reach_no_xero(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bills = [
        open_bill(6001, [2000]),
        open_bill(6002, [93655], status=backfill_pb2.BILL_STATUS_CLOSED),
        open_bill(6003, [1000], posted=AFTER),
        open_bill(6004, [], status=backfill_pb2.BILL_STATUS_DRAFT),
        open_bill(6005, [1500], due_offset=-500),  # a payment of the bill was left out of the request
        open_bill(6006, [1000]),
    ]
    bills[-1].payments[0].client_bill_payment.bill_id = 6001  # sent with the wrong bill

    started = stub.StartBackfill(backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=bills)).backfill

    by_bill = {(i.record.kind, i.record.id): i for i in started.items}
    bill_kind, payment_kind = common_pb2.TRANSACTION_KIND_CLIENT_BILL, common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
    assert by_bill[(bill_kind, 6001)].outcome == ACCEPTED
    expected = {6002: "BILL_NOT_OPEN", 6003: "NOT_PRE_INTEGRATION", 6004: "BILL_NOT_OPEN"}
    expected[6005] = "PAYMENTS_DO_NOT_MATCH_TOTAL_DUE"
    for bill_id, reason in expected.items():
        item = by_bill[(bill_kind, bill_id)]
        assert (item.outcome, item.error.reason, item.posting) == (REFUSED, reason, "")
        assert f"OLD-{bill_id}" in item.error.message
    assert "closed" in by_bill[(bill_kind, 6002)].error.message
    assert "PostTransaction" in by_bill[(bill_kind, 6003)].error.message
    assert "is 921.55, but Actionstep's totalDue is 916.55" in by_bill[(bill_kind, 6005)].error.message
    for bill_id in (6002, 6003, 6005):
        payment = by_bill[(payment_kind, bill_id * 10 + 1)]
        assert (payment.outcome, payment.error.reason) == (REFUSED, "BILL_REFUSED")
    assert (by_bill[(bill_kind, 6006)].error.reason, by_bill[(payment_kind, 60061)].error.reason) == (
        "PAYMENT_REFUSED",
        "PAYMENT_OF_ANOTHER_BILL",
    )
    assert (started.total, started.accepted, started.refused) == (11, 2, 9)

    final = watch(stub, started.name)[-1]
    assert (final.linked, final.refused) == (2, 9)
    [invoice] = xero_objects(emulator, org["tenant_id"], "Invoices")
    assert invoice["InvoiceNumber"] == "OLD-6001"
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 1
    with pytest.raises(grpc.RpcError) as err:
        stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=bill_kind, id=6003))
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_pre_integration_bill_posted_normally_is_still_refused_as_before(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """The backfill flag is the backfill's alone: PostTransaction keeps the mapper's decision."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=open_bill(7001, []).bill)
    ).posting
    assert not posting.decision.supported and posting.decision.reason_code == "PRE_INTEGRATION"


# The Australian organisation's rates that the demo's tax maps name, as ConnectOrganisation stores them.
AU_RATES = ("BASEXCLUDED", "EXEMPTEXPENSES", "EXEMPTOUTPUT", "INPUT", "OUTPUT")


def _context(**facts: Any) -> mapper_pb2.MappingContext:
    context = samples.demo_context()
    context.tax_rates.extend(mapper_pb2.TaxRate(tax_type=t, status="ACTIVE") for t in AU_RATES)
    for name, value in facts.items():
        if name in {"account_allocation", "tax_code_map"}:  # maps: merged, not replaced
            getattr(context, name).update(value)
        else:
            setattr(context, name, value)
    return context


BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "ACCOUNTING_METHOD": ({"accounting_method": mapper_pb2.ACCOUNTING_METHOD_CASH}, "accrual"),
    "MULTI_CURRENCY_DATABASE": ({"multi_currency_database": True}, "multiple currencies"),
    "GENERAL_RETAINERS": ({"general_retainers_configured": True}, "remove the retainer balances"),
    "DIVISIONS": ({"linked_division_id": 9}, "not one of the organisation's divisions"),
    "ACCOUNT_ALLOCATION": ({"account_allocation": {"trust_bank": "099"}}, "'trust_bank' is allocated account 099"),
    "TAX_TYPES": ({"tax_code_map": {"GST": "OUTPUT2"}}, "tax_code_map[GST] is OUTPUT2"),
}


@pytest.mark.parametrize("check", list(BROKEN))
def test_each_preflight_check_fails_with_its_sentence_and_passes_when_fixed(
    poster_factory: PosterFactory, emulator: EmulatorServer, check: str
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    facts, sentence = BROKEN[check]
    connect(stub, emulator, "broken", _context(**facts))
    connect(stub, emulator, "fixed", _context())

    broken = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="broken", division_ids=[1]))
    fixed = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="fixed", division_ids=[1]))

    assert [c.check for c in broken.checks] == [*BROKEN, "CONNECTION_STATE"]
    statuses = {c.check: c.status for c in broken.checks}
    assert statuses.pop(check) == backfill_pb2.PREFLIGHT_STATUS_FAIL
    assert set(statuses.values()) == {backfill_pb2.PREFLIGHT_STATUS_PASS}
    [failed] = [c for c in broken.checks if c.check == check]
    assert sentence in failed.message
    assert not broken.ready and broken.profile == COMPATIBLE
    assert fixed.ready and {c.status for c in fixed.checks} == {backfill_pb2.PREFLIGHT_STATUS_PASS}

    request = backfill_pb2.StartBackfillRequest(connection_id="broken", bills=[open_bill(8001, [])])
    if check == "DIVISIONS":
        # A backfill is not sent the organisation's divisions: the mapper refuses the bill itself.
        [item] = stub.StartBackfill(request).backfill.items
        assert (item.outcome, item.error.reason) == (REFUSED, "OTHER_DIVISION")
        return
    # A failed check refuses a backfill before anything is recorded, naming the check.
    with pytest.raises(grpc.RpcError) as err:
        stub.StartBackfill(request)
    error = from_rpc_error(err.value)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "PREFLIGHT_FAILED"
    assert [v.type for v in error.precondition_violations] == [check]
    assert sentence in error.precondition_violations[0].description
    assert not stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="broken")).links


def test_preflight_answers_with_the_profile_each_check_applies_in(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    extended = _context(profile=EXTENDED, multi_currency_database=True)
    connect(stub, emulator, "ext", extended)
    connect(stub, emulator, "compat", _context())

    ext = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="ext", division_ids=[1, 2, 3]))
    compat = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="compat"))

    checks = {c.check: c for c in ext.checks}
    assert ext.profile == EXTENDED and ext.ready  # warnings only
    assert checks["MULTI_CURRENCY_DATABASE"].status == backfill_pb2.PREFLIGHT_STATUS_WARNING
    assert list(checks["MULTI_CURRENCY_DATABASE"].profiles) == [COMPATIBLE]
    assert checks["DIVISIONS"].status == backfill_pb2.PREFLIGHT_STATUS_WARNING
    assert "2, 3" in checks["DIVISIONS"].message and "OTHER_DIVISION" in checks["DIVISIONS"].message
    assert list(checks["DIVISIONS"].profiles) == [COMPATIBLE, EXTENDED]
    # Only checks that do not pass name the reason transactions are refused with.
    assert {c.check: c.reason_code for c in ext.checks} == {
        "ACCOUNTING_METHOD": "",
        "MULTI_CURRENCY_DATABASE": "MULTI_CURRENCY_DATABASE",
        "GENERAL_RETAINERS": "",
        "DIVISIONS": "OTHER_DIVISION",
        "ACCOUNT_ALLOCATION": "",
        "TAX_TYPES": "",
        "CONNECTION_STATE": "",
    }
    [divisions] = [c for c in compat.checks if c.check == "DIVISIONS"]
    assert divisions.status == backfill_pb2.PREFLIGHT_STATUS_WARNING
    assert "send every division id" in divisions.message


def test_bad_backfill_requests_are_invalid_arguments_and_record_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    calls: dict[str, Callable[[], object]] = {
        "no bills": lambda: stub.StartBackfill(backfill_pb2.StartBackfillRequest(connection_id="firm-1")),
        "bad name": lambda: stub.GetBackfill(backfill_pb2.GetBackfillRequest(name="postings/1")),
        "no header": lambda: stub.StartBackfill(
            backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[backfill_pb2.BackfillBill(status=OPEN)])
        ),
    }
    for what, call in calls.items():
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert from_rpc_error(err.value).field_violations, what
    with pytest.raises(grpc.RpcError) as err:
        stub.GetBackfill(backfill_pb2.GetBackfillRequest(name="backfills/nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links


def test_the_same_request_id_answers_the_backfill_it_started(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    request = backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[open_bill(9001, [500])], request_id="r1")
    first = stub.StartBackfill(request).backfill
    second = stub.StartBackfill(request).backfill
    assert second.name == first.name and second.accepted == 2 and second.request_id == "r1"


def test_a_request_id_reused_for_other_bills_is_refused_and_posts_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Defect: a reused request_id answered with the backfill it first started, whatever bills
    came with it, so bill 9202 was never posted. A request_id names one request (AIP-155)."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    first = stub.StartBackfill(
        backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[open_bill(9201, [500])], request_id="r2")
    ).backfill
    with pytest.raises(grpc.RpcError) as err:
        stub.StartBackfill(
            backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[open_bill(9202, [])], request_id="r2")
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "REQUEST_ID_REUSED" in str(err.value.trailing_metadata()) or "already used" in str(err.value.details())
    records = {link.record.id for link in stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links}
    assert 9202 not in records and 9201 in records
    again = stub.StartBackfill(
        backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[open_bill(9202, [])], request_id="r3")
    ).backfill
    assert again.name != first.name and again.accepted == 1


def test_starts_of_other_bills_under_one_request_id_at_once_post_only_the_one_that_claimed_it(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four starts of different bills under one request_id, all inside the payments' check
    (the last step before anything is posted) together: one claims the request_id and is
    posted; the other three are refused REQUEST_ID_REUSED with nothing of them queued. On
    PostgreSQL the claims are kept apart by the connection row's lock, not by the file's one
    writer."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    starts = 4
    meeting_at_the_mapper(app, monkeypatch, starts)

    def start(bill_id: int) -> Callable[[], backfill_pb2.Backfill]:
        request = backfill_pb2.StartBackfillRequest(
            connection_id="firm-1", bills=[open_bill(bill_id, [500])], request_id="nightly"
        )
        return lambda: stub.StartBackfill(request, timeout=30).backfill

    answers = {int(k): a for k, a in at_once({str(b): start(b) for b in range(9301, 9301 + starts)}).items()}

    started = [b for b, a in answers.items() if isinstance(a, backfill_pb2.Backfill)]
    refused = {b: a for b, a in answers.items() if isinstance(a, grpc.RpcError)}
    assert len(started) == 1 and len(refused) == starts - 1, answers
    for err in refused.values():
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err
        assert from_rpc_error(err).reason == "REQUEST_ID_REUSED", err
    records = {link.record.id for link in stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links}
    assert records == {started[0], started[0] * 10 + 1}, records


def test_only_a_connections_callers_may_preflight_backfill_or_follow_its_backfills(
    poster: bootstrap.PosterApp,  # noqa: F811
    emulator: EmulatorServer,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{poster.port}") as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        for connection_id in ("firm-a", "firm-b"):
            org = emulator.create_organisation(connection_id)
            register_emulated_connection(
                stub, connection_id, emulator.base_url, org, mapping_context(), metadata=as_caller("operator")
            )
        b = as_caller("firm-b-app")
        started = stub.StartBackfill(
            backfill_pb2.StartBackfillRequest(connection_id="firm-b", bills=[open_bill(9101, [])]), metadata=b
        ).backfill
        assert stub.GetBackfill(backfill_pb2.GetBackfillRequest(name=started.name), metadata=b).backfill.accepted == 1

        a = as_caller("firm-a-app")
        denied: tuple[Callable[[], object], ...] = (
            lambda: stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-b"), metadata=a),
            lambda: stub.StartBackfill(
                backfill_pb2.StartBackfillRequest(connection_id="firm-b", bills=[open_bill(9102, [])]), metadata=a
            ),
        )
        for call in denied:
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        hidden: tuple[Callable[[], object], ...] = (
            lambda: stub.GetBackfill(backfill_pb2.GetBackfillRequest(name=started.name), metadata=a),
            lambda: next(iter(stub.WatchBackfill(backfill_pb2.WatchBackfillRequest(name=started.name), metadata=a))),
        )
        for call in hidden:
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        links = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-b"), metadata=as_caller("operator"))
        assert [link.record.id for link in links.links] == [9101]


def test_a_bill_xero_refuses_ends_the_backfill_failed_with_its_payment_waiting_and_a_rerun_links_both(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Old bills meet Xero's lock date: the locked one fails with Xero's reason, its payment waits
    for it, the rest link, and the backfill still ends."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    emulator.state.organisation(org["tenant_id"]).period_lock_date = date(2025, 12, 5)
    locked = open_bill(7101, [1000])
    _dated(locked.bill, datetime(2025, 12, 1, tzinfo=UTC))
    bills = [locked, open_bill(7102, [2000])]

    started = stub.StartBackfill(backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=bills)).backfill
    final = watch(stub, started.name)[-1]

    assert final.state == backfill_pb2.BACKFILL_STATE_DONE
    assert (final.linked, final.failed, final.waiting, final.pending) == (2, 1, 1, 0)
    by_record = {i.record.id: i for i in final.items}
    assert by_record[7101].state == backfill_pb2.BACKFILL_ITEM_STATE_FAILED
    assert by_record[7101].error.reason == "XERO_VALIDATION"
    assert any("lock date" in v.description for v in by_record[7101].error.field_violations)
    assert by_record[71011].state == backfill_pb2.BACKFILL_ITEM_STATE_WAITING
    assert by_record[71011].error.reason == "DEPENDENCY_NOT_LINKED"
    assert [i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")] == ["OLD-7102"]

    # Once the lock date moves, the same backfill again retries the failed bill and its payment follows.
    emulator.state.organisation(org["tenant_id"]).period_lock_date = date(2025, 11, 30)
    again = stub.StartBackfill(backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=bills)).backfill
    assert (again.accepted, again.already_done) == (1, 3)
    rerun = watch(stub, again.name)[-1]
    assert (rerun.state, rerun.linked) == (backfill_pb2.BACKFILL_STATE_DONE, 4)
    invoices = {i["InvoiceNumber"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert invoices["OLD-7101"]["AmountDue"] == Decimal(locked.total_due.units) / 100
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 2
