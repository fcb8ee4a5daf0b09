"""The account allocation the mapper reads: the functions an Actionstep connection allocates Xero
accounts to (MappingContext.account_allocation keys), and the tax types of lines on those accounts."""

from __future__ import annotations

from xerolink_common.allocation_functions import AllocationFunction

# Allocation functions (MappingContext.account_allocation keys), by the short names the kind modules use.
OFFICE_BANK = AllocationFunction.OFFICE_BANK
TRUST_BANK = AllocationFunction.TRUST_BANK
TRUST_LIABILITY = AllocationFunction.TRUST_LIABILITY
TRUST_TRANSFERS = AllocationFunction.TRUST_TRANSFERS
TRUST_PAID_BY_FIRM = AllocationFunction.TRUST_PAID_BY_FIRM
TRUST_INTEREST = AllocationFunction.TRUST_INTEREST
STATUTORY_DEPOSIT = AllocationFunction.STATUTORY_DEPOSIT
ADVANCED_FUNDS = AllocationFunction.ADVANCED_FUNDS
ALLOCATION_FUNCTIONS = tuple(AllocationFunction)
# Tax types of lines on allocated accounts, which carry no Actionstep tax code: trust money is
# not the firm's supply (excluded from tax returns); trust interest is exempt income.
TRUST_TAX_TYPE = "BASEXCLUDED"
INTEREST_TAX_TYPE = "EXEMPTOUTPUT"
