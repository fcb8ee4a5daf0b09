"""Reports by matter, to the cent: a generated month posted with the extended profile and matter
tracking on leaves in the emulated organisation a profit per matter option (income less expenses
of the lines carrying it) equal to the profit per matter an accountant computes from the
Actionstep input alone; lines of no matter are the report's "unassigned" column and match too."""

from __future__ import annotations

import time

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.firm_generator import generate_month
from xerolink_common.money import cents_to_str

from tests.fidelity.ledger_model import NO_MATTER, Books
from tests.fidelity.month_posting import (
    MATTERS,
    MINUTE_SECONDS,
    SEED,
    assert_ledger_matches,
    controls,
    not_supported,
    post_month,
    profit_and_loss_accounts,
    records,
    region_context,
    wait_all_linked,
    xero_calls,
)
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, scaled_limits, settings, stub_for

CONNECTION = "fidelity-matters"
# The poster and the emulator hold a category to 100 active options (ACTIVE_OPTION_LIMIT in
# xerolink_poster/domain/matters.py), an assumed limit: no Xero source was found, only
# third-party pages. A month's matters stay well inside it, so none has to be closed first.
MATTER_ROOM = 80


def _matter_options(stub: poster_grpc.PosterServiceStub) -> list[organisations_pb2.MatterOption]:
    options: list[organisations_pb2.MatterOption] = []
    token = ""
    while True:
        page = stub.ListMatterOptions(
            organisations_pb2.ListMatterOptionsRequest(connection_id=CONNECTION, page_size=50, page_token=token)
        )
        options.extend(page.options)
        token = page.next_page_token
        if not token:
            return options


def test_the_profit_of_each_matter_in_xero_equals_the_actionstep_input_to_the_cent(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    month = generate_month(SEED + 5, min(MATTERS, MATTER_ROOM))
    emulator = emulator_factory(minute_seconds=MINUTE_SECONDS)
    app = poster_factory(settings(batch_size=50, limits=scaled_limits(MINUTE_SECONDS)))
    stub = stub_for(app)
    context = region_context(month.region, profile=mapper_pb2.POLICY_PROFILE_EXTENDED)
    context.matter_tracking.enabled = True
    _, org = connect(stub, emulator, CONNECTION, context, region=month.region.key)
    tenant_id = org["tenant_id"]
    started = time.monotonic()

    # The extended profile posts every kind the generator builds for the compatible one.
    refused = not_supported(post_month(stub, CONNECTION, month.transactions))
    assert not refused, f"decided unsupported: {list(refused.items())[:3]}"
    wait_all_linked(stub, {CONNECTION: records(month.transactions)})
    elapsed = time.monotonic() - started

    books = Books(context.account_allocation, controls(emulator, tenant_id))
    for tx in month.transactions:
        books.record(tx)
    accounts = assert_ledger_matches(books, emulator, tenant_id)
    expected = books.profit_by_matter(profit_and_loss_accounts(emulator, tenant_id))

    options = _matter_options(stub)
    [category_id] = {o.tracking_category_id for o in options}
    matter_of = {o.tracking_option_id: o.action_id for o in options}
    assert len(matter_of) == len(options), "one option per matter"
    assert set(matter_of.values()) <= {m.action_id for m in month.matters}
    figures = emulator.state.profit_by_option(tenant_id, category_id)
    in_xero = {matter_of[o["TrackingOptionID"]]: int(o["profit_cents"]) for o in figures["options"]}
    in_xero[NO_MATTER] = int(figures["unassigned"]["profit_cents"])
    in_xero = {matter: cents for matter, cents in sorted(in_xero.items()) if cents}

    differences = {
        matter: (cents_to_str(expected.get(matter, 0)), cents_to_str(in_xero.get(matter, 0)))
        for matter in sorted(set(expected) | set(in_xero))
        if expected.get(matter, 0) != in_xero.get(matter, 0)
    }
    assert not differences, f"matter (0: none): (expected from Actionstep, in Xero): {differences}"
    # The proof has something to prove: many matters make a profit or a loss, and lines of no
    # matter (the firm's overheads, trust interest) are reported apart.
    assert len(expected) > len(month.matters) // 2
    assert expected.get(NO_MATTER, 0) != 0
    assert sum(in_xero.values()) == int(figures["total"]["profit_cents"])
    print(
        f"\nfidelity (profit by matter): seed {month.seed}, {len(month.matters)} matters, "
        f"{len(month.transactions)} transactions, all LINKED in {elapsed:.1f}s; {len(options)} matter options; "
        f"{len(expected) - 1} matters' profit and the unassigned {cents_to_str(expected[NO_MATTER])} equal to "
        f"the cent (total {cents_to_str(sum(expected.values()))}); {accounts} account balances equal; "
        f"{xero_calls(app)} Xero calls"
    )
