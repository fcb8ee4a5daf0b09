"""A second outside review of keeping trust and office money apart in the mapper, and of the
operator's reads: what the mapper now refuses that Actionstep's own integration posts (trust
interest, statutory and advanced funds, invoices paid from trust, trust transfers to the office,
allocations with empty functions, charts without some accounts, a firm whose trust money is kept in
an organisation of its own), what still mixes the ledgers (journals, transfers both ways, line
accounts, codes written with a space), the currency codes of the samples and regions; then the
page tokens of every listing, the preflight of a healthy connection before a backfill, and the
per-matter trust balances of Reconcile (receipts, transfers, invoices paid from trust, journals
between matters with and without reports by matter).

Real mapper and poster gRPC servers on loopback, the Xero emulator over HTTP, a SQLite registry.

Sources: ../shared/seeds/001_7b2d31b5843188f6.txt ("Understanding the Xero and Actionstep
Integration"), ../shared/DESIGN.md, docs/support-matrix.md, docs/matters-and-organisations.md,
docs/drift.md, docs/backfill.md, and Xero's OpenAPI description
../shared/xero-openapi/xero_accounting.yaml.

"DEFECT:" tests fail while the product gets it wrong and say what the accountant loses;
"GUARD:" tests pin behaviour that holds."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.poster.v1 import backfill_pb2, connection_pb2, drift_pb2, organisations_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.type.v1 import date_pb2
from xerolink_common.errors import XerolinkError
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.attack.test_mapper_outside_attacks import Answer, _map
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_for, wait_settled
from tests.fixtures.routing import extended_context, route

COMPATIBLE = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE
EXTENDED = mapper_pb2.POLICY_PROFILE_EXTENDED
MARCH = ("2026-03-01", "2026-03-31")


# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mapper(mapper_target: str) -> Iterator[mapper_grpc.MapperServiceStub]:
    channel = grpc.insecure_channel(mapper_target)
    try:
        yield mapper_grpc.MapperServiceStub(channel)
    finally:
        channel.close()


def _mapped(answer: Answer) -> mapper_pb2.MapTransactionResponse:
    assert not isinstance(answer, XerolinkError), f"refused: {answer.code} {answer.message}"
    assert answer.decision.supported, answer.decision
    assert answer.operations
    return answer


def _refused_fields(answer: Answer) -> list[str]:
    assert isinstance(answer, XerolinkError), f"expected a refusal, got {answer}"
    assert answer.code.name == "INVALID_ARGUMENT", answer.message
    return [v.field for v in answer.field_violations]


def _sample(name: str, base: int = 40_000) -> transaction_pb2.Transaction:
    return samples.sample_transactions(base)[name]


def _context(profile: int = COMPATIBLE) -> mapper_pb2.MappingContext:
    return samples.demo_context(profile=profile)


def _date(text: str) -> date_pb2.Date:
    year, month, day = (int(p) for p in text.split("-"))
    return date_pb2.Date(year=year, month=month, day=day)


def _post(stub: poster_grpc.PosterServiceStub, connection_id: str, tx: transaction_pb2.Transaction) -> Any:
    answer = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=tx), timeout=30
    )
    return wait_settled(stub, answer.posting.name)


def _reconcile(stub: poster_grpc.PosterServiceStub, connection_id: str = "firm-1") -> Any:
    request = drift_pb2.ReconcileRequest(
        connection_id=connection_id, from_date=_date(MARCH[0]), to_date=_date(MARCH[1])
    )
    return stub.Reconcile(request, timeout=120)


def _matters(answer: Any) -> dict[int, int]:
    return {m.action_id: m.balance.units for m in answer.trust.matters}


def _refusal(call: Any) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as err:
        return err
    raise AssertionError("the call was answered; a refusal was expected")


# -- 1. what Actionstep's own integration posts is still posted ------------------------------------

# The compatible profile's supported kinds, by the seed's Supported Transactions table.
COMPATIBLE_POSTED = [
    "client_bill",
    "client_bill_payment",
    "credit_note",
    "credit_note_application",
    "trust_receipt",
    "trust_payment",
    "trust_journal",
    "trust_transfer",
    "trust_interest",
    "invoice_paid_from_trust",
    "statutory_funds",
    "advanced_funds",
    "supplier_invoice",
    "supplier_invoice_payment",
    "supplier_credit",
    "supplier_credit_application",
]


@pytest.mark.parametrize("kind", COMPATIBLE_POSTED)
def test_every_kind_actionstep_posts_still_maps_with_the_demo_allocation(
    mapper: mapper_grpc.MapperServiceStub, kind: str
) -> None:
    """GUARD: seed 001_7b2d31b5843188f6.txt, Supported Transactions: trust receipts, payments,
    journals and transfers (the sample one goes to the office bank), interest, invoice payments
    from trust, statutory and advanced funds, and the billing and supplier rows are "Yes" in the
    default profile; none is refused by the new ledger checks with the demo allocation and chart."""
    _mapped(_map(mapper, _sample(kind), _context()))


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("overpayment_refund", "EXTENDED_ONLY"),
        ("credit_note_refund", "EXTENDED_ONLY"),
        ("general_retainer", "GENERAL_RETAINER_NOT_SUPPORTED"),
        ("bank_withdrawal", "EXTENDED_ONLY"),
        ("general_journal", "EXTENDED_ONLY"),
        ("office_bank_transfer", "EXTENDED_ONLY"),
    ],
)
def test_what_actionstep_does_not_post_is_a_decision_not_an_error(
    mapper: mapper_grpc.MapperServiceStub, kind: str, reason: str
) -> None:
    """GUARD: refunds of overpayments and credit notes, general retainers, bank withdrawals (a bank
    fee), general journals and office transfers are "No" in the seed's table: the answer is an
    unsupported decision with its reason, never an INVALID_ARGUMENT from the ledger checks (the body
    of an unsupported transaction is not checked)."""
    tx = _sample(kind)
    if kind == "bank_withdrawal":  # a bank fee on the trust bank account
        tx.bank_withdrawal.bank_account = "091"
    answer = _map(mapper, tx, _context())
    assert not isinstance(answer, XerolinkError), answer.message
    assert (answer.decision.supported, answer.decision.reason_code) == (False, reason)


@pytest.mark.parametrize("emptied", ["trust_transfers", "trust_paid_by_firm", "statutory_deposit", "advanced_funds"])
def test_an_allocation_that_leaves_functions_empty_still_posts_what_it_can(
    mapper: mapper_grpc.MapperServiceStub, emptied: str
) -> None:
    """GUARD: a firm outside the regions of statutory or advanced funds, or one whose Actionstep
    allocation leaves a function blank, still posts trust receipts and client bill payments; an
    empty code is no account of either ledger."""
    ctx = _context()
    ctx.account_allocation[emptied] = ""
    for kind in ("trust_receipt", "client_bill_payment", "invoice_paid_from_trust", "trust_transfer"):
        _mapped(_map(mapper, _sample(kind), ctx))


def test_a_chart_without_the_trust_accounts_still_posts_office_work(mapper: mapper_grpc.MapperServiceStub) -> None:
    """GUARD: an organisation whose chart lacks the allocated trust accounts (the trust money is
    kept elsewhere) posts its bills and their payments; only operations' codes are checked
    against the chart."""
    ctx = _context()
    kept = [a for a in ctx.chart if a.code not in ("091", "092", "093", "850", "855", "860")]
    del ctx.chart[:]
    ctx.chart.extend(kept)
    for kind in ("client_bill", "client_bill_payment", "supplier_invoice"):
        _mapped(_map(mapper, _sample(kind), ctx))


def _trust_organisation() -> mapper_pb2.MappingContext:
    """The connection of a firm's trust organisation (extended profile, ledgers TRUST). Its trust
    bank has code 090 in its own chart, the code the firm's office organisation gives its office
    bank, which the trust connection allocates as office_bank so that a trust transfer to the
    office is refused TRANSFER_BETWEEN_ORGANISATIONS (docs/support-matrix.md)."""
    ctx = samples.demo_context(profile=EXTENDED)
    ctx.ledgers = mapper_pb2.ORGANISATION_LEDGERS_TRUST
    ctx.account_allocation["trust_bank"] = "090"
    ctx.account_allocation["office_bank"] = "090"  # the office organisation's bank
    chart = [a for a in ctx.chart if a.code not in ("090", "091", "094")]
    chart.append(mapper_pb2.ChartAccount(code="090", name="Trust Bank", type="BANK", status="ACTIVE"))
    del ctx.chart[:]
    ctx.chart.extend(chart)
    return ctx


@pytest.mark.parametrize("kind", ["trust_receipt", "trust_payment", "trust_interest", "invoice_paid_from_trust"])
def test_a_trust_organisation_whose_bank_code_is_the_office_organisations_posts_trust_money(
    mapper: mapper_grpc.MapperServiceStub, kind: str
) -> None:
    """DEFECT: docs/matters-and-organisations.md, "Trust in its own organisation": the trust
    organisation is a Xero organisation of its own ("Each connection has its own account allocation,
    chart"), and docs/support-matrix.md has its connection allocate `office_bank` (the office
    organisation's bank) so a trust transfer there is refused TRANSFER_BETWEEN_ORGANISATIONS.
    Account codes are per organisation (Xero's Account.Code is unique within one chart only), so the
    trust organisation's trust bank may well be 090, the office organisation's office bank code.
    MappingJob.allocated then sees one code in trust_accounts and office_accounts and refuses every
    trust receipt, payment, interest and invoice paid from trust FAILED_PRECONDITION
    MAPPING_NOT_CONFIGURED ("clients' money and the firm's would share one Xero account"): the two
    accounts are in two organisations and share nothing. The firm's whole trust ledger stops
    reaching Xero (seed: "All trust transactions" are pushed)."""
    _mapped(_map(mapper, _sample(kind), _trust_organisation()))


# -- 2. nothing mixes the ledgers ------------------------------------------------------------------


def test_a_general_journal_moving_money_between_the_trust_bank_and_office_is_refused_naming_the_line(
    mapper: mapper_grpc.MapperServiceStub,
) -> None:
    """GUARD: an extended-profile general journal with a line on the trust bank and one on the
    office bank is INVALID_ARGUMENT naming the trust line's gl_account; trust money moves only by the
    trust kinds."""
    tx = _sample("general_journal")
    del tx.general_journal.lines[:]
    tx.general_journal.lines.extend(
        [
            common_pb2.JournalLine(gl_account="090", description="Top up", amount=samples.money(10_000)),
            common_pb2.JournalLine(gl_account="091", description="Top up", amount=samples.money(-10_000)),
        ]
    )
    assert _refused_fields(_map(mapper, tx, _context(EXTENDED))) == ["transaction.general_journal.lines[1].gl_account"]


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [("090", "091", "to_bank_account"), ("091", "090", "from_bank_account")],
)
def test_an_office_transfer_in_either_direction_with_the_trust_bank_is_refused(
    mapper: mapper_grpc.MapperServiceStub, source: str, target: str, field: str
) -> None:
    """GUARD: an office bank-to-bank transfer into or out of the trust bank is INVALID_ARGUMENT
    naming the trust side's field: a movement of trust money is a trust transaction."""
    tx = _sample("office_bank_transfer")
    tx.office_bank_transfer.from_bank_account, tx.office_bank_transfer.to_bank_account = source, target
    assert _refused_fields(_map(mapper, tx, _context(EXTENDED))) == [f"transaction.office_bank_transfer.{field}"]


@pytest.mark.parametrize(
    ("kind", "field", "code"),
    [
        ("client_bill_payment", "bank_account", "091"),
        ("supplier_invoice_payment", "bank_account", "092"),
        ("trust_receipt", "trust_bank_account", "090"),
        ("trust_transfer", "from_bank_account", "090"),
        ("statutory_funds", "statutory_account", "090"),
        ("advanced_funds", "trust_bank_account", "090"),
        ("invoice_paid_from_trust", "trust_bank_account", "090"),
    ],
)
def test_a_bank_of_the_other_ledger_is_refused_naming_the_field_in_the_default_profile(
    mapper: mapper_grpc.MapperServiceStub, kind: str, field: str, code: str
) -> None:
    """GUARD: in the compatible profile, a client or supplier payment through a trust account, a
    trust receipt into the office bank, a trust transfer from the office bank into trust and statutory funds
    moved to the office bank are INVALID_ARGUMENT naming the field."""
    tx = _sample(kind)
    setattr(getattr(tx, kind), field, code)
    if kind == "trust_transfer":  # from the office bank into trust
        tx.trust_transfer.to_bank_account = "091"
    assert _refused_fields(_map(mapper, tx, _context())) == [f"transaction.{kind}.{field}"]


@pytest.mark.parametrize("code", ["091 ", " 091", "91", "0091"])
def test_a_trust_bank_code_written_otherwise_never_reaches_xero_as_an_office_bank(
    mapper: mapper_grpc.MapperServiceStub, code: str
) -> None:
    """GUARD: a client bill payment naming the trust bank with a space or another zero padding is
    not the allocated code, so the ledger check lets it by; the chart check then refuses it
    FAILED_PRECONDITION naming the code, and nothing is posted to a trust account as office money."""
    tx = _sample("client_bill_payment")
    tx.client_bill_payment.bank_account = code
    answer = _map(mapper, tx, _context())
    assert isinstance(answer, XerolinkError), "mapped: a trust account's code reaches Xero as an office bank"
    assert answer.code.name == "FAILED_PRECONDITION", answer.message
    assert [(v.type, v.subject) for v in answer.precondition_violations] == [("ACCOUNT_NOT_IN_CHART", code)]


@pytest.mark.parametrize("currency", ["AUD", "NZD", "GBP", "USD", "CAD", "EUR"])
def test_the_currencies_of_the_samples_and_regions_are_still_taken(
    mapper: mapper_grpc.MapperServiceStub, currency: str
) -> None:
    """GUARD: the regions' base currencies (AUD, NZD, GBP, USD, CAD: docs/regions.md) and the
    emulator's other currency (EUR) are in xerolink_common.money.CURRENCY_CODES: a bill in each, in
    its own base currency, maps."""
    ctx = _context()
    ctx.base_currency_code = currency
    tx = _sample("client_bill")
    tx.header.currency_code = currency
    bill = tx.client_bill
    for item in bill.lines:
        item.amount.currency_code = item.tax.currency_code = currency
    for total in (bill.totals.exclusive, bill.totals.tax, bill.totals.inclusive):
        total.currency_code = currency
    _mapped(_map(mapper, tx, ctx))


# -- 3. per-matter trust balances in Reconcile -----------------------------------------------------

pytestmark_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytestmark_sqlite
def test_trust_receipts_payments_and_an_invoice_paid_from_trust_are_each_counted_once_per_matter(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: docs/drift.md, "Trust": in the default profile a trust receipt of 5,000.00 to matter
    7001, a trust payment of 1,200.00 and an invoice paid from trust of 400.00 (its trust spend and
    its office payment) leave matter 7001 with 3,400.00, once: the payment of the invoice is office
    money and adds nothing, and Xero's trust liability agrees."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    sample = samples.sample_transactions(71_000)
    for name in ("client_bill", "trust_receipt", "trust_payment", "invoice_paid_from_trust", "trust_transfer"):
        assert _post(stub, "firm-1", sample[name]).state == poster_pb2.LINK_STATE_LINKED, name

    answer = _reconcile(stub)
    trust = answer.trust

    assert _matters(answer) == {7001: 340_000}
    assert trust.posted_total.units == trust.xero_liability.units == 340_000


@pytestmark_sqlite
def test_a_trust_journal_between_two_matters_moves_each_matters_balance_in_the_default_profile(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: docs/drift.md, "Trust" (as 5eefc53 rewrote it): every line of a counted object is
    read, so "a trust journal from one matter to another ... moves the paying matter's balance down
    and the receiving matter's up". In the default actionstep-compatible profile (the seed: "Trust
    receipts, payments, journals, and transfers: Yes"), reports by matter cannot be on, so the
    journal's two lines carry no tracking option and reconciliation gave both the link's matter
    (the header's action, 7001): +300.00 and -300.00 on one matter. After a receipt of 5,000.00 to
    7001 and a journal of 300.00 from 7001 to 7002, Reconcile answered {7001: 5,000.00} and nothing
    for 7002, with trust "reconciled": the paying matter still showed money it no longer holds and
    the receiving matter none of it. The per-matter trust ledger a trust account audit checks was
    wrong for every matter-to-matter journal of every default-profile firm."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    sample = samples.sample_transactions(72_000)
    for name in ("trust_receipt", "trust_journal"):
        assert _post(stub, "firm-1", sample[name]).state == poster_pb2.LINK_STATE_LINKED, name

    answer = _reconcile(stub)

    assert answer.trust.posted_total.units == answer.trust.xero_liability.units == 500_000
    assert _matters(answer) == {7001: 470_000, 7002: 30_000}


@pytestmark_sqlite
def test_the_trust_organisations_matters_count_the_trust_half_of_an_invoice_paid_from_trust_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: docs/matters-and-organisations.md, "Trust in its own organisation": with trust money in
    its own organisation, a trust receipt of 5,000.00 and an invoice paid from trust of 400.00 posted
    to the office connection leave the trust organisation's matter 7001 with 4,600.00 (the spend is
    the trust half; the payment of the invoice is in the office organisation), agreeing with Xero's
    trust liability there; the office organisation has no trust section."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", extended_context(division=1))
    connect(stub, emulator, "trust", extended_context(division=1))
    route(stub, "office", trust_connection_id="trust")
    sample = samples.sample_transactions(73_000)
    for name in ("client_bill", "trust_receipt", "invoice_paid_from_trust"):
        assert _post(stub, "office", sample[name]).state == poster_pb2.LINK_STATE_LINKED, name

    trust = _reconcile(stub, "trust")
    office = _reconcile(stub, "office")

    assert _matters(trust) == {7001: 460_000}
    assert trust.trust.xero_liability.units == 460_000
    assert not office.HasField("trust")


# -- 4. preflight before a backfill of a healthy connection ----------------------------------------


def _open_bill(bill_id: int) -> backfill_pb2.BackfillBill:
    """A bill posted before the connection (2025-12-10), open, unpaid."""
    bill = samples.client_bill(bill_id)
    bill.header.posted_at.CopyFrom(samples.timestamp(samples.CONNECTED_AT.replace(year=2025, month=12, day=10)))
    bill.header.transaction_date.CopyFrom(date_pb2.Date(year=2025, month=12, day=10))
    bill.client_bill.bill_number = f"OLD-{bill_id}"
    return backfill_pb2.BackfillBill(
        bill=bill, status=backfill_pb2.BILL_STATUS_OPEN, total_due=bill.client_bill.totals.inclusive
    )


def _failed_checks(stub: poster_grpc.PosterServiceStub, connection_id: str) -> list[tuple[str, str]]:
    answer = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id=connection_id, division_ids=[1]))
    failed = [(c.check, c.message) for c in answer.checks if c.status == backfill_pb2.PREFLIGHT_STATUS_FAIL]
    assert answer.ready == (not failed)
    return failed


@pytestmark_sqlite
def test_a_backfill_of_the_office_organisation_of_a_firm_with_trust_elsewhere_starts(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: docs/backfill.md: a FAIL means every transaction would be refused. The office
    connection of a firm whose trust money is in its own organisation (ledgers OFFICE), and that
    trust connection (ledgers TRUST), both pass every check: the new CONNECTION_STATE and DIVISIONS
    checks do not take the pairing for a fault, and a backfill of the office's open bills starts and
    accepts each bill."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", extended_context(division=1))
    connect(stub, emulator, "trust", extended_context(division=1))
    route(stub, "office", trust_connection_id="trust")

    assert _failed_checks(stub, "office") == []
    assert _failed_checks(stub, "trust") == []
    started = stub.StartBackfill(
        backfill_pb2.StartBackfillRequest(connection_id="office", bills=[_open_bill(74_001), _open_bill(74_011)]),
        timeout=30,
    ).backfill
    assert (started.accepted, started.refused) == (2, 0)


@pytestmark_sqlite
def test_a_connection_registered_with_tokens_and_no_chart_is_ready_for_a_backfill(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a connection created with fixed tokens and a context without a chart (nothing read
    from Xero yet) only warns that the chart was never read: it is connected, so CONNECTION_STATE
    passes and StartBackfill accepts its open bills."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, context=samples.demo_context(with_chart=False))

    assert _failed_checks(stub, "firm-1") == []
    started = stub.StartBackfill(
        backfill_pb2.StartBackfillRequest(connection_id="firm-1", bills=[_open_bill(75_001)]), timeout=30
    ).backfill
    assert (started.accepted, started.refused) == (1, 0)


@pytestmark_sqlite
def test_preflight_is_not_ready_for_a_connection_whose_fixed_tokens_xero_no_longer_takes(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: docs/backfill.md (1b677b3): CONNECTION_STATE FAILS when "the connection gets nothing
    into Xero (disconnected, or to be connected again)", and require_preflight keeps a backfill from
    starting on it. A connection registered with fixed tokens and no Xero app whose tokens Xero no
    longer takes (a 30-minute access token ran out, or was revoked) cannot refresh them: every post
    ends FAILED ("Xero answered 401 to a look-up; gave up after 8 attempts"), yet the row stays
    "connected", so RunPreflight answers CONNECTION_STATE PASS ("connected to its Xero
    organisation") and ready, and StartBackfill accepts the bills, each to fail in turn. The check
    reads only the stored state (domain/preflight.py connection_state); the refusal that needs a
    new consent never moves the connection to NEEDS_RECONNECT (service_layer/connection_tokens.py,
    fixed-token branch)."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    emulator.state.identity._access.clear()  # Xero no longer takes the access token
    answer = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(76_001)), timeout=30
    )
    needs_reconnect = connection_pb2.CONNECTION_STATE_NEEDS_RECONNECT
    wait_for(
        lambda: _connection_state(stub, "firm-1") == needs_reconnect,
        timeout=20,
        what="the connection to be reconnected",
    )

    failed = _failed_checks(stub, "firm-1")

    assert [check for check, _ in failed] == ["CONNECTION_STATE"], failed
    # Its work waits for the consent, not given up: nothing was counted against it. (The
    # connection is marked at the answer, the entry's wait written after: read until it is.)

    def posting() -> Any:
        return stub.GetPosting(poster_pb2.GetPostingRequest(name=answer.posting.name)).posting

    wait_for(lambda: posting().link.last_error.reason == "CONNECTION_NEEDS_RECONNECT", timeout=20, what="the wait")
    assert posting().state == poster_pb2.LINK_STATE_PENDING, posting()


def _connection_state(stub: poster_grpc.PosterServiceStub, connection_id: str) -> int:
    found = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id=connection_id)).connection
    return int(found.status.state)


# -- 5. page tokens of every listing ---------------------------------------------------------------


def _listings(stub: poster_grpc.PosterServiceStub, connection_id: str) -> dict[str, Any]:
    """Each listing of the connection, called with a page token."""
    return {
        "ListPostings": lambda token: stub.ListPostings(
            poster_pb2.ListPostingsRequest(connection_id=connection_id, page_size=1, page_token=token)
        ),
        "ListLinks": lambda token: stub.ListLinks(
            poster_pb2.ListLinksRequest(connection_id=connection_id, page_size=1, page_token=token)
        ),
        "ListOrphans": lambda token: stub.ListOrphans(
            unlink_pb2.ListOrphansRequest(connection_id=connection_id, page_size=1, page_token=token)
        ),
        "ListDrift": lambda token: stub.ListDrift(
            drift_pb2.ListDriftRequest(connection_id=connection_id, page_size=1, page_token=token)
        ),
        "ListMatterOptions": lambda token: stub.ListMatterOptions(
            organisations_pb2.ListMatterOptionsRequest(connection_id=connection_id, page_size=1, page_token=token)
        ),
    }


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytestmark_sqlite
def test_no_listing_takes_another_listings_token_or_a_bare_position(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: b740880 and docs/calling-xerolink.md: a page token is for the listing, connection and
    filters that issued it. ListPostings' and ListLinks' next_page_token handed to each other
    listing, and bare positions ("5", "5:postingid") to every listing, are refused INVALID_ARGUMENT
    naming page_token, never read as a place in another list where a page would skip records."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    for i in range(3):
        assert _post(stub, "firm-1", samples.client_bill(77_001 + 10 * i)).state == poster_pb2.LINK_STATE_LINKED
    listings = _listings(stub, "firm-1")
    issued = {
        "ListPostings": listings["ListPostings"]("").next_page_token,
        "ListLinks": listings["ListLinks"]("").next_page_token,
    }
    assert all(issued.values()), issued
    foreign = [(name, token) for origin, token in issued.items() for name in listings if name != origin]
    bare = [(name, _token(text)) for name in listings for text in ("5", "5:0123abcd", "1796682438000000:abc")]

    for name, token in foreign + bare:
        err = _refusal(lambda call=listings[name], t=token: call(t))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, err.details())
        assert [v.field for v in from_rpc_error(err).field_violations] == ["page_token"], name


@pytestmark_sqlite
def test_paging_postings_by_state_lists_each_posting_of_that_state_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: ListPostings filtered to LINKED, one posting a page, with more postings linked between
    pages: every posting linked before the first page is listed exactly once, and a page token of
    the LINKED list is refused on the FAILED list."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    linked = {_post(stub, "firm-1", samples.client_bill(78_001 + 10 * i)).name for i in range(4)}
    seen: list[str] = []
    token = ""
    added = 0
    while True:
        page = stub.ListPostings(
            poster_pb2.ListPostingsRequest(
                connection_id="firm-1", state=poster_pb2.LINK_STATE_LINKED, page_size=1, page_token=token
            )
        )
        seen += [p.name for p in page.postings]
        if added < 2:
            _post(stub, "firm-1", samples.client_bill(78_501 + 10 * added))
            added += 1
        if token == "" and page.next_page_token:
            err = _refusal(
                lambda t=page.next_page_token: stub.ListPostings(
                    poster_pb2.ListPostingsRequest(
                        connection_id="firm-1", state=poster_pb2.LINK_STATE_FAILED, page_token=t
                    )
                )
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        token = page.next_page_token
        if not token:
            break
    assert sorted(n for n in seen if n in linked) == sorted(linked)
    assert len(seen) == len(set(seen))
