"""What every money-fidelity test does with a generated month: post it through a real poster in
batches, wait for each connection's links to settle, and compare an emulated organisation's
ledger with the accountant's model (ledger_model.py), to the cent."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.firm_month.regions import FirmRegion
from xerolink_common.money import cents_to_str, decimal_to_cents
from xerolink_mapper import samples
from xerolink_poster.entrypoints import bootstrap

from tests.fidelity.ledger_model import Books, Controls
from tests.fixtures.poster import wait_for

MATTERS = int(os.environ.get("XEROLINK_FIDELITY_MATTERS", "40"))
SEED = int(os.environ.get("XEROLINK_FIDELITY_SEED", "20260301"))
# Xero's minute scaled down: the 60-call limit still binds, a minute lasts half a second.
MINUTE_SECONDS = 0.5
REQUEST_SIZE = 250
# Account classes whose balances make up the profit and loss (Xero's Account.Class enum).
PROFIT_AND_LOSS_CLASSES = ("REVENUE", "EXPENSE")

Record = tuple[int, int]  # (TransactionKind, Actionstep id)


def record_of(tx: transaction_pb2.Transaction) -> Record:
    kind = common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{str(tx.WhichOneof('kind')).upper()}")
    return kind, tx.header.id


def records(transactions: Iterable[transaction_pb2.Transaction]) -> set[Record]:
    return {record_of(tx) for tx in transactions}


def region_context(
    region: FirmRegion, profile: int = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE
) -> mapper_pb2.MappingContext:
    """The connection of a firm of the region: its tax maps, its currency, and the tax types for
    lines without a tax code that ConnectOrganisation would fill in (test_regions.py shows it does)."""
    context = samples.demo_context(profile=profile)
    sales, purchases = region.tax_maps()
    context.tax_code_map.clear()
    context.tax_code_map.update(sales)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(purchases)
    context.base_currency_code = region.currency
    context.untaxed_line_tax_types.CopyFrom(mapper_pb2.UntaxedLineTaxTypes(**region.untaxed()))
    return context


def post_month(
    stub: poster_grpc.PosterServiceStub, connection_id: str, transactions: Sequence[transaction_pb2.Transaction]
) -> list[tuple[transaction_pb2.Transaction, poster_pb2.PostResult]]:
    """Posts the month in batches; every item must be accepted or refused by the support matrix
    (never an item error). Answers each transaction with its result."""
    answered: list[tuple[transaction_pb2.Transaction, poster_pb2.PostResult]] = []
    for start in range(0, len(transactions), REQUEST_SIZE):
        chunk = transactions[start : start + REQUEST_SIZE]
        results = stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=chunk), timeout=60
        ).results
        errors = [(r.index, r.error) for r in results if r.WhichOneof("outcome") != "posting"]
        assert not errors, f"the poster refused generated transactions: {errors[:3]}"
        answered.extend(zip(chunk, results, strict=True))
    return answered


def not_supported(answered: Iterable[tuple[transaction_pb2.Transaction, poster_pb2.PostResult]]) -> dict[Record, str]:
    """The transactions the support matrix refused, with the reason code it gave."""
    return {
        record_of(tx): result.decision.reason_code
        for tx, result in answered
        if result.post_outcome == poster_pb2.POST_OUTCOME_NOT_SUPPORTED
    }


def links(stub: poster_grpc.PosterServiceStub, connection_id: str) -> list[poster_pb2.Link]:
    found: list[poster_pb2.Link] = []
    token = ""
    while True:
        page = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=connection_id, page_size=500, page_token=token))
        found.extend(page.links)
        token = page.next_page_token
        if not token:
            return found


def wait_all_linked(stub: poster_grpc.PosterServiceStub, expected: Mapping[str, set[Record]]) -> None:
    """Waits until every connection holds a settled link for each of its records, then requires
    each of them LINKED and no link for any other record."""
    settled_states = (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED)

    def settled() -> bool:
        for connection_id, wanted in expected.items():
            found = links(stub, connection_id)
            if len(found) < len(wanted) or any(link.state not in settled_states for link in found):
                return False
        return True

    total = sum(len(wanted) for wanted in expected.values())
    wait_for(settled, timeout=max(60.0, total * 0.2), interval=0.25)
    for connection_id, wanted in expected.items():
        found = links(stub, connection_id)
        not_linked = [
            (link.name, poster_pb2.LinkState.Name(link.state), link.last_error.message)
            for link in found
            if link.state != poster_pb2.LINK_STATE_LINKED
        ]
        assert not not_linked, f"{connection_id}: {len(not_linked)} not linked, e.g. {not_linked[:3]}"
        assert {(link.record.kind, link.record.id) for link in found} == wanted, connection_id


def controls(emulator: EmulatorServer, tenant_id: str) -> Controls:
    """The organisation's system accounts, read from its chart."""
    accounts = emulator.state.organisation(tenant_id).accounts.values()
    system = {a["SystemAccount"]: a["Code"] for a in accounts if a.get("SystemAccount")}
    return Controls(receivables=system["DEBTORS"], payables=system["CREDITORS"], gst=system["GST"])


def profit_and_loss_accounts(emulator: EmulatorServer, tenant_id: str) -> set[str]:
    """The codes of the organisation's income and expense accounts, by their class in its chart."""
    accounts = emulator.state.organisation(tenant_id).accounts.values()
    return {a["Code"] for a in accounts if a["Class"] in PROFIT_AND_LOSS_CLASSES}


def assert_ledger_matches(
    books: Books, emulator: EmulatorServer, tenant_id: str, label: str = "the organisation"
) -> int:
    """Every account of the organisation at the model's balance, to the cent, and its ledger
    balanced; answers how many accounts have a balance."""
    ledger = emulator.ledger(tenant_id)
    in_xero = {
        row["Code"]: decimal_to_cents(row["Balance"]) for row in ledger["accounts"] if decimal_to_cents(row["Balance"])
    }
    expected = books.nonzero()
    differences = {
        code: (cents_to_str(expected.get(code, 0)), cents_to_str(in_xero.get(code, 0)))
        for code in sorted(set(in_xero) | set(expected))
        if in_xero.get(code, 0) != expected.get(code, 0)
    }
    assert not differences, f"{label}: account: (expected from Actionstep, in Xero): {differences}"
    assert ledger["balanced"], f"{label}: debits differ from credits"
    return len(expected)


def xero_calls(app: bootstrap.PosterApp) -> int:
    return app.dispatcher.calls_made if app.dispatcher else 0
