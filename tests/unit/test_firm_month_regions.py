"""The generated month of a law firm in each region Actionstep serves: every amount in the
region's currency, every taxed line at the region's standard rate rounded half up to the cent,
documents whose totals add up, and the Australian month unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st
from xerolink.actionstep.v1 import common_pb2
from xerolink.type.v1 import money_pb2
from xerolink_cli.firm_generator import generate_month
from xerolink_cli.firm_month.records import FirmMonth
from xerolink_cli.firm_month.regions import REGIONS

SEED = 20260301
MATTERS = 40
# What each region's firm is expected to use: currency, standard rate (percent), tax codes.
EXPECTED = {
    "AU": ("AUD", "10", "GST", "FRE"),
    "NZ": ("NZD", "15", "GST", "ZER"),
    "UK": ("GBP", "20", "VAT", "ZER"),
    "US": ("USD", "8.875", "TAX", "EXM"),
    "CA": ("CAD", "13", "HST", "EXM"),
}
# sha256 of generate_month(20260301, 40)'s transactions, serialized deterministically, as the
# generator produced them before it took a region. The Australian month must never change
# silently: the money-fidelity suite and every comparison of generated months rely on it. If a
# change to the generator is meant to alter it, update this hash in the same change, on purpose.
AU_MONTH_SHA256 = "78f52c2d6e70ac16f8aeea7271b1377b7cc985aa6d2384651a82a36b0a316a0c"


def _digest(month: FirmMonth) -> str:
    return hashlib.sha256(b"".join(t.SerializeToString(deterministic=True) for t in month.transactions)).hexdigest()


def _messages(message: Message) -> Iterator[Message]:
    """`message` and every message inside it, however deep."""
    yield message
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        for child in [value] if isinstance(value, Message) else value:
            yield from _messages(child)


M = TypeVar("M", bound=Message)


def _all(month: FirmMonth, kind: type[M]) -> list[M]:
    """Every message of `kind` anywhere in the month's transactions."""
    return [m for tx in month.transactions for m in _messages(tx) if isinstance(m, kind)]


def _half_up(cents: int, percent: str) -> int:
    """The tax on `cents` at `percent`, by decimal arithmetic (the accountant's way)."""
    return int((Decimal(cents) * Decimal(percent) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.fixture(scope="module", params=sorted(REGIONS))
def month(request: pytest.FixtureRequest) -> FirmMonth:
    return generate_month(SEED, MATTERS, region=request.param)


def test_the_regions_are_the_ones_actionstep_serves_with_their_currency_rate_and_codes() -> None:
    regions = {
        key: (r.currency, str(Decimal(r.rate_ppm) / 10_000), r.taxed_code, r.untaxed_code) for key, r in REGIONS.items()
    }
    assert regions == EXPECTED
    assert all(r.key == key and r.tax_name for key, r in REGIONS.items())


def test_the_australian_month_is_the_one_the_generator_always_made() -> None:
    assert _digest(generate_month(SEED, MATTERS, region="AU")) == AU_MONTH_SHA256
    assert _digest(generate_month(SEED, MATTERS)) == AU_MONTH_SHA256


def test_the_month_exposes_its_region(month: FirmMonth) -> None:
    assert month.region is REGIONS[month.region.key]
    assert month.transactions


def test_every_money_and_every_header_is_in_the_regions_currency(month: FirmMonth) -> None:
    monies = _all(month, money_pb2.Money)
    assert len(monies) > len(month.transactions)
    currencies = {
        value
        for tx in month.transactions
        for message in _messages(tx)
        for field, value in message.ListFields()
        if field.name == "currency_code"
    }
    assert currencies == {month.region.currency}
    assert {tx.header.currency_code for tx in month.transactions} == {month.region.currency}


def test_every_taxed_line_bears_the_regions_rate_rounded_half_up(month: FirmMonth) -> None:
    region = month.region
    percent = EXPECTED[region.key][1]
    taxed = [line for line in _all(month, common_pb2.Line) if line.tax_code == region.taxed_code]
    assert taxed
    for line in taxed:
        assert line.tax.units == _half_up(line.amount.units, percent), line


def test_untaxed_lines_bear_no_tax_and_no_line_has_another_code(month: FirmMonth) -> None:
    region = month.region
    lines = _all(month, common_pb2.Line)
    assert {line.tax_code for line in lines} == {region.taxed_code, region.untaxed_code}
    for line in lines:
        if line.tax_code == region.untaxed_code:
            assert line.tax.units == 0, line


def test_documents_totals_add_up(month: FirmMonth) -> None:
    documents = [
        message
        for tx in month.transactions
        for message in _messages(tx)
        if {"lines", "totals"} <= set(message.DESCRIPTOR.fields_by_name)
    ]
    assert documents
    for doc in documents:
        lines: list[common_pb2.Line] = getattr(doc, "lines")  # noqa: B009 - any document kind
        totals: common_pb2.Totals = getattr(doc, "totals")  # noqa: B009
        assert lines
        assert totals.exclusive.units == sum(line.amount.units for line in lines)
        assert totals.tax.units == sum(line.tax.units for line in lines)
    for totals in _all(month, common_pb2.Totals):
        assert totals.exclusive.units + totals.tax.units == totals.inclusive.units


def test_every_region_has_every_kind_of_the_australian_month(month: FirmMonth) -> None:
    assert set(month.kinds()) == set(generate_month(SEED, MATTERS).kinds())


@pytest.mark.parametrize("key", sorted(REGIONS))
def test_the_month_is_deterministic_per_seed_and_region(key: str) -> None:
    assert _digest(generate_month(SEED, MATTERS, region=key)) == _digest(generate_month(SEED, MATTERS, region=key))
    assert _digest(generate_month(SEED, MATTERS, region=key)) != _digest(generate_month(SEED + 1, MATTERS, region=key))


def test_regions_make_different_months_from_one_seed() -> None:
    digests = {_digest(generate_month(SEED, MATTERS, region=key)) for key in REGIONS}
    assert len(digests) == len(REGIONS)


def test_an_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown region 'DE'"):
        generate_month(SEED, 3, region="DE")


@pytest.mark.parametrize(
    ("key", "cents", "tax"),
    [
        ("AU", 5, 1),  # 0.5 cent: half up
        ("AU", 4, 0),
        ("US", 400, 36),  # 35.5 cents: half up
        ("US", 399, 35),
        ("UK", 1_234_567, 246_913),  # 246,913.4
        ("NZ", 1, 0),  # 0.15 cent
        ("CA", 50, 7),  # 6.5 cents: half up
    ],
)
def test_tax_rounds_half_up_to_the_cent(key: str, cents: int, tax: int) -> None:
    assert REGIONS[key].tax_on(cents) == tax


@given(key=st.sampled_from(sorted(EXPECTED)), cents=st.integers(min_value=0, max_value=10**12))
def test_tax_is_the_decimal_rate_rounded_half_up(key: str, cents: int) -> None:
    assert REGIONS[key].tax_on(cents) == _half_up(cents, EXPECTED[key][1])
