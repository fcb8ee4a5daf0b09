"""The money-fidelity month balances in both organisations: a firm whose trust money is in a Xero
organisation of its own posts a generated month to its office connection; the trust kinds are
linked under the trust connection, an invoice paid from trust under both (the spend from the
trust bank in the trust organisation, the payment of the bill in the office one), and each
organisation's accounts end at the balance the accountant's model computes for it, to the cent.

A trust transfer to the office bank cannot be one Xero bank transfer across two organisations:
the support matrix refuses it (TRANSFER_BETWEEN_ORGANISATIONS), so both models leave it out."""

from __future__ import annotations

import time

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_cli.firm_generator import generate_month

from tests.fidelity.ledger_model import Books, Ledgers, ledger_of
from tests.fidelity.month_posting import (
    MATTERS,
    MINUTE_SECONDS,
    SEED,
    assert_ledger_matches,
    controls,
    not_supported,
    post_month,
    record_of,
    records,
    region_context,
    wait_all_linked,
    xero_calls,
)
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, scaled_limits, settings, stub_for

OFFICE = "fidelity-office"
TRUST = "fidelity-trust"


def test_a_month_split_between_an_office_and_a_trust_organisation_balances_in_each_to_the_cent(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    month = generate_month(SEED + 6, MATTERS)
    emulator = emulator_factory(minute_seconds=MINUTE_SECONDS)
    app = poster_factory(settings(batch_size=50, limits=scaled_limits(MINUTE_SECONDS)))
    stub = stub_for(app)
    context = region_context(month.region, profile=mapper_pb2.POLICY_PROFILE_EXTENDED)
    _, office_org = connect(stub, emulator, OFFICE, context, region=month.region.key)
    _, trust_org = connect(stub, emulator, TRUST, context, region=month.region.key)
    stub.UpdateConnectionRouting(
        organisations_pb2.UpdateConnectionRoutingRequest(
            connection_id=OFFICE, routing=organisations_pb2.ConnectionRouting(trust_connection_id=TRUST)
        ),
        timeout=10,
    )
    started = time.monotonic()

    answered = post_month(stub, OFFICE, month.transactions)

    # From the Actionstep side: trust money sent to the office bank leaves the trust organisation
    # for the office one, which no single Xero object records.
    office_bank = context.account_allocation["office_bank"]
    across = [
        tx
        for tx in month.transactions
        if tx.WhichOneof("kind") == "trust_transfer" and tx.trust_transfer.to_bank_account == office_bank
    ]
    assert across, "the month must hold a trust transfer to the office bank"
    assert not_supported(answered) == {record_of(tx): "TRANSFER_BETWEEN_ORGANISATIONS" for tx in across}
    refused = records(across)
    posted = [tx for tx in month.transactions if record_of(tx) not in refused]
    under = {
        OFFICE: records(tx for tx in posted if ledger_of(tx) is not Ledgers.TRUST),
        TRUST: records(tx for tx in posted if ledger_of(tx) is not Ledgers.OFFICE),
    }
    # Each accepted posting answers the connection it is posted under (the office half of an
    # invoice paid from trust); a trust kind's is the trust connection.
    for tx, result in answered:
        if result.post_outcome == poster_pb2.POST_OUTCOME_ACCEPTED:
            assert result.posting.connection_id == (TRUST if ledger_of(tx) is Ledgers.TRUST else OFFICE)
    wait_all_linked(stub, under)
    elapsed = time.monotonic() - started

    balances = {}
    for ledgers, org in ((Ledgers.OFFICE, office_org), (Ledgers.TRUST, trust_org)):
        books = Books(context.account_allocation, controls(emulator, org["tenant_id"]), ledgers)
        for tx in posted:
            books.record(tx)
        balances[ledgers] = assert_ledger_matches(
            books, emulator, org["tenant_id"], f"the {ledgers.value} organisation"
        )
    both = len(under[OFFICE] & under[TRUST])
    print(
        f"\nfidelity (office and trust organisations): seed {month.seed}, {len(month.matters)} matters, "
        f"{len(month.transactions)} transactions: {len(under[OFFICE]) - both} office, {len(under[TRUST]) - both} "
        f"trust, {both} invoices paid from trust in both, {len(across)} trust transfer to the office bank "
        f"refused (TRANSFER_BETWEEN_ORGANISATIONS); all LINKED in {elapsed:.1f}s; "
        f"{balances[Ledgers.OFFICE]} office and {balances[Ledgers.TRUST]} trust account balances equal to "
        f"the cent, both ledgers balanced; {xero_calls(app)} Xero calls"
    )
