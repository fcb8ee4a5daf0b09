"""Hypothesis strategies for hostile Actionstep transactions: a well-formed transaction of a kind
the compatible profile posts, roughed up with noise (odd unicode, long text) and, for
`hostile_transaction`, at least one defect no valid transaction has."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from hypothesis import strategies as st
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink_mapper import samples

from tests.fuzz.hostile import INT64_MAX, INT64_MIN

POSTED_KINDS = (
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
)
INT64 = st.integers(INT64_MIN, INT64_MAX)
INT32 = st.integers(-(2**31), 2**31 - 1)


def _monies(message: Message) -> list[money_pb2.Money]:
    """Every Money set anywhere in the message."""
    found: list[money_pb2.Money] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        values = value if field.is_repeated else [value]
        for item in values:
            if isinstance(item, money_pb2.Money):
                found.append(item)
            elif isinstance(item, Message):
                found.extend(_monies(item))
    return found


def _texts(message: Message) -> list[tuple[Message, str]]:
    """(message, field name) of every free-text string field set in the message."""
    found: list[tuple[Message, str]] = []
    for field, value in message.ListFields():
        if field.type == field.TYPE_STRING and field.name in (
            "description",
            "reference",
            "memo",
            "display_name",
            "narration",
        ):
            found.append((message, field.name))
        elif field.message_type is not None:
            values = value if field.is_repeated else [value]
            for item in values:
                if isinstance(item, Message):
                    found.extend(_texts(item))
    return found


def _set_units(tx: transaction_pb2.Transaction, index: int, units: int) -> None:
    monies = _monies(tx)
    if index < len(monies):
        monies[index].units = units
    else:  # an earlier defect removed the amounts: a record id no record has instead
        tx.header.id = 0


def _set_text(tx: transaction_pb2.Transaction, index: int, text: str) -> None:
    texts = _texts(tx)
    if index < len(texts):  # an earlier change may have emptied (unset) a text
        message, name = texts[index]
        setattr(message, name, text)


Mutation = Callable[[transaction_pb2.Transaction], None]


@st.composite
def _defect(draw: st.DrawFn, tx: transaction_pb2.Transaction) -> Mutation:
    """One change that makes any transaction of a posted kind invalid."""
    choice = draw(st.sampled_from(("id", "date", "amount", "currency", "no body", "no header")))
    if choice == "id":
        value = draw(st.integers(INT64_MIN, 0))
        return lambda t: setattr(t.header, "id", value)
    if choice == "date":
        year = draw(st.one_of(st.integers(-(2**31), 1969), st.integers(2100, 2**31 - 1), st.just(2026)))
        month = draw(st.one_of(INT32.filter(lambda m: not 1 <= m <= 12), st.just(2))) if year == 2026 else draw(INT32)
        day = draw(st.integers(30, 2**31 - 1)) if (year, month) == (2026, 2) else draw(INT32)
        absurd = date_pb2.Date(year=year, month=month, day=day)
        return lambda t: t.header.transaction_date.CopyFrom(absurd)
    if choice == "amount":
        index = draw(st.integers(0, max(len(_monies(tx)) - 1, 0)))
        units = draw(st.integers(INT64_MIN, -1))
        return lambda t: _set_units(t, index, units)
    if choice == "currency":
        code = draw(
            st.text(min_size=1, max_size=12).filter(lambda c: not (len(c) == 3 and c.isascii() and c.isupper()))
        )
        return lambda t: setattr(t.header, "currency_code", code)
    if choice == "no body":
        return lambda t: t.ClearField(t.WhichOneof("kind") or "header")
    return lambda t: t.ClearField("header")


@st.composite
def _noise(draw: st.DrawFn, tx: transaction_pb2.Transaction) -> Mutation:
    texts = _texts(tx)
    if not texts:
        return lambda t: None
    index = draw(st.integers(0, len(texts) - 1))
    text = draw(st.text(max_size=200))
    return lambda t: _set_text(t, index, text)


@st.composite
def rough_transaction(draw: st.DrawFn, defects: int = 0) -> transaction_pb2.Transaction:
    """A posted kind's sample with noise and `defects` or more defects."""
    kind = draw(st.sampled_from(POSTED_KINDS))
    tx = samples.sample_transactions(base_id=draw(st.integers(1, 10**9)))[kind]
    for mutation in draw(st.lists(_noise(tx), max_size=3)):
        mutation(tx)
    count = draw(st.integers(defects, defects + 2))
    for _ in range(count):
        draw(_defect(tx))(tx)
    return tx


def hostile_transaction() -> st.SearchStrategy[transaction_pb2.Transaction]:
    return rough_transaction(defects=1)
