"""The schemas of bank transactions, bank transfers and manual journals."""

from __future__ import annotations

from xero_emulator.openapi.schema_parts import (
    ACCOUNT_REF,
    BOOL,
    CONTACT_REF,
    DOC_OUT,
    INPUT_DATE,
    LINE_AMOUNT_TYPES,
    LINE_ITEM_IN,
    MSDATE,
    NUM,
    STR,
    UUID,
    VALIDATION,
    arr,
    enum,
    obj,
    ref,
)

BANK_TRANSACTION_TYPES = enum("RECEIVE", "SPEND", "RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT")
BANK_TRANSACTION_IN = obj(
    {
        "BankTransactionID": UUID,
        "Type": BANK_TRANSACTION_TYPES,
        "Contact": CONTACT_REF,
        "BankAccount": ACCOUNT_REF,
        "Date": INPUT_DATE,
        "LineAmountTypes": LINE_AMOUNT_TYPES,
        "LineItems": arr(LINE_ITEM_IN),
        "Reference": STR,
        "CurrencyCode": STR,
        "CurrencyRate": NUM,
        "IsReconciled": BOOL,
        "Status": enum("AUTHORISED", "DELETED"),
    },
    ["Type", "Contact", "BankAccount", "LineItems"],
)
BANK_TRANSACTION = obj(
    {
        **DOC_OUT,
        "BankTransactionID": UUID,
        "Type": BANK_TRANSACTION_TYPES,
        "BankAccount": ref("Account"),
        "IsReconciled": BOOL,
        "OverpaymentID": UUID,
        "Status": enum("AUTHORISED", "DELETED"),
    }
)
BANK_TRANSFER_IN = obj(
    {"FromBankAccount": ACCOUNT_REF, "ToBankAccount": ACCOUNT_REF, "Amount": NUM, "Date": INPUT_DATE, "Reference": STR},
    ["FromBankAccount", "ToBankAccount", "Amount"],
)
BANK_TRANSFER = obj(
    {
        "BankTransferID": UUID,
        "FromBankAccount": ref("Account"),
        "ToBankAccount": ref("Account"),
        "Amount": NUM,
        "Date": MSDATE,
        "Reference": STR,
        "CurrencyRate": NUM,
        "FromBankTransactionID": UUID,
        "ToBankTransactionID": UUID,
        "FromIsReconciled": BOOL,
        "ToIsReconciled": BOOL,
        "HasAttachments": BOOL,
        "CreatedDateUTC": MSDATE,
        "ValidationErrors": arr(ref("ValidationError")),
    }
)
JOURNAL_LINE_IN = obj(
    {
        "LineAmount": NUM,
        "AccountCode": STR,
        "AccountID": UUID,
        "Description": STR,
        "TaxType": STR,
        "TaxAmount": NUM,
        "Tracking": {**arr(ref("LineItemTrackingInput")), "maxItems": 2},
    },
    ["LineAmount"],
)
JOURNAL_LINE = obj({**JOURNAL_LINE_IN["properties"], "IsBlank": BOOL, "Tracking": arr(ref("LineItemTracking"))})
MANUAL_JOURNAL_IN = obj(
    {
        "ManualJournalID": UUID,
        "Narration": STR,
        "JournalLines": arr(JOURNAL_LINE_IN),
        "Date": INPUT_DATE,
        "LineAmountTypes": LINE_AMOUNT_TYPES,
        "Status": enum("DRAFT", "POSTED", "DELETED", "VOIDED"),
    },
    ["Narration"],
)
MANUAL_JOURNAL = obj(
    {
        "ManualJournalID": UUID,
        "Narration": STR,
        "JournalLines": arr(ref("ManualJournalLine")),
        "Date": MSDATE,
        "LineAmountTypes": LINE_AMOUNT_TYPES,
        "Status": enum("DRAFT", "POSTED", "DELETED", "VOIDED", "ARCHIVED"),
        "ShowOnCashBasisReports": BOOL,
        "HasAttachments": BOOL,
        "UpdatedDateUTC": MSDATE,
        **VALIDATION,
    }
)
