"""Money fidelity: a generated month of a law firm, posted end to end through a real poster and
mapper to the emulator, leaves every account of the emulated organisation at the balance an
accountant computes from the Actionstep input alone — to the cent — and every transaction LINKED.

CI runs a smaller firm; the full month (300 matters, about 1,200 transactions):

    XEROLINK_FIDELITY_MATTERS=300 python -m pytest tests/fidelity -s

XEROLINK_FIDELITY_SEED picks another month; XEROLINK_FIDELITY_DATABASE=postgres runs the
registry on the session's PostgreSQL instead of a SQLite file.
"""

from __future__ import annotations

import time

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_cli.firm_generator import generate_month
from xerolink_cli.firm_month.records import FirmMonth

from tests.fidelity.ledger_model import Books
from tests.fidelity.month_posting import (
    MATTERS,
    MINUTE_SECONDS,
    SEED,
    assert_ledger_matches,
    controls,
    not_supported,
    post_month,
    records,
    region_context,
    wait_all_linked,
    xero_calls,
)
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, scaled_limits, settings, stub_for

FIRE_MATTERS = max(MATTERS // 2, 10)
REGION_MATTERS = max(MATTERS // 2, 10)
CONNECTION = "fidelity-firm"


def _compatible_kinds(mapper_target: str) -> set[str]:
    with grpc.insecure_channel(mapper_target) as channel:
        matrix = mapper_grpc.MapperServiceStub(channel).ListSupportMatrix(
            mapper_pb2.ListSupportMatrixRequest(profile=mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE)
        )
    return {common_pb2.TransactionKind.Name(row.kind) for row in matrix.rows if row.supported}


def _post_and_check(month: FirmMonth, emulator: EmulatorServer, poster_factory: PosterFactory, label: str) -> None:
    """Posts the month, waits for every link to settle, and compares the ledger to the model."""
    app = poster_factory(settings(batch_size=50, limits=scaled_limits(MINUTE_SECONDS)))
    stub = stub_for(app)
    context = region_context(month.region)
    _, org = connect(stub, emulator, CONNECTION, context, region=month.region.key)
    started = time.monotonic()

    refused = not_supported(post_month(stub, CONNECTION, month.transactions))
    assert not refused, f"decided unsupported: {list(refused.items())[:3]}"
    wait_all_linked(stub, {CONNECTION: records(month.transactions)})
    elapsed = time.monotonic() - started

    books = Books(context.account_allocation, controls(emulator, org["tenant_id"]))
    for tx in month.transactions:
        books.record(tx)
    accounts = assert_ledger_matches(books, emulator, org["tenant_id"])
    print(
        f"\nfidelity ({label}): seed {month.seed}, {len(month.matters)} matters, {len(month.transactions)} "
        f"transactions ({month.early_payments} payments before their bill), all LINKED in {elapsed:.1f}s; "
        f"{accounts} account balances equal to the cent; {xero_calls(app)} Xero calls"
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
