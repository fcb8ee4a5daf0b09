"""The firm's chart and price list: the account codes its transactions use, and the work its bills
and suppliers describe. The currency, tax rate and tax codes are the region's (regions.py).
Amounts are integer cents."""

from __future__ import annotations

DIVISION = 1
# Account codes of the firm's chart (the demo organisation's): income, expenses and banks.
FEES = "200"
DISBURSEMENTS_RECOVERED = "210"
DISBURSEMENTS = "310"
OFFICE_EXPENSES = "420"
TELEPHONE = "489"
OFFICE_BANK = "090"
TRUST_BANK = "091"
OFFICE_SAVINGS = "094"
BANK_PARTICIPANT = 900
SUPPLIERS = (
    ("Metro Process Servers", DISBURSEMENTS),
    ("Counsel Chambers 12", DISBURSEMENTS),
    ("LandInfo Searches", DISBURSEMENTS),
    ("Swift Couriers", DISBURSEMENTS),
    ("Medical Reports Australia", DISBURSEMENTS),
    ("Office Supplies Direct", OFFICE_EXPENSES),
    ("Telco One", TELEPHONE),
    ("Archive Storage Co", OFFICE_EXPENSES),
)
FEE_WORK = (
    "Advice on lease terms",
    "Drafting deed of variation",
    "Conveyancing - purchase",
    "Conveyancing - sale",
    "Preparing affidavit",
    "Attendance at mediation",
    "Review of contract",
    "Correspondence with other side",
    "Estate administration",
    "Court appearance",
)
# Disbursements and whether they bear tax: government fees are untaxed.
DISBURSEMENT_WORK = (
    ("Title search fee", False),
    ("Court filing fee", False),
    ("Stamp duty lodgement", False),
    ("Courier", True),
    ("Photocopying", True),
    ("Settlement agent fee", True),
)
