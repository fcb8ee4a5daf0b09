"""Money fidelity: a generated month of a law firm, posted end to end through a real poster and
mapper to the emulator, leaves every account of the emulated organisation at the balance an
accountant computes from the Actionstep input alone — to the cent — and every transaction LINKED.

CI runs a smaller firm; the full month (300 matters, about 1,200 transactions):

    XEROLINK_FIDELITY_MATTERS=300 python -m pytest tests/fidelity -s

XEROLINK_FIDELITY_SEED picks another month; XEROLINK_FIDELITY_DATABASE=postgres runs the
registry on the session's PostgreSQL instead of a SQLite file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.firm_generator import generate_month
from xerolink_cli.firm_month.records import FirmMonth
from xerolink_cli.firm_month.regions import FirmRegion
from xerolink_common.money import cents_to_str, decimal_to_cents
from xerolink_mapper import samples

from tests.fidelity.ledger_model import Books, Controls
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, scaled_limits, settings, stub_for, wait_for

MATTERS = int(os.environ.get("XEROLINK_FIDELITY_MATTERS", "40"))
FIRE_MATTERS = max(MATTERS // 2, 10)
REGION_MATTERS = max(MATTERS // 2, 10)
SEED = int(os.environ.get("XEROLINK_FIDELITY_SEED", "20260301"))
# Xero's minute scaled down: the 60-call limit still binds, a minute lasts half a second.
MINUTE_SECONDS = 0.5
CONNECTION = "fidelity-firm"
REQUEST_SIZE = 250


# Both registries by default; XEROLINK_FIDELITY_DATABASE=sqlite or =postgres runs one (a large month).
DATABASES = os.environ.get("XEROLINK_FIDELITY_DATABASE", "sqlite,postgres").split(",")


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    assert request.param == "sqlite", f"XEROLINK_FIDELITY_DATABASE must be sqlite or postgres, not {request.param!r}"
    return f"sqlite:///{tmp_path / 'registry.db'}"


def _records(month: FirmMonth) -> set[tuple[int, int]]:
    kinds = common_pb2.TransactionKind
    return {
        (kinds.Value(f"TRANSACTION_KIND_{str(tx.WhichOneof('kind')).upper()}"), tx.header.id)
        for tx in month.transactions
    }


def _links(stub: poster_grpc.PosterServiceStub) -> list[poster_pb2.Link]:
    links: list[poster_pb2.Link] = []
    token = ""
    while True:
        page = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=CONNECTION, page_size=500, page_token=token))
        links.extend(page.links)
        token = page.next_page_token
        if not token:
            return links


def _compatible_kinds(mapper_target: str) -> set[str]:
    with grpc.insecure_channel(mapper_target) as channel:
        matrix = mapper_grpc.MapperServiceStub(channel).ListSupportMatrix(
            mapper_pb2.ListSupportMatrixRequest(profile=mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE)
        )
    return {common_pb2.TransactionKind.Name(row.kind) for row in matrix.rows if row.supported}


def _controls(emulator: EmulatorServer, tenant_id: str) -> Controls:
    """The organisation's system accounts, read from its chart."""
    accounts = emulator.state.organisation(tenant_id).accounts.values()
    system = {a["SystemAccount"]: a["Code"] for a in accounts if a.get("SystemAccount")}
    return Controls(receivables=system["DEBTORS"], payables=system["CREDITORS"], gst=system["GST"])


def _region_context(region: FirmRegion) -> mapper_pb2.MappingContext:
    """The connection of a firm of the region: its tax maps, its currency, and the tax types for
    lines without a tax code that ConnectOrganisation would fill in (test_regions.py shows it does)."""
    context = samples.demo_context()
    sales, purchases = region.tax_maps()
    context.tax_code_map.clear()
    context.tax_code_map.update(sales)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(purchases)
    context.base_currency_code = region.currency
    context.untaxed_line_tax_types.CopyFrom(mapper_pb2.UntaxedLineTaxTypes(**region.untaxed()))
    return context


def _post_and_check(month: FirmMonth, emulator: EmulatorServer, poster_factory: PosterFactory, label: str) -> None:
    """Posts the month, waits for every link to settle, and compares the ledger to the model."""
    app = poster_factory(settings(batch_size=50, limits=scaled_limits(MINUTE_SECONDS)))
    stub = stub_for(app)
    context = _region_context(month.region)
    _, org = connect(stub, emulator, CONNECTION, context, region=month.region.key)
    started = time.monotonic()

    for start in range(0, len(month.transactions), REQUEST_SIZE):
        chunk = month.transactions[start : start + REQUEST_SIZE]
        results = stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id=CONNECTION, transactions=chunk), timeout=60
        ).results
        refused = [(r.index, r.error) for r in results if r.WhichOneof("outcome") != "posting"]
        assert not refused, f"the poster refused generated transactions: {refused[:3]}"
        unsupported = [r.posting.record for r in results if not r.posting.decision.supported]
        assert not unsupported, f"decided unsupported: {unsupported[:3]}"

    expected = _records(month)

    def settled() -> bool:
        links = _links(stub)
        return len(links) == len(expected) and all(
            link.state in (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED) for link in links
        )

    wait_for(settled, timeout=max(60.0, len(expected) * 0.2), interval=0.25)
    elapsed = time.monotonic() - started
    links = _links(stub)
    not_linked = [
        (link.name, poster_pb2.LinkState.Name(link.state), link.last_error.message)
        for link in links
        if link.state != poster_pb2.LINK_STATE_LINKED
    ]
    assert not not_linked, f"{len(not_linked)} not linked, e.g. {not_linked[:3]}"
    assert {(link.record.kind, link.record.id) for link in links} == expected

    books = Books(context.account_allocation, _controls(emulator, org["tenant_id"]))
    for tx in month.transactions:
        books.record(tx)
    ledger = emulator.ledger(org["tenant_id"])
    in_xero = {
        row["Code"]: decimal_to_cents(row["Balance"]) for row in ledger["accounts"] if decimal_to_cents(row["Balance"])
    }
    expected_balances = books.nonzero()
    differences = {
        code: (cents_to_str(expected_balances.get(code, 0)), cents_to_str(in_xero.get(code, 0)))
        for code in sorted(set(in_xero) | set(expected_balances))
        if in_xero.get(code, 0) != expected_balances.get(code, 0)
    }
    assert not differences, f"account: (expected from Actionstep, in Xero): {differences}"
    assert ledger["balanced"]
    print(
        f"\nfidelity ({label}): seed {month.seed}, {len(month.matters)} matters, {len(month.transactions)} "
        f"transactions ({month.early_payments} payments before their bill), all LINKED in {elapsed:.1f}s; "
        f"{len(expected_balances)} account balances equal to the cent; "
        f"{app.dispatcher.calls_made if app.dispatcher else 0} Xero calls"
    )


def test_a_month_of_a_firm_reaches_xero_to_the_cent_and_every_transaction_is_linked(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, mapper_target: str
) -> None:
    month = generate_month(SEED, MATTERS)
    generated = {f"TRANSACTION_KIND_{name.upper()}" for name in month.kinds()}
    assert _compatible_kinds(mapper_target) <= generated, "the month must hold every kind the profile posts"
    assert month.early_payments > 0, "some payments must be posted before their bill"
    _post_and_check(month, emulator_factory(minute_seconds=MINUTE_SECONDS), poster_factory, "calm")


@pytest.mark.parametrize("region", ["NZ", "UK", "US", "CA"])
def test_a_month_of_a_firm_in_each_other_region_reaches_xero_to_the_cent(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, mapper_target: str, region: str
) -> None:
    """The same month in the books of a firm outside Australia: its currency, its rate of tax, its
    organisation's tax types. AU is the calm test above."""
    month = generate_month(SEED + 2, REGION_MATTERS, region=region)
    generated = {f"TRANSACTION_KIND_{name.upper()}" for name in month.kinds()}
    assert _compatible_kinds(mapper_target) <= generated, "the month must hold every kind the profile posts"
    _post_and_check(month, emulator_factory(minute_seconds=MINUTE_SECONDS), poster_factory, f"calm, {region}")


def test_the_month_is_exact_under_fire_with_server_errors_dropped_answers_and_429s(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero failing as it does in production: 5xx, answers lost after the write committed (the
    case that duplicates objects in naive clients) and rate-limit refusals. Any duplicate or lost
    object would show in the balances."""
    month = generate_month(SEED + 1, FIRE_MATTERS)
    emulator = emulator_factory(minute_seconds=MINUTE_SECONDS)
    emulator.faults.add(FaultRule("error", rate=0.1, status=503))
    emulator.faults.add(FaultRule("drop_after_commit", rate=0.1))
    emulator.faults.add(FaultRule("rate_limit", rate=0.05, count=3, retry_after=1))
    _post_and_check(month, emulator, poster_factory, "under fire")
    assert sum(rule.hits for rule in emulator.faults.rules()) > 0
