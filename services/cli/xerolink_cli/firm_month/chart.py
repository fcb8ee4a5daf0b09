"""The firm's chart and price list: the account and tax codes its transactions use, and the work
its bills and suppliers describe. Amounts are integer cents."""

from __future__ import annotations

CURRENCY = "AUD"
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
# Actionstep tax codes; the connection maps them to Xero tax types.
GST = "GST"
GST_FREE = "FRE"
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
DISBURSEMENT_WORK = (
    ("Title search fee", GST_FREE),
    ("Court filing fee", GST_FREE),
    ("Stamp duty lodgement", GST_FREE),
    ("Courier", GST),
    ("Photocopying", GST),
    ("Settlement agent fee", GST),
)


def gst_on(cents: int) -> int:
    """10% GST rounded half up, in cents."""
    return (cents + 5) // 10
