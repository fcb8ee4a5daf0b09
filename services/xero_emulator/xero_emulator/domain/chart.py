"""The seeded chart of accounts and tax rates of an Australian law firm registered for GST."""

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


@dataclass(frozen=True)
class SeedAccount:
    code: str
    name: str
    type: str
    tax_type: str = "BASEXCLUDED"
    payments_enabled: bool = False
    status: str = "ACTIVE"
    system_account: str | None = None


LAW_FIRM_ACCOUNTS = (
    SeedAccount("090", "Office Cheque Account", "BANK"),
    SeedAccount("091", "Trust Account", "BANK"),
    SeedAccount("092", "Statutory Deposit Account", "BANK"),
    SeedAccount("093", "Advanced Funds Account", "BANK"),
    SeedAccount("094", "Office Savings Account", "BANK"),
    SeedAccount("200", "Legal Fees", "REVENUE", "OUTPUT"),
    SeedAccount("210", "Disbursements Recovered", "REVENUE", "OUTPUT"),
    SeedAccount("270", "Interest Income", "REVENUE", "EXEMPTOUTPUT"),
    SeedAccount("310", "Disbursements", "DIRECTCOSTS", "INPUT"),
    SeedAccount("420", "Office Expenses", "EXPENSE", "INPUT"),
    SeedAccount("489", "Telephone & Internet", "EXPENSE", "INPUT"),
    SeedAccount("499", "Old Expenses", "EXPENSE", "INPUT", status="ARCHIVED"),
    SeedAccount("610", "Accounts Receivable", "CURRENT", system_account="DEBTORS"),
    SeedAccount("800", "Accounts Payable", "CURRLIAB", system_account="CREDITORS"),
    SeedAccount("820", "GST", "CURRLIAB", system_account="GST"),
    SeedAccount("850", "Trust Liability - Client Funds", "CURRLIAB"),
    SeedAccount("855", "Trust Transfers", "CURRLIAB", payments_enabled=True),
    # Xero's type for a current asset is CURRENT (there is no CURRASSET in its AccountType enum).
    SeedAccount("860", "Trust Paid by Firm", "CURRENT", payments_enabled=True),
    SeedAccount("880", "Retainers Held", "CURRLIAB"),
    SeedAccount("960", "Retained Earnings", "EQUITY", system_account="RETAINEDEARNINGS"),
    # Where foreign-currency payments and allocations book the difference between rates.
    SeedAccount("497", "Realised Currency Gains", "OTHERINCOME", system_account="REALISEDCURRENCYGAIN"),
)

AR_CODE = "610"
AP_CODE = "800"
GST_CODE = "820"
FX_GAINS_CODE = "497"


@dataclass(frozen=True)
class SeedTaxRate:
    tax_type: str
    name: str
    rate: Decimal
    revenue: bool = True
    expenses: bool = True
    assets: bool = True
    liabilities: bool = True
    equity: bool = True


TAX_RATES = (
    SeedTaxRate("OUTPUT", "GST on Income", Decimal("10"), expenses=False, assets=False),
    SeedTaxRate("INPUT", "GST on Expenses", Decimal("10"), revenue=False),
    SeedTaxRate("EXEMPTOUTPUT", "GST Free Income", Decimal("0"), expenses=False, assets=False),
    SeedTaxRate("EXEMPTEXPENSES", "GST Free Expenses", Decimal("0"), revenue=False),
    SeedTaxRate("BASEXCLUDED", "BAS Excluded", Decimal("0")),
    SeedTaxRate("NONE", "No GST", Decimal("0")),
)


def account_object(seed: SeedAccount) -> dict[str, Any]:
    """An Account in Xero's JSON shape."""
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
        account["BankAccountNumber"] = f"0620000000{seed.code}"
        account["BankAccountType"] = "BANK"
        account["CurrencyCode"] = "AUD"
    if seed.system_account:
        account["SystemAccount"] = seed.system_account
    return account


def tax_rate_object(seed: SeedTaxRate) -> dict[str, Any]:
    return {
        "Name": seed.name,
        "TaxType": seed.tax_type,
        "Status": "ACTIVE",
        "ReportTaxType": "OUTPUT" if seed.tax_type in {"OUTPUT", "EXEMPTOUTPUT"} else "INPUT",
        "CanApplyToAssets": seed.assets,
        "CanApplyToEquity": seed.equity,
        "CanApplyToExpenses": seed.expenses,
        "CanApplyToLiabilities": seed.liabilities,
        "CanApplyToRevenue": seed.revenue,
        "DisplayTaxRate": seed.rate,
        "EffectiveRate": seed.rate,
        "TaxComponents": [{"Name": "GST", "Rate": seed.rate, "IsCompound": False, "IsNonRecoverable": False}],
    }
