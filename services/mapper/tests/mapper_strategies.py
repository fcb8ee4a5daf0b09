"""Hypothesis strategies: well-formed Actionstep transactions of every kind the mapper can post,
against the demo organisation's chart, allocation and tax maps."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st
from mapper_factories import CURRENCY, FIELD_NAMES, cents, header
from xerolink_mapper.domain.model import (
    Amount,
    ApplicationBody,
    BankAmountBody,
    BankEntryBody,
    Body,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    JournalLine,
    Kind,
    Line,
    OpaqueBody,
    OverpaymentRefundBody,
    PaymentBody,
    Totals,
    Transaction,
    TransferBody,
    TrustJournalBody,
)

LINE_ACCOUNTS = ("200", "210", "270", "310", "420", "489")
BANK_ACCOUNTS = ("090", "094")
TAX_CODES = ("GST", "FRE", "NTR")
ids = st.integers(min_value=1, max_value=2**40)
positive = st.integers(min_value=1, max_value=10**11)
# Text Xero takes (see domain/text.py): something visible, no control characters, odd unicode
# otherwise; empty for "none". Single-line text also ends up in narrations, which take no breaks.
_ANY_TEXT = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
_VISIBLE = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S"), exclude_characters="\u2800\u3164\u115f\u1160\uffa0"
)
visible_text = st.builds("{}{}{}".format, st.text(_ANY_TEXT, max_size=14), _VISIBLE, st.text(_ANY_TEXT, max_size=15))
single_line = st.one_of(st.just(""), visible_text)
descriptions = st.one_of(single_line, st.builds("{}\n\t{}".format, visible_text, single_line))


@st.composite
def lines(draw: st.DrawFn, min_size: int = 1, max_size: int = 12) -> tuple[Line, ...]:
    count = draw(st.integers(min_value=min_size, max_value=max_size))
    out = []
    for _ in range(count):
        amount = draw(st.integers(min_value=-(10**6), max_value=10**9))
        tax = draw(st.integers(min_value=0, max_value=max(abs(amount) // 10, 0))) * (1 if amount >= 0 else -1)
        out.append(
            Line(
                description=draw(descriptions),
                quantity=draw(st.sampled_from(("", "1", "1.5", "0.25", "12"))),
                unit_price=draw(st.sampled_from(("", "250.00", "0.5", "-10"))),
                gl_account=draw(st.sampled_from(LINE_ACCOUNTS)),
                tax_code=draw(st.sampled_from(TAX_CODES)),
                amount=cents(amount),
                tax=cents(tax),
            )
        )
    # A document may carry discount lines, never a negative total.
    if sum(line.amount.cents + line.tax.cents for line in out if line.amount and line.tax) < 0:
        out.append(Line("rounding up", "1", "", "200", "NTR", cents(10**7), cents(0)))
    return tuple(out)


def totals_for(items: tuple[Line, ...]) -> Totals:
    exclusive = sum(item.amount.cents for item in items if item.amount)
    tax = sum(item.tax.cents for item in items if item.tax)
    return Totals(cents(exclusive), cents(tax), cents(exclusive + tax))


@st.composite
def documents(draw: st.DrawFn, due: bool) -> DocumentBody:
    items = draw(lines())
    return DocumentBody(
        number=draw(st.from_regex(r"[A-Z]{2,3}-[0-9]{1,6}", fullmatch=True)),
        lines=items,
        totals=totals_for(items),
        due_date=date(2026, 3, 2) + timedelta(days=draw(st.integers(0, 120))) if due else None,
        related_id=draw(st.integers(0, 10**6)),
    )


@st.composite
def bank_entries(draw: st.DrawFn) -> BankEntryBody:
    items = draw(lines())
    return BankEntryBody(draw(st.sampled_from(("", *BANK_ACCOUNTS))), items, totals_for(items))


@st.composite
def journals(draw: st.DrawFn) -> GeneralJournalBody:
    moves = draw(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=6))
    journal_lines = []
    for amount in moves:
        debit, credit = draw(st.lists(st.sampled_from(LINE_ACCOUNTS), min_size=2, max_size=2))
        tax_code = draw(st.sampled_from(("", *TAX_CODES)))
        journal_lines.append(JournalLine(debit, draw(descriptions), cents(amount), tax_code))
        journal_lines.append(JournalLine(credit, draw(descriptions), cents(-amount), tax_code))
    order = draw(st.permutations(journal_lines))
    return GeneralJournalBody(draw(visible_text), tuple(order))


def _money(strategy: st.SearchStrategy[int] = positive) -> st.SearchStrategy[Amount]:
    return strategy.map(cents)


@st.composite
def overpayment_refunds(draw: st.DrawFn) -> OverpaymentRefundBody:
    # Refunded whole: a partial refund is refused (a second one would create the overpayment again).
    overpaid = draw(positive)
    return OverpaymentRefundBody(
        draw(st.integers(0, 10**6)), cents(overpaid), cents(overpaid), draw(st.sampled_from(("", *BANK_ACCOUNTS)))
    )


@st.composite
def trust_journals(draw: st.DrawFn) -> TrustJournalBody:
    source, target = draw(st.lists(ids, min_size=2, max_size=2, unique=True))
    return TrustJournalBody(source, target, draw(_money()), draw(single_line))


@st.composite
def transfers(draw: st.DrawFn, trust: bool) -> TransferBody:
    if trust:
        return TransferBody(draw(st.sampled_from(("", "091"))), draw(st.sampled_from(BANK_ACCOUNTS)), draw(_money()))
    # Between office accounts: a transfer that involves the trust bank is a trust transfer.
    source, target = draw(st.lists(st.sampled_from(BANK_ACCOUNTS), min_size=2, max_size=2, unique=True))
    return TransferBody(source, target, draw(_money()))


def _funds(account: str) -> st.SearchStrategy[FundsBody]:
    return st.builds(
        FundsBody,
        st.sampled_from((FundsDirection.OUT_OF_TRUST, FundsDirection.INTO_TRUST)),
        st.sampled_from(("", "091")),
        st.sampled_from(("", account)),
        _money(),
    )


def _payment(bank: tuple[str, ...]) -> st.SearchStrategy[PaymentBody]:
    return st.builds(PaymentBody, ids, _money(), st.sampled_from(("", *bank)))


def _bank_amount(bank: tuple[str, ...]) -> st.SearchStrategy[BankAmountBody]:
    return st.builds(BankAmountBody, _money(), st.sampled_from(("", *bank)), descriptions)


BODIES: dict[Kind, st.SearchStrategy[Body]] = {
    Kind.CLIENT_BILL: documents(due=True),
    Kind.CLIENT_BILL_PAYMENT: _payment(BANK_ACCOUNTS),
    Kind.CREDIT_NOTE: documents(due=False),
    Kind.CREDIT_NOTE_APPLICATION: st.builds(ApplicationBody, ids, ids, _money()),
    Kind.CREDIT_NOTE_REFUND: _payment(BANK_ACCOUNTS),
    Kind.OVERPAYMENT_REFUND: overpayment_refunds(),
    Kind.TRUST_RECEIPT: _bank_amount(("091",)),
    Kind.TRUST_PAYMENT: _bank_amount(("091",)),
    Kind.TRUST_JOURNAL: trust_journals(),
    Kind.TRUST_TRANSFER: transfers(trust=True),
    Kind.TRUST_INTEREST: _bank_amount(("091",)),
    Kind.INVOICE_PAID_FROM_TRUST: _payment(("091",)),
    Kind.STATUTORY_FUNDS: _funds("092"),
    Kind.ADVANCED_FUNDS: _funds("093"),
    Kind.SUPPLIER_INVOICE: documents(due=True),
    Kind.SUPPLIER_INVOICE_PAYMENT: _payment(BANK_ACCOUNTS),
    Kind.SUPPLIER_CREDIT: documents(due=False),
    Kind.SUPPLIER_CREDIT_APPLICATION: st.builds(ApplicationBody, ids, ids, _money()),
    Kind.BANK_DEPOSIT: bank_entries(),
    Kind.BANK_WITHDRAWAL: bank_entries(),
    Kind.OFFICE_BANK_TRANSFER: transfers(trust=False),
    Kind.GENERAL_JOURNAL: journals(),
}
MAPPABLE_KINDS = tuple(BODIES)


@st.composite
def transactions(draw: st.DrawFn, kinds: tuple[Kind, ...] = MAPPABLE_KINDS) -> Transaction:
    """A well-formed transaction of one of `kinds` (any kind: the never-posted ones get an empty body)."""
    kind = draw(st.sampled_from(kinds))
    body = draw(BODIES[kind]) if kind in BODIES else OpaqueBody()
    return Transaction(kind, header(draw(ids), currency_code=CURRENCY), body, FIELD_NAMES[kind])
