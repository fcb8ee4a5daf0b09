"""Plain-Python rules of the poster: transitions, fingerprints, budgets, retry timing and keys,
dependency resolution, re-mapping the account allocation."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xerolink_common.errors import XerolinkError
from xerolink_mapper.domain.mapping import ALLOCATION_FUNCTIONS
from xerolink_poster.domain import allocation
from xerolink_poster.domain import dependencies as deps
from xerolink_poster.domain.fingerprint import content_fingerprint
from xerolink_poster.domain.kinds import ObjectType, TransactionKind
from xerolink_poster.domain.rate_limits import Limits, RateHeaders, SlidingWindow, TenantBudget, app_bucket_of
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.retry import IDEMPOTENCY_KEY_MAX, backoff_delay, chunks, idempotency_key
from xerolink_poster.domain.states import TRANSITIONS, Event, LinkState, transition


def test_a_linked_record_only_leaves_linked_by_an_unlink() -> None:
    leaving = {event for (source, event) in TRANSITIONS if source == LinkState.LINKED}
    assert leaving == {Event.UNLINKED}
    for event in Event:
        if event is not Event.UNLINKED:
            with pytest.raises(XerolinkError) as refused:
                transition(LinkState.LINKED, event)
            assert refused.value.reason == "ILLEGAL_LINK_TRANSITION"


def test_every_state_is_reachable_from_a_new_record() -> None:
    reached = {LinkState.PENDING, LinkState.WAITING}
    while True:
        more = {target for (source, _), target in TRANSITIONS.items() if source in reached} - reached
        if not more:
            break
        reached |= more
    assert reached == set(LinkState)


def test_fingerprint_ignores_key_order_and_sees_any_change() -> None:
    a = {"header": {"id": 1, "reference": "x"}, "lines": [{"amount": 100}]}
    b = {"lines": [{"amount": 100}], "header": {"reference": "x", "id": 1}}
    assert content_fingerprint(a) == content_fingerprint(b)
    assert content_fingerprint(a) != content_fingerprint({**a, "lines": [{"amount": 101}]})


def test_a_sliding_window_refuses_the_call_over_the_limit_until_the_oldest_expires() -> None:
    window = SlidingWindow(limit=2, window=60.0)
    for t in (0.0, 1.0):
        assert window.wait_time(t) == 0
        window.reserve()
        window.complete(t + 0.5)  # counted from when the answer arrived
    assert window.wait_time(10.0) == pytest.approx(50.5)
    assert window.wait_time(60.4) == pytest.approx(0.1)
    assert window.wait_time(60.5) == 0


def test_in_flight_calls_count_before_they_are_answered() -> None:
    window = SlidingWindow(limit=1, window=60.0)
    window.reserve()
    assert window.wait_time(0.0) > 0


def test_xero_reporting_fewer_remaining_calls_than_we_count_wins() -> None:
    window = SlidingWindow(limit=60, window=60.0)
    window.sync_remaining(0, now=5.0)
    assert window.wait_time(6.0) == pytest.approx(59.0)


def test_calls_counted_by_xero_before_they_left_our_window_are_not_counted_twice() -> None:
    # Three calls answered at 0.5 s leave our window at 60.5 s; an answer at 60.6 s to a call
    # that reached Xero 0.3 s earlier may still count them.
    window = SlidingWindow(limit=60, window=60.0, history=[0.5, 0.5, 0.5, 30.0])
    window.sync_remaining(56, now=60.6, round_trip=0.3)  # we count 1 (59 left): 3 are the skew
    assert window.history(60.6) == [30.0]
    window.sync_remaining(54, now=60.6, round_trip=0.3)  # 2 more than the skew explains
    assert window.history(60.6) == [30.0, 60.6, 60.6]


def test_a_difference_no_recent_expiry_explains_is_adopted_whole() -> None:
    # A poster whose log was lost (or that shares the tenant) counts nothing; Xero counts 9.
    window = SlidingWindow(limit=10, window=60.0)
    window.sync_remaining(1, now=5.0, round_trip=0.3)
    assert len(window.history(5.0)) == 9
    assert window.wait_time(5.0) == 0.0  # the last call left
    window.reserve()
    assert window.wait_time(5.0) == pytest.approx(60.0)


def test_a_tenant_budget_keeps_concurrency_and_obeys_retry_after() -> None:
    limits = Limits(concurrent=2, per_minute=100)
    budget = TenantBudget(limits, SlidingWindow(limits.app_per_minute, 60.0))
    assert budget.try_acquire(0.0) == 0
    assert budget.try_acquire(0.0) == 0
    assert budget.try_acquire(0.0) > 0  # a third concurrent call waits
    budget.release(1.0, RateHeaders(retry_after=5.0))
    assert budget.try_acquire(2.0) == pytest.approx(4.0)
    assert budget.try_acquire(6.1) == 0


def test_the_app_minute_is_shared_by_every_tenant_of_the_process() -> None:
    limits = Limits(app_per_minute=3)
    app = SlidingWindow(3, 60.0)
    tenants = [TenantBudget(limits, app) for _ in range(2)]
    assert [tenants[i % 2].try_acquire(0.0) for i in range(3)] == [0, 0, 0]
    assert tenants[1].try_acquire(0.0) > 0


def test_rate_headers_are_read_whatever_their_case() -> None:
    headers = RateHeaders.parse(
        {
            "x-minlimit-remaining": "7",
            "X-DayLimit-Remaining": "4000",
            "Retry-After": "3",
            "X-Rate-Limit-Problem": "minute",
        }
    )
    assert (headers.minute_remaining, headers.day_remaining, headers.retry_after, headers.problem) == (
        7,
        4000,
        3.0,
        "minute",
    )


@given(st.integers(min_value=1, max_value=30))
def test_backoff_grows_and_stays_within_half_and_all_of_its_step(attempt: int) -> None:
    step = min(60.0, 0.5 * 2 ** (attempt - 1))
    delay = backoff_delay(attempt, 0.5, 60.0, random.random)
    assert step / 2 <= delay <= step


@given(st.binary(max_size=4096), st.text(max_size=100), st.lists(st.text(min_size=1, max_size=60), min_size=1))
def test_idempotency_keys_are_deterministic_and_short_enough(body: bytes, path: str, names: list[str]) -> None:
    key = idempotency_key("tenant", "PUT", path, names, body)
    assert key == idempotency_key("tenant", "PUT", path, names, body)
    assert key == idempotency_key("tenant", "PUT", path, list(reversed(names)), body), "a batch key names a set"
    assert len(key) <= IDEMPOTENCY_KEY_MAX
    assert key != idempotency_key("tenant", "PUT", path, names, body + b" ")
    assert key != idempotency_key("other-tenant", "PUT", path, names, body)


def test_two_records_with_equal_bodies_never_share_an_idempotency_key() -> None:
    """Two applications of 50.00 from one credit note to one invoice send equal bodies: a key of
    the content alone made Xero replay the first allocation for the second, and 50.00 was lost."""
    body = b'{"Allocations":[{"Invoice":{"InvoiceID":"i"},"Amount":50.00,"Date":"2026-03-02"}]}'
    first = idempotency_key("tenant", "PUT", "CreditNotes/c/Allocations", ["firm-1/4/4101#1/allocation"], body)
    second = idempotency_key("tenant", "PUT", "CreditNotes/c/Allocations", ["firm-1/4/4102#1/allocation"], body)
    reposted = idempotency_key("tenant", "PUT", "CreditNotes/c/Allocations", ["firm-1/4/4101#2/allocation"], body)
    assert len({first, second, reposted}) == 3


def test_an_idempotency_key_must_name_what_the_call_is_for() -> None:
    with pytest.raises(ValueError):
        idempotency_key("tenant", "PUT", "Invoices", [], b"{}")


def test_chunks_keep_order_and_size() -> None:
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]


@dataclass(frozen=True)
class _Step:
    local_ref: str


def test_a_local_reference_resolves_to_this_postings_object_of_the_wanted_type() -> None:
    # An overpayment transaction's operation holds the BankTransaction and the Overpayment.
    spend = XeroObjectRef(ObjectType.BANK_TRANSACTION, "bt-1", "overpayment")
    overpayment = XeroObjectRef(ObjectType.OVERPAYMENT, "op-1", "overpayment")
    found = deps.resolve_target("overpayment", None, ObjectType.OVERPAYMENT, [spend, overpayment], lambda r: None)
    assert found == overpayment
    assert deps.resolve_target("overpayment", None, ObjectType.INVOICE, [spend, overpayment], lambda r: None) is None


def test_a_record_reference_resolves_to_the_object_its_link_holds_or_waits() -> None:
    bill = RecordRef(TransactionKind.CLIENT_BILL, 500)
    invoice = XeroObjectRef(ObjectType.INVOICE, "inv-1", "invoice", "INV-500")
    assert deps.resolve_target(None, bill, ObjectType.INVOICE, [], lambda r: None) is None  # not linked: wait
    assert (
        deps.resolve_target(None, bill, ObjectType.INVOICE, [], lambda r: [invoice] if r == bill else None) == invoice
    )
    assert deps.resolve_target(None, None, ObjectType.INVOICE, [invoice], lambda r: [invoice]) is None


def test_the_next_operation_is_the_first_not_yet_performed() -> None:
    first, second = _Step("trust-spend"), _Step("payment")
    done = [XeroObjectRef(ObjectType.BANK_TRANSACTION, "bt-1", "trust-spend")]
    assert deps.next_operation([first, second], []) is first
    assert deps.next_operation([first, second], done) is second
    assert deps.next_operation([first], done) is None


def test_the_poster_re_maps_exactly_the_allocation_functions_the_mapper_reads() -> None:
    assert set(ALLOCATION_FUNCTIONS) == allocation.FUNCTIONS
    chart = [allocation.ChartEntry("094", "Office Savings", "ACTIVE")]
    assert allocation.remap_problems({f: "094" for f in ALLOCATION_FUNCTIONS}, chart) == {}
    assert set(allocation.remap_problems({"trust_bnak": "094", "": "094"}, chart)) == {"trust_bnak", ""}


def test_the_app_minute_counts_in_sixtieths_of_the_window_and_never_leaves_a_call_early() -> None:
    minute_us = 60_000_000
    assert app_bucket_of(0, minute_us) == 0
    assert app_bucket_of(999_999, minute_us) == 0  # the same second: one bucket, nothing to move
    assert app_bucket_of(1_000_000, minute_us) == 1_000_000
    for at in (1, 1_234_567, 59_999_999, 61_000_001):
        bucket = app_bucket_of(at, minute_us)
        assert bucket <= at < bucket + minute_us // 60
    assert app_bucket_of(7, 30) == 7  # a window under 60 microseconds still has buckets of one
