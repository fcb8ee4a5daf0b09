"""Field rules Xero's OpenAPI description (xero_accounting.yaml, v16.1.0) states for the objects
xerolink writes: fields marked readOnly, fields restricted to some document types, and lengths.
Xero ignores a readOnly field a client sends and drops a type-restricted field on other types
(Reference on bills: XeroAPI/xero-mcp-server#121, XeroAPI/Xero-NetStandard#249), so the emulator
strips both before an element reaches the domain. tests/contract/test_emulator_openapi_rules.py
derives the same rules from the description and checks this table against a running emulator."""

from __future__ import annotations

from typing import Any

from xero_emulator.domain.errors import ValidationFailure

# readOnly: true in the description, per resource written (schema in the comment).
READ_ONLY: dict[str, frozenset[str]] = {
    # Invoice
    "Invoices": frozenset(
        {
            "CISDeduction",
            "CISRate",
            "SubTotal",
            "TotalTax",
            "Total",
            "TotalDiscount",
            "HasAttachments",
            "IsDiscounted",
            "Payments",
            "Prepayments",
            "Overpayments",
            "AmountDue",
            "AmountPaid",
            "FullyPaidOnDate",
            "AmountCredited",
            "UpdatedDateUTC",
            "UpdatedDateUTCString",
            "CreditNotes",
        }
    ),
    # CreditNote
    "CreditNotes": frozenset({"CISDeduction", "CISRate", "UpdatedDateUTC", "UpdatedDateUTCString", "SentToContact"}),
    # Payment
    "Payments": frozenset({"PaymentType", "UpdatedDateUTC", "UpdatedDateUTCString"}),
    # Allocation
    "Allocations": frozenset({"IsDeleted"}),
    # BankTransaction
    "BankTransactions": frozenset({"PrepaymentID", "OverpaymentID", "UpdatedDateUTC", "HasAttachments"}),
    # BankTransfer
    "BankTransfers": frozenset(
        {
            "BankTransferID",
            "CurrencyRate",
            "FromBankTransactionID",
            "ToBankTransactionID",
            "HasAttachments",
            "CreatedDateUTC",
            "Status",
        }
    ),
    # ManualJournal
    "ManualJournals": frozenset({"HasAttachments", "UpdatedDateUTC"}),
    # Contact
    "Contacts": frozenset({"UpdatedDateUTC", "Website", "Discount"}),
}

# Fields whose description limits them to some Types; Xero drops them on the others.
TYPE_ONLY: dict[str, dict[str, frozenset[str]]] = {
    # Invoice.Reference: "ACCREC only - additional reference number"
    "Invoices": {"Reference": frozenset({"ACCREC"})},
    # CreditNote.Reference: "ACCRECCREDIT only - additional reference number"
    "CreditNotes": {"Reference": frozenset({"ACCRECCREDIT"})},
    # BankTransaction.Reference: "Only supported for SPEND and RECEIVE transactions."
    "BankTransactions": {"Reference": frozenset({"SPEND", "RECEIVE"})},
}
# LineItem.DiscountRate / DiscountAmount: "only supported on ACCREC invoices - ACC PAY invoices
# and credit notes in Xero do not support discounts"; the document Types whose lines keep them.
LINE_TYPE_ONLY: dict[str, frozenset[str]] = {
    "DiscountRate": frozenset({"ACCREC"}),
    "DiscountAmount": frozenset({"ACCREC"}),
}
LINE_RESOURCES = frozenset({"Invoices", "CreditNotes", "BankTransactions"})

# maxLength in the description (Invoice.InvoiceNumber, Contact.*). LineItem.Description has none
# there; 4,000 is from Xero's Invoices documentation (developer.xero.com/documentation/api/
# accounting/invoices, LineItems: "Description ... max length = 4000").
MAX_LENGTH: dict[str, dict[str, int]] = {
    "Invoices": {"InvoiceNumber": 255},
    "Contacts": {
        "ContactNumber": 50,
        "AccountNumber": 50,
        "Name": 255,
        "FirstName": 255,
        "LastName": 255,
        "CompanyNumber": 50,
        "EmailAddress": 255,
        "TaxNumber": 50,
    },
}
LINE_DESCRIPTION_MAX = 4000


def accepted_fields(resource: str, element: dict[str, Any], doc_type: Any) -> dict[str, Any]:
    """The element as Xero reads it: readOnly fields and fields not kept for `doc_type` removed."""
    kept = {k: v for k, v in element.items() if k not in READ_ONLY.get(resource, frozenset())}
    for field, types in TYPE_ONLY.get(resource, {}).items():
        if doc_type not in types:
            kept.pop(field, None)
    if resource in LINE_RESOURCES and isinstance(kept.get("LineItems"), list):
        dropped = [f for f, types in LINE_TYPE_ONLY.items() if doc_type not in types]
        kept["LineItems"] = [
            {k: v for k, v in line.items() if k not in dropped} if isinstance(line, dict) else line
            for line in kept["LineItems"]
        ]
    return kept


def check_lengths(resource: str, element: dict[str, Any]) -> None:
    """Every over-long field of the element, reported together as Xero lists an element's errors."""
    messages = [
        f"{field} must not be more than {limit} characters long."
        for field, limit in MAX_LENGTH.get(resource, {}).items()
        if isinstance(element.get(field), str) and len(element[field]) > limit
    ]
    for field in ("LineItems", "JournalLines"):
        lines = element.get(field)
        for number, line in enumerate(lines if isinstance(lines, list) else [], start=1):
            description = line.get("Description") if isinstance(line, dict) else None
            if isinstance(description, str) and len(description) > LINE_DESCRIPTION_MAX:
                messages.append(
                    f"Line {number}: Description must not be more than {LINE_DESCRIPTION_MAX} characters long."
                )
    if messages:
        raise ValidationFailure(*messages)
