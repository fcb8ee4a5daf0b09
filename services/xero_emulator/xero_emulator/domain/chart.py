"""A law firm's chart of accounts and the shapes of Xero's Account and TaxRate. The layout (codes,
types, system accounts) is the same in every region, so one account allocation works everywhere;
each region (domain/regions.py) gives the accounts their names and default tax types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Account type -> Xero's account class (drives which tax types may be used with it).
ACCOUNT_CLASS = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "INVENTORY": "ASSET",
    "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY",
    "TERMLIAB": "LIABILITY",
    "EQUITY": "EQUITY",
    "REVENUE": "REVENUE",
    "SALES": "REVENUE",
    "OTHERINCOME": "REVENUE",
    "DIRECTCOSTS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "DEPRECIATN": "EXPENSE",
}
# TaxRate.CanApplyTo* of each account class.
CLASS_FLAG = {
    "ASSET": "CanApplyToAssets",
    "EQUITY": "CanApplyToEquity",
    "EXPENSE": "CanApplyToExpenses",
    "LIABILITY": "CanApplyToLiabilities",
    "REVENUE": "CanApplyToRevenue",
}


@dataclass(frozen=True)
class SeedAccount:
    code: str
    name: str
    type: str
    # Australia's no-tax type, the default of an account built by hand; a region's chart sets its own.
    tax_type: str = "BASEXCLUDED"
    payments_enabled: bool = False
    status: str = "ACTIVE"
    system_account: str | None = None


# The tax treatment of each account of the chart; a region names the tax type of each.
SALES = "sales"  # fees and recoveries the firm bills
INTEREST = "interest"  # interest the firm earns
PURCHASES = "purchases"  # what the firm buys
UNTAXED = "untaxed"  # banks, trust money, control and equity accounts: outside the tax
TAX_ROLES = (SALES, INTEREST, PURCHASES, UNTAXED)


@dataclass(frozen=True)
class ChartEntry:
    """One account of the layout: its Australian name (the original seed) and its tax role."""

    code: str
    name: str
    type: str
    role: str = UNTAXED
    payments_enabled: bool = False
    status: str = "ACTIVE"
    system_account: str | None = None


LAW_FIRM_LAYOUT = (
    ChartEntry("090", "Office Cheque Account", "BANK"),
    ChartEntry("091", "Trust Account", "BANK"),
    ChartEntry("092", "Statutory Deposit Account", "BANK"),
    ChartEntry("093", "Advanced Funds Account", "BANK"),
    ChartEntry("094", "Office Savings Account", "BANK"),
    ChartEntry("200", "Legal Fees", "REVENUE", SALES),
    ChartEntry("210", "Disbursements Recovered", "REVENUE", SALES),
    ChartEntry("270", "Interest Income", "REVENUE", INTEREST),
    ChartEntry("310", "Disbursements", "DIRECTCOSTS", PURCHASES),
    ChartEntry("420", "Office Expenses", "EXPENSE", PURCHASES),
    ChartEntry("489", "Telephone & Internet", "EXPENSE", PURCHASES),
    ChartEntry("499", "Old Expenses", "EXPENSE", PURCHASES, status="ARCHIVED"),
    ChartEntry("610", "Accounts Receivable", "CURRENT", system_account="DEBTORS"),
    ChartEntry("800", "Accounts Payable", "CURRLIAB", system_account="CREDITORS"),
    # Xero's system account for GST / VAT / sales tax is "GST" in every region (Types and Codes).
    ChartEntry("820", "GST", "CURRLIAB", system_account="GST"),
    ChartEntry("850", "Trust Liability - Client Funds", "CURRLIAB"),
    ChartEntry("855", "Trust Transfers", "CURRLIAB", payments_enabled=True),
    # Xero's type for a current asset is CURRENT (there is no CURRASSET in its AccountType enum).
    ChartEntry("860", "Trust Paid by Firm", "CURRENT", payments_enabled=True),
    ChartEntry("880", "Retainers Held", "CURRLIAB"),
    ChartEntry("960", "Retained Earnings", "EQUITY", system_account="RETAINEDEARNINGS"),
    # Where foreign-currency payments and allocations book the difference between rates.
    ChartEntry("497", "Realised Currency Gains", "OTHERINCOME", system_account="REALISEDCURRENCYGAIN"),
)

AR_CODE = "610"
AP_CODE = "800"
TAX_CODE = "820"  # where every line's tax is booked: GST, VAT or sales tax
FX_GAINS_CODE = "497"


def law_firm_chart(names: dict[str, str], tax_types: dict[str, str]) -> tuple[SeedAccount, ...]:
    """The layout with a region's names (by code; the Australian name otherwise) and tax types (by role)."""
    return tuple(
        SeedAccount(
            entry.code,
            names.get(entry.code, entry.name),
            entry.type,
            tax_types[entry.role],
            payments_enabled=entry.payments_enabled,
            status=entry.status,
            system_account=entry.system_account,
        )
        for entry in LAW_FIRM_LAYOUT
    )


@dataclass(frozen=True)
class SeedTaxRate:
    """A TaxRate: `applies_to` lists the account classes it may be used with (CanApplyTo*);
    `components` are (name, rate) pairs, none meaning one component named after the region's tax."""

    tax_type: str
    name: str
    rate: Decimal
    report_tax_type: str
    applies_to: frozenset[str]
    components: tuple[tuple[str, Decimal], ...] = ()


def account_object(seed: SeedAccount, currency: str = "AUD", bank_number: str | None = None) -> dict[str, Any]:
    """An Account in Xero's JSON shape; a bank account is in `currency` (the base currency)."""
    account: dict[str, Any] = {
        "AccountID": str(uuid.uuid4()),
        "Code": seed.code,
        "Name": seed.name,
        "Status": seed.status,
        "Type": seed.type,
        "TaxType": seed.tax_type,
        "Class": ACCOUNT_CLASS[seed.type],
        "EnablePaymentsToAccount": seed.payments_enabled,
        "ShowInExpenseClaims": False,
        "ReportingCode": "",
        "HasAttachments": False,
        "AddToWatchlist": False,
    }
    if seed.type == "BANK":
        account["BankAccountNumber"] = bank_number or f"0620000000{seed.code}"
        account["BankAccountType"] = "BANK"
        account["CurrencyCode"] = currency
    if seed.system_account:
        account["SystemAccount"] = seed.system_account
    return account


def tax_rate_object(seed: SeedTaxRate, component_name: str = "GST") -> dict[str, Any]:
    """A TaxRate in Xero's JSON shape; its rate is the sum of its (non-compound) components."""
    components = seed.components or ((component_name, seed.rate),)
    rate = sum((r for _name, r in components), Decimal(0))
    if rate != seed.rate:
        raise ValueError(f"tax rate {seed.tax_type}: components add up to {rate}, not {seed.rate}")
    flags = {flag: account_class in seed.applies_to for account_class, flag in CLASS_FLAG.items()}
    return {
        "Name": seed.name,
        "TaxType": seed.tax_type,
        "Status": "ACTIVE",
        "ReportTaxType": seed.report_tax_type,
        **dict(sorted(flags.items())),
        "DisplayTaxRate": seed.rate,
        "EffectiveRate": seed.rate,
        "TaxComponents": [
            {"Name": name, "Rate": component, "IsCompound": False, "IsNonRecoverable": False}
            for name, component in components
        ],
    }
