"""Attacks on three recent changes, from outside: the ASCII-only currency codes and the
`fullmatch` name checks (3729313), the unclaim under every end a job's claim may have (d7c6fdd)
and the app-minute moves dropped after a count whose commit may have gone through (85f284e).

- A careless or hostile caller of the mapper sends a currency *rate* in a form `Decimal` reads
  but no wire format has (another script's digits, PEP 515 underscores, surrounding whitespace):
  the mapper passes the text on verbatim and the poster books `Decimal(text)` as Xero's
  CurrencyRate, so "0_65" becomes a rate of 65.
- PostgreSQL acknowledges a COMMIT that went through only after the connection dropped: the
  dispatcher loop's own write of the app minute's moves must not put them back to be written a
  second time (the fault 85f284e fixed in Gate.call only).
- A count that failed before its commit must still hand its moves to the next count, and a lost
  lease's put-back must free the entries a mark with an unacknowledged commit extended."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy.exc import InterfaceError, OperationalError
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.leases import SqlLeaseRepository
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain.rate_limits import app_bucket_of
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.dispatch import gate as gate_module
from xerolink_poster.service_layer.dispatch.gate import Gate, LeaseLost
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.app_minute import WINDOW_US, NextBucketXero, buckets, next_bucket_gate
from tests.fixtures.commit_ack import ACK_LOST, AckLost
from tests.fixtures.gate import TestXero, tenant_worker
from tests.fixtures.outbox import ready_row
from tests.fixtures.poster import settings
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection
from tests.fuzz.hostile import expect_error

US = 1_000_000
TENANT, HOLDER = "tenant-attack", "poster-attack"
CREDS = Credentials("http://127.0.0.1:9/xero", TENANT, "access")


# -- the mapper: a currency rate is a plain decimal ----------------------------------------------------


@pytest.fixture(scope="module")
def mapper(mapper_target: str) -> Iterator[mapper_grpc.MapperServiceStub]:
    with grpc.insecure_channel(mapper_target) as channel:
        yield mapper_grpc.MapperServiceStub(channel)


def _usd_bill(rate: str) -> transaction_pb2.Transaction:
    tx = samples.client_bill()
    tx.header.currency_code = "USD"
    tx.header.currency_rate = rate
    for item in tx.client_bill.lines:
        item.amount.currency_code = item.tax.currency_code = "USD"
    totals = tx.client_bill.totals
    totals.exclusive.currency_code = totals.tax.currency_code = totals.inclusive.currency_code = "USD"
    return tx


def test_a_plain_currency_rate_is_mapped_as_sent(mapper: mapper_grpc.MapperServiceStub) -> None:
    """The control for the test below: a USD bill at 0.65 in an AUD organisation maps."""
    context = samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    answer = mapper.MapTransaction(mapper_pb2.MapTransactionRequest(transaction=_usd_bill("0.65"), context=context))
    assert 'currency_rate: "0.65"' in str(answer)


@pytest.mark.parametrize(
    "rate",
    [
        "0_65",  # PEP 515 digit grouping: Decimal reads 65, a rate a hundred times the one meant
        "\u0660.\u0666\u0665",  # Arabic-Indic digits
        "\uff10.\uff16\uff15",  # full-width digits
        " 0.65\n",  # surrounding whitespace, a trailing newline
    ],
)
def test_a_currency_rate_that_is_not_a_plain_ascii_decimal_is_refused_by_the_mapper(
    mapper: mapper_grpc.MapperServiceStub, rate: str
) -> None:
    """The header's currency_rate is "a decimal string" (common.proto). The mapper checks it with
    `Decimal(text)`, which also reads other scripts' digits, underscores and whitespace, then
    hands the text on verbatim; the poster books `Decimal(text)` as Xero's CurrencyRate
    (xero_payloads._currency). "0_65" so posts a USD bill at 65 USD per AUD instead of 0.65: its
    base-currency amounts a hundredth of the bill's. Such a rate must be refused, as 3729313 now
    refuses currency codes in other alphabets."""
    context = samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    request = mapper_pb2.MapTransactionRequest(transaction=_usd_bill(rate), context=context)
    refused = expect_error(lambda: mapper.MapTransaction(request, timeout=30), {grpc.StatusCode.INVALID_ARGUMENT})
    assert refused.fields == ("transaction.header.currency_rate",)


# -- the app minute's moves ------------------------------------------------------------------------------


def _gate(database: Database) -> tuple[Gate, Dispatcher, NextBucketXero]:
    return next_bucket_gate(database, TENANT, HOLDER)


def test_the_loops_moves_whose_commit_went_through_unacknowledged_are_not_written_again(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One call, answered in the bucket after its count's: its move waits for the dispatcher's
    loop (Dispatcher.write_app_moves). That write's COMMIT goes through and the connection drops
    before the acknowledgement. Put back as if rolled back (what 85f284e stopped Gate.call doing),
    the next write moves the call a second time: its count's bucket goes to -1 and its answer's
    holds 2, one call Xero never counted, for a minute."""
    gate, dispatcher, xero = _gate(database)
    gate.call(CREDS, "GET", "Invoices/x")
    ack = AckLost(monkeypatch)
    ack.arm()
    with pytest.raises(OperationalError):
        dispatcher.write_app_moves()
    assert ack.lost == 1
    dispatcher.write_app_moves()  # the loop's next turn
    gate.call(CREDS, "GET", "Invoices/x")  # and a later count, which writes what it holds
    dispatcher.write_app_moves()

    assert len(xero.answered_buckets) == 2
    assert buckets(database) == Counter(xero.answered_buckets)


def test_a_count_that_failed_before_its_commit_hands_its_moves_to_the_next_count(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second call's count carries the first call's move and fails before its COMMIT (a
    statement's connection dropped): nothing was written, so the move must go with the next
    count, and every call made ends in the bucket of its answer; the one counted and not made,
    nowhere."""
    gate, dispatcher, xero = _gate(database)
    log_call = SqlLeaseRepository.log_call
    failed: list[bool] = []
    counts: list[int] = []
    count = SqlLeaseRepository.count_app_call

    def noting_count(self: SqlLeaseRepository, now: int, window_us: int, moved: Any = None) -> int:
        counts.append(now)
        return count(self, now, window_us, moved)

    def dropping_once(self: SqlLeaseRepository, *args: Any, **kwargs: Any) -> Any:
        if len(counts) == 2 and not failed:
            failed.append(True)
            raise InterfaceError("UPDATE tenant_lease", {}, Exception("connection already closed"))
        return log_call(self, *args, **kwargs)

    monkeypatch.setattr(SqlLeaseRepository, "count_app_call", noting_count)
    monkeypatch.setattr(SqlLeaseRepository, "log_call", dropping_once)
    gate.call(CREDS, "GET", "Invoices/x")
    with pytest.raises(InterfaceError):
        gate.call(CREDS, "GET", "Invoices/x")
    gate.call(CREDS, "GET", "Invoices/x")
    dispatcher.write_app_moves()

    assert failed and len(xero.answered_buckets) == 2
    assert buckets(database) == Counter(xero.answered_buckets)
    assert dispatcher.app_moves.take() == {}


def test_a_count_whose_commit_went_through_unacknowledged_is_not_run_again(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second call's count carries the first call's move; its COMMIT goes through and the
    acknowledgement is lost inside `run_in_transaction`. OperationalError is in CONFLICTS, so
    `retryable` takes it for a rolled-back race and runs the count again: the call is counted
    twice and the first call's move written twice (the bucket it was counted in goes negative),
    exactly what 85f284e meant to prevent; its own test raises the error outside
    run_in_transaction, where no real lost acknowledgement arises. Each count must run once, and
    every bucket hold the calls counted in it."""
    gate, dispatcher, xero = _gate(database)
    counted: list[int] = []
    count = SqlLeaseRepository.count_app_call

    def noting_count(self: SqlLeaseRepository, now: int, window_us: int, moved: Any = None) -> int:
        counted.append(now)
        return count(self, now, window_us, moved)

    monkeypatch.setattr(SqlLeaseRepository, "count_app_call", noting_count)
    ack = AckLost(monkeypatch)
    gate.call(CREDS, "GET", "Invoices/x")
    ack.arm()
    raised = False
    try:
        gate.call(CREDS, "GET", "Invoices/x")
    except OperationalError:
        raised = True
    gate.call(CREDS, "GET", "Invoices/x")
    dispatcher.write_app_moves()

    assert ack.lost == 1
    assert len(counted) == 3, f"{len(counted)} counts for 3 calls: the unacknowledged count ran again"
    stored = buckets(database)
    assert all(calls > 0 for calls in stored.values()), f"a bucket lost a call it holds: {stored}"
    not_made = Counter([app_bucket_of(counted[1], WINDOW_US)]) if raised else Counter()
    assert stored == Counter(xero.answered_buckets) + not_made


# -- a lost lease's put-back -----------------------------------------------------------------------------


def _claimed_pair(database: Database) -> list[Work]:
    """Two ready entries of the tenant's connection, claimed by HOLDER for 600 s, as its works."""
    now = now_us()

    def fill(uow: UnitOfWork) -> list[Work]:
        uow.connections.add_connection(unreachable_connection("c1", TENANT))
        links = [link_with_posting(uow, r) for r in (1, 2)]
        uow.outbox.insert_outbox(
            [
                {**ready_row(TENANT, "c1", n, 0, now), "state": OutboxState.READY.value, "link_id": link.id}
                for n, link in enumerate(links)
            ]
        )
        return TenantWorker._works(uow, uow.outbox.claim(TENANT, HOLDER, 10, now, 600 * US))

    works: list[Work] = run_in_transaction(database, fill)
    return works


def test_a_lost_leases_put_back_frees_entries_a_mark_with_an_unacknowledged_commit_extended(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create call's count marks the batch uncertain and extends its claim; the COMMIT goes
    through, its acknowledgement is lost, the call is not made. The job then finds its lease
    lost and puts its work back (TenantWorker._put_back). The entries are under the mark's end,
    not the claim's: they must become claimable at once, not wait out the extended claim, and
    keep the uncertain mark so the next holder looks them up first."""
    works = _claimed_pair(database)
    assert len(works) == 2
    ids = [w.row.id for w in works]
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now_us(), 30 * US))
    xero = TestXero()
    worker = tenant_worker(database, xero, settings(), TENANT, HOLDER)
    real = run_in_transaction

    def ack_lost(db: Database, work: Any, *args: Any, **kwargs: Any) -> Any:
        real(db, work, *args, **kwargs)  # committed
        raise OperationalError("COMMIT", {}, Exception(ACK_LOST))

    monkeypatch.setattr(gate_module, "run_in_transaction", ack_lost)
    with pytest.raises(OperationalError):
        worker.gate.call(CREDS, "PUT", "Invoices", body={"Invoices": [{"Reference": "r"}]}, mark_uncertain=works)
    monkeypatch.setattr(gate_module, "run_in_transaction", real)
    assert xero.calls == 0

    worker._put_back(works)

    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert [(rows[i].claimed_by, rows[i].lease_until_us, bool(rows[i].uncertain)) for i in ids] == [("", 0, True)] * 2
    assert not worker.claims_left
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim(TENANT, "poster-next", 10, now_us(), US))
    assert sorted(c.id for c in claimed) == sorted(ids)


def test_a_create_calls_entries_are_not_left_claimed_when_its_marks_commit_went_through_unacknowledged(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count before a create call marks the batch uncertain and extends its claim; the
    COMMIT goes through, its acknowledgement is lost inside `run_in_transaction`, which runs the
    count again (OperationalError is "retryable"). The second mark looks for the claim's old end,
    finds the extended one, marks nothing and raises ClaimsLost, a LeaseLost: `claim_if_marked_us`
    is never set (only the except around run_in_transaction sets it), so the job's put-back
    (TenantWorker._put_back, the `_run` path for LeaseLost) unclaims under the old end alone and
    matches nothing. Whatever the job's failure path, the entries must not stay claimed by this
    poster under the extended claim (minutes of claim_ttl, with the worker believing its lease
    lost); and no call reaches Xero."""
    works = _claimed_pair(database)
    ids = [w.row.id for w in works]
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now_us(), 30 * US))
    xero = TestXero()
    worker = tenant_worker(database, xero, settings(), TENANT, HOLDER)
    ack = AckLost(monkeypatch)
    ack.arm()
    try:
        worker.gate.call(CREDS, "PUT", "Invoices", body={"Invoices": [{"Reference": "r"}]}, mark_uncertain=works)
    except LeaseLost as exc:  # as TenantWorker._run handles each
        raised = type(exc).__name__
        worker.lease_lost = True
        worker._put_back([w for w in works if not w.handed_back])
    except Exception as exc:
        raised = type(exc).__name__
        worker._record_failure(works, exc)
    else:
        pytest.fail("the create call was made after its count's acknowledgement was lost")

    assert ack.lost == 1 and xero.calls == 0
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    stored = [(rows[i].claimed_by, bool(rows[i].uncertain)) for i in ids]
    left_us = [rows[i].lease_until_us - now_us() for i in ids]
    assert stored == [("", True)] * 2 or worker.claims_left, (
        f"after {raised}, entries left claimed by {HOLDER} for {left_us} us more: {stored}"
    )
