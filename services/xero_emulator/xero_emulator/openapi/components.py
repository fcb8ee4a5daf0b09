"""The document's components: every schema by name (with the list envelopes), the request body of
each resource, and the parameters operations refer to."""

from __future__ import annotations

from xero_emulator.openapi.banking_schemas import (
    BANK_TRANSACTION,
    BANK_TRANSACTION_IN,
    BANK_TRANSFER,
    BANK_TRANSFER_IN,
    JOURNAL_LINE,
    MANUAL_JOURNAL,
    MANUAL_JOURNAL_IN,
)
from xero_emulator.openapi.document_schemas import (
    ALLOCATION,
    ALLOCATION_IN,
    CONTACT,
    CONTACT_IN,
    CREDIT_NOTE,
    CREDIT_NOTE_IN,
    INVOICE,
    INVOICE_IN,
    OVERPAYMENT,
    PAYMENT,
    PAYMENT_IN,
)
from xero_emulator.openapi.organisation_schemas import ACCOUNT, ORGANISATION, TAX_RATE
from xero_emulator.openapi.schema_parts import INT, LINE_ITEM, MSDATE, STR, UUID, Schema, arr, obj, ref
from xero_emulator.openapi.tracking_schemas import (
    LINE_ITEM_TRACKING,
    LINE_ITEM_TRACKING_IN,
    REPORT,
    TRACKING_CATEGORY,
    TRACKING_CATEGORY_IN,
    TRACKING_OPTION,
    TRACKING_OPTION_IN,
)

ENVELOPE = {"Id": UUID, "Status": STR, "ProviderName": STR, "DateTimeUTC": MSDATE}
ERROR = obj({"ErrorNumber": INT, "Type": STR, "Message": STR, "Elements": arr(ref("Element"))})
ELEMENT = obj({"ValidationErrors": arr(ref("ValidationError"))})
PROBLEM = obj(
    {
        "Type": {"type": "string", "nullable": True},
        "Title": STR,
        "Status": INT,
        "Detail": STR,
        "Instance": STR,
        "Extensions": {"type": "object"},
    }
)

SCHEMAS: dict[str, Schema] = {
    "LineItem": LINE_ITEM,
    "Contact": CONTACT,
    "Invoice": INVOICE,
    "CreditNote": CREDIT_NOTE,
    "Payment": PAYMENT,
    "Allocation": ALLOCATION,
    "BankTransaction": BANK_TRANSACTION,
    "BankTransfer": BANK_TRANSFER,
    "ManualJournal": MANUAL_JOURNAL,
    "ManualJournalLine": JOURNAL_LINE,
    "Overpayment": OVERPAYMENT,
    "Account": ACCOUNT,
    "TaxRate": TAX_RATE,
    "Organisation": ORGANISATION,
    "Error": ERROR,
    "Element": ELEMENT,
    "ValidationError": obj({"Message": STR}),
    "Problem": PROBLEM,
    "TrackingCategory": TRACKING_CATEGORY,
    "TrackingOption": TRACKING_OPTION,
    "LineItemTracking": LINE_ITEM_TRACKING,
    "LineItemTrackingInput": LINE_ITEM_TRACKING_IN,
    "ReportWithRow": REPORT,
}
# Envelopes: {"Invoices": [...]} and friends.
PLURALS = {
    "Invoices": "Invoice",
    "CreditNotes": "CreditNote",
    "Payments": "Payment",
    "Allocations": "Allocation",
    "BankTransactions": "BankTransaction",
    "BankTransfers": "BankTransfer",
    "ManualJournals": "ManualJournal",
    "Overpayments": "Overpayment",
    "Contacts": "Contact",
    "Accounts": "Account",
    "TaxRates": "TaxRate",
    "Organisations": "Organisation",
    "TrackingCategories": "TrackingCategory",
    "Options": "TrackingOption",
    "Reports": "ReportWithRow",
}
for _plural, _single in PLURALS.items():
    SCHEMAS[_plural] = obj({**ENVELOPE, _plural: arr(ref(_single))})

REQUEST_BODIES: dict[str, Schema] = {
    "Invoices": INVOICE_IN,
    "CreditNotes": CREDIT_NOTE_IN,
    "Payments": PAYMENT_IN,
    "Allocations": ALLOCATION_IN,
    "BankTransactions": BANK_TRANSACTION_IN,
    "BankTransfers": BANK_TRANSFER_IN,
    "ManualJournals": MANUAL_JOURNAL_IN,
    "Contacts": CONTACT_IN,
    "TrackingCategories": TRACKING_CATEGORY_IN,
    "Options": TRACKING_OPTION_IN,
}

PARAMETERS = {
    "xeroTenantId": {
        "in": "header",
        "name": "xero-tenant-id",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    },
    "summarizeErrors": {"in": "query", "name": "summarizeErrors", "schema": {"type": "boolean", "default": True}},
    "idempotencyKey": {
        "in": "header",
        "name": "Idempotency-Key",
        "description": "Replays the first result of a request for a few minutes; 128 characters at most.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "where": {
        "in": "query",
        "name": "where",
        "schema": {"type": "string"},
        "description": 'Field=="value" clauses joined with AND',
    },
    "page": {"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
    "IDs": {"in": "query", "name": "IDs", "style": "form", "explode": False, "schema": arr(UUID)},
    "InvoiceNumbers": {"in": "query", "name": "InvoiceNumbers", "style": "form", "explode": False, "schema": arr(STR)},
    "ContactIDs": {"in": "query", "name": "ContactIDs", "style": "form", "explode": False, "schema": arr(UUID)},
    "Statuses": {"in": "query", "name": "Statuses", "style": "form", "explode": False, "schema": arr(STR)},
    "ifModifiedSince": {
        "in": "header",
        "name": "If-Modified-Since",
        "description": "Only objects created or changed since this timestamp",
        "schema": {"type": "string", "format": "date-time"},
    },
    "includeArchived": {"in": "query", "name": "includeArchived", "schema": {"type": "boolean", "default": False}},
    "order": {
        "in": "query",
        "name": "order",
        "schema": {"type": "string"},
        "description": 'A field, optionally followed by ASC or DESC, such as "UpdatedDateUTC ASC"',
    },
    "fromDate": {"in": "query", "name": "fromDate", "schema": {"type": "string", "format": "date"}},
    "toDate": {"in": "query", "name": "toDate", "schema": {"type": "string", "format": "date"}},
    "date": {"in": "query", "name": "date", "schema": {"type": "string", "format": "date"}},
    "paymentsOnly": {"in": "query", "name": "paymentsOnly", "schema": {"type": "boolean"}},
    **{
        name: {"in": "query", "name": name, "schema": {"type": "string"}, "description": description}
        for name, description in (
            ("trackingCategoryID", "Split the report by this tracking category (a column per option)"),
            ("trackingOptionID", "Only lines with this option of trackingCategoryID"),
            ("trackingCategoryID2", "A second tracking category"),
            ("trackingOptionID2", "Only lines with this option of trackingCategoryID2"),
        )
    },
}
