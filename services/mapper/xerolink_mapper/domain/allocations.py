"""The account allocation the mapper reads: the functions an Actionstep connection allocates Xero
accounts to (MappingContext.account_allocation keys), and the tax types of lines on those accounts."""

from __future__ import annotations

# Allocation functions (MappingContext.account_allocation keys).
OFFICE_BANK = "office_bank"
TRUST_BANK = "trust_bank"
TRUST_LIABILITY = "trust_liability"
TRUST_TRANSFERS = "trust_transfers"
TRUST_PAID_BY_FIRM = "trust_paid_by_firm"
TRUST_INTEREST = "trust_interest"
STATUTORY_DEPOSIT = "statutory_deposit"
ADVANCED_FUNDS = "advanced_funds"
ALLOCATION_FUNCTIONS = (
    OFFICE_BANK,
    TRUST_BANK,
    TRUST_LIABILITY,
    TRUST_TRANSFERS,
    TRUST_PAID_BY_FIRM,
    TRUST_INTEREST,
    STATUTORY_DEPOSIT,
    ADVANCED_FUNDS,
)
# Tax types of lines on allocated accounts, which carry no Actionstep tax code: trust money is
# not the firm's supply (excluded from tax returns); trust interest is exempt income.
TRUST_TAX_TYPE = "BASEXCLUDED"
INTEREST_TAX_TYPE = "EXEMPTOUTPUT"
