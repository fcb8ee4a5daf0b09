"""Whether a transaction is supported: its kind's row of the support matrix, then the
conditions of the connection and the transaction, in the matrix's order."""

from __future__ import annotations

from collections.abc import Callable

from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.allocations import OFFICE_BANK
from xerolink_mapper.domain.model import (
    AccountingMethod,
    Kind,
    Ledgers,
    MappingContext,
    Profile,
    Transaction,
    TransferBody,
)
from xerolink_mapper.domain.xero import Decision

# Kinds the pre-integration backfill may post: open invoices with their partial payments.
BACKFILL_KINDS = frozenset({Kind.CLIENT_BILL, Kind.CLIENT_BILL_PAYMENT})


def _other_division(tx: Transaction, ctx: MappingContext) -> bool:
    return tx.header.division_id != ctx.linked_division_id


def _pre_integration(tx: Transaction, ctx: MappingContext) -> bool:
    posted, connected = tx.header.posted_at, ctx.connected_at
    if posted is None or connected is None:  # validated before deciding
        return False
    if ctx.pre_integration_backfill and tx.kind in BACKFILL_KINDS:
        return False
    return posted < connected


def _multi_currency(_tx: Transaction, ctx: MappingContext) -> bool:
    return ctx.multi_currency_database


def _foreign_currency(tx: Transaction, ctx: MappingContext) -> bool:
    return tx.header.currency_code != ctx.base_currency_code


# Kinds that become manual journals, bank transfers or receive and spend bank transactions. The
# first two carry no currency and rate. A RECEIVE or SPEND is in its bank account's currency, which
# this version cannot tell: "Setting currency is only supported on overpayments" (Xero's OpenAPI
# description, BankTransaction.CurrencyRate), so a transaction in another currency would be
# refused by Xero, or booked at face value in the account's.
BASE_CURRENCY_ONLY_KINDS = frozenset(
    {
        Kind.GENERAL_JOURNAL,
        Kind.TRUST_JOURNAL,
        Kind.TRUST_TRANSFER,
        Kind.OFFICE_BANK_TRANSFER,
        Kind.STATUTORY_FUNDS,
        Kind.ADVANCED_FUNDS,
        Kind.TRUST_RECEIPT,
        Kind.TRUST_PAYMENT,
        Kind.TRUST_INTEREST,
        Kind.BANK_DEPOSIT,
        Kind.BANK_WITHDRAWAL,
    }
)


def in_base_currency_only(kind: Kind, ledgers: Ledgers) -> bool:
    """Whether a transaction of `kind` can be posted in the base currency only. An invoice paid
    from trust spends from the trust bank too, unless the organisation keeps the office ledger
    alone and posts only the payment, which carries the invoice's rate."""
    return kind in BASE_CURRENCY_ONLY_KINDS or (kind is Kind.INVOICE_PAID_FROM_TRUST and ledgers is not Ledgers.OFFICE)


def _foreign_not_representable(tx: Transaction, ctx: MappingContext) -> bool:
    return _foreign_currency(tx, ctx) and in_base_currency_only(tx.kind, ctx.ledgers)


def _cash_accounting(_tx: Transaction, ctx: MappingContext) -> bool:
    return ctx.accounting_method is AccountingMethod.CASH


def _retainers(_tx: Transaction, ctx: MappingContext) -> bool:
    return ctx.general_retainers_configured


_HOLDS: dict[str, Callable[[Transaction, MappingContext], bool]] = {
    sm.OTHER_DIVISION: _other_division,
    sm.PRE_INTEGRATION: _pre_integration,
    sm.MULTI_CURRENCY_DATABASE: _multi_currency,
    sm.FOREIGN_CURRENCY: _foreign_currency,
    sm.FOREIGN_CURRENCY_NOT_REPRESENTABLE: _foreign_not_representable,
    sm.CASH_ACCOUNTING: _cash_accounting,
    sm.GENERAL_RETAINERS_CONFIGURED: _retainers,
}
assert set(_HOLDS) == set(sm.CONDITIONS_BY_CODE), "every condition of the matrix needs its test"

# (profile) -> the conditions that apply in it, in the matrix's order.
_APPLICABLE: dict[Profile, tuple[tuple[sm.Condition, Callable[[Transaction, MappingContext], bool]], ...]] = {
    profile: tuple((c, _HOLDS[c.reason_code]) for c in sm.CONDITIONS if profile in c.profiles)
    for profile in sm.PROFILES
}

_DECISIONS: dict[tuple[Kind, Profile], Decision] = {
    (row.kind, profile): Decision(v.supported, v.reason_code, v.reason)
    for row in sm.ROWS
    for profile in sm.PROFILES
    for v in (row.verdict(profile),)
}
_CONDITION_DECISIONS: dict[str, Decision] = {
    c.reason_code: Decision(False, c.reason_code, c.reason) for c in sm.CONDITIONS
}


_TRUST_ELSEWHERE, _OFFICE_ELSEWHERE, _TRANSFER_TO_OFFICE = (
    Decision(v.supported, v.reason_code, v.reason) for v in sm.LEDGER_VERDICTS
)


def _ledger_decision(tx: Transaction, ctx: MappingContext) -> Decision | None:
    """In an organisation that keeps one ledger only: why the transaction is not posted there."""
    if ctx.ledgers is Ledgers.OFFICE:
        return None if tx.kind in sm.OFFICE_KINDS else _TRUST_ELSEWHERE
    if tx.kind not in sm.TRUST_KINDS:
        return _OFFICE_ELSEWHERE
    body = tx.body
    if isinstance(body, TransferBody) and body.to_account:
        # Money leaving for the office organisation: no bank transfer can join two organisations.
        office = ctx.account_allocation.get(OFFICE_BANK, "")
        if body.to_account == office:
            return _TRANSFER_TO_OFFICE
    return None


def decide(tx: Transaction, ctx: MappingContext) -> Decision:
    """The kind's verdict first (a purchase order is never posted, whatever the connection), then
    the organisation's ledger when it keeps one only, then the first condition that holds."""
    decision = _DECISIONS[(tx.kind, ctx.profile)]
    if not decision.supported:
        return decision
    if ctx.ledgers is Ledgers.OFFICE or ctx.ledgers is Ledgers.TRUST:
        elsewhere = _ledger_decision(tx, ctx)
        if elsewhere is not None:
            return elsewhere
    for condition, holds in _APPLICABLE[ctx.profile]:
        if holds(tx, ctx):
            return _CONDITION_DECISIONS[condition.reason_code]
    return decision
