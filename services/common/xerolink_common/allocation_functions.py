"""The functions an Actionstep connection allocates Xero accounts to: the keys of
MappingContext.account_allocation. The mapper reads them; the poster checks a re-map names only
these (any other name would allocate nothing while the re-map reported success)."""

from __future__ import annotations

from enum import StrEnum


class AllocationFunction(StrEnum):
    OFFICE_BANK = "office_bank"
    TRUST_BANK = "trust_bank"
    TRUST_LIABILITY = "trust_liability"
    TRUST_TRANSFERS = "trust_transfers"
    TRUST_PAID_BY_FIRM = "trust_paid_by_firm"
    TRUST_INTEREST = "trust_interest"
    STATUTORY_DEPOSIT = "statutory_deposit"
    ADVANCED_FUNDS = "advanced_funds"
