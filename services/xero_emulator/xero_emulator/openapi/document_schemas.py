"""The schemas of contacts and of the documents and money that settle them: invoices, credit
notes, payments, allocations and overpayments."""

from __future__ import annotations

from xero_emulator.openapi.schema_parts import (
    ACCOUNT_REF,
    BOOL,
    DOC_IN,
    DOC_OUT,
    HAS_ERRORS,
    HAS_VALIDATION_ERRORS,
    INPUT_DATE,
    MSDATE,
    NUM,
    STR,
    UUID,
    VALIDATION,
    Schema,
    arr,
    enum,
    obj,
    ref,
)

CONTACT_IN = obj(
    {
        "ContactID": UUID,
        "ContactNumber": STR,
        "AccountNumber": STR,
        "ContactStatus": enum("ACTIVE", "ARCHIVED"),
        "Name": STR,
        "FirstName": STR,
        "LastName": STR,
        "EmailAddress": STR,
        "TaxNumber": STR,
        "CompanyNumber": STR,
        "IsSupplier": BOOL,
        "IsCustomer": BOOL,
    }
)
CONTACT = obj(
    {
        **CONTACT_IN["properties"],
        "Addresses": arr({"type": "object"}),
        "Phones": arr({"type": "object"}),
        "ContactGroups": arr({"type": "object"}),
        "ContactPersons": arr({"type": "object"}),
        "HasAttachments": BOOL,
        "UpdatedDateUTC": MSDATE,
        **VALIDATION,
        **HAS_VALIDATION_ERRORS,
    }
)

SETTLED: dict[str, Schema] = {"FullyPaidOnDate": MSDATE, "Payments": arr(ref("Payment")), **HAS_ERRORS}
INVOICE_IN = obj(
    {**DOC_IN, "Type": enum("ACCREC", "ACCPAY"), "InvoiceID": UUID, "InvoiceNumber": STR, "DueDate": INPUT_DATE},
    ["Type", "Contact", "LineItems"],
)
INVOICE = obj(
    {
        **DOC_OUT,
        "Type": enum("ACCREC", "ACCPAY"),
        "InvoiceID": UUID,
        "InvoiceNumber": STR,
        **SETTLED,
        "DueDate": MSDATE,
        "AmountDue": NUM,
        "AmountPaid": NUM,
        "AmountCredited": NUM,
        "CreditNotes": arr(ref("CreditNote")),
        "Overpayments": arr(ref("Overpayment")),
        "Prepayments": arr({"type": "object"}),
    }
)
CREDIT_NOTE_IN = obj(
    {**DOC_IN, "Type": enum("ACCRECCREDIT", "ACCPAYCREDIT"), "CreditNoteID": UUID, "CreditNoteNumber": STR},
    ["Type", "Contact", "LineItems"],
)
CREDIT_NOTE = obj(
    {
        **DOC_OUT,
        "Type": enum("ACCRECCREDIT", "ACCPAYCREDIT"),
        "CreditNoteID": UUID,
        **SETTLED,
        "CreditNoteNumber": STR,
        "RemainingCredit": NUM,
        "AppliedAmount": NUM,
        "Allocations": arr(ref("Allocation")),
    }
)
PAYMENT_IN = obj(
    {
        "PaymentID": UUID,
        "Invoice": obj({"InvoiceID": UUID, "InvoiceNumber": STR}),
        "CreditNote": obj({"CreditNoteID": UUID, "CreditNoteNumber": STR}),
        "Overpayment": obj({"OverpaymentID": UUID}),
        "Account": ACCOUNT_REF,
        "Date": INPUT_DATE,
        "Amount": NUM,
        "CurrencyRate": NUM,
        "Reference": STR,
        "IsReconciled": BOOL,
        "Status": enum("AUTHORISED", "DELETED"),
    }
)
PAYMENT = obj(
    {
        "PaymentID": UUID,
        "Invoice": ref("Invoice"),
        "CreditNote": ref("CreditNote"),
        "Overpayment": ref("Overpayment"),
        "Account": ref("Account"),
        "Date": MSDATE,
        "Amount": NUM,
        "BankAmount": NUM,
        "CurrencyRate": NUM,
        "Reference": STR,
        "IsReconciled": BOOL,
        "Status": enum("AUTHORISED", "DELETED"),
        "PaymentType": enum(
            "ACCRECPAYMENT",
            "ACCPAYPAYMENT",
            "ARCREDITPAYMENT",
            "APCREDITPAYMENT",
            "AROVERPAYMENTPAYMENT",
            "APOVERPAYMENTPAYMENT",
        ),
        "UpdatedDateUTC": MSDATE,
        "HasAccount": BOOL,
        **VALIDATION,
        **HAS_VALIDATION_ERRORS,
    }
)
PAYMENT_DELETE = obj({"Status": enum("DELETED")}, ["Status"])
ALLOCATION_IN = obj({"Invoice": obj({"InvoiceID": UUID}), "Amount": NUM, "Date": INPUT_DATE}, ["Invoice", "Amount"])
ALLOCATION = obj(
    {
        "AllocationID": UUID,
        "Invoice": ref("Invoice"),
        "CreditNote": ref("CreditNote"),
        "Overpayment": ref("Overpayment"),
        "Amount": NUM,
        "Date": MSDATE,
        "IsDeleted": BOOL,
        **VALIDATION,
    }
)
OVERPAYMENT = obj(
    {
        **{k: v for k, v in DOC_OUT.items() if k not in VALIDATION},
        "Payments": arr(ref("Payment")),
        "OverpaymentID": UUID,
        "Type": enum("RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT"),
        "Status": enum("AUTHORISED", "PAID", "VOIDED"),
        "RemainingCredit": NUM,
        "AppliedAmount": NUM,
        "Allocations": arr(ref("Allocation")),
    }
)
