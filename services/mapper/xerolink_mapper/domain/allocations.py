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
# The two ledgers, which never share an account. The trust functions' accounts hold clients' money
# or what the firm owes them for it; the office bank holds the firm's own. Trust interest is neither:
# its account is where interest is booked as income, which office transactions may book to as well.
TRUST_FUNCTIONS = frozenset(
    {TRUST_BANK, TRUST_LIABILITY, TRUST_TRANSFERS, TRUST_PAID_BY_FIRM, STATUTORY_DEPOSIT, ADVANCED_FUNDS}
)
OFFICE_FUNCTIONS = frozenset({OFFICE_BANK})
# Lines that carry no Actionstep tax code take the organisation's tax type for them, from
# MappingContext.untaxed (these are its field names): trust money is not the firm's supply;
# trust interest is income the firm may not keep. Which tax type that is depends on the
# organisation's country and is chosen when it is connected (docs/regions.md).
TRUST_MONEY = "trust_money"
INTEREST_ON_TRUST = "interest_on_trust"
JOURNAL_WITHOUT_TAX_CODE = "journal_without_tax_code"
