"""The building blocks of the emulator's OpenAPI schemas: JSON types, the helpers that compose
them, and the fragments several resources share (line items, references, document fields)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
UUID: Schema = {"type": "string", "format": "uuid"}
NUM: Schema = {"type": "number", "format": "double"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
MSDATE: Schema = {"type": "string", "x-is-msdate": True}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def obj(props: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


LINE_AMOUNT_TYPES = enum("Exclusive", "Inclusive", "NoTax")
# Xero marks batch elements with these; which of them a schema has follows Xero's description.
VALIDATION = {"ValidationErrors": arr(ref("ValidationError")), "StatusAttributeString": STR}
HAS_ERRORS = {"HasErrors": BOOL}
HAS_VALIDATION_ERRORS = {"HasValidationErrors": BOOL}
INPUT_DATE: Schema = {"type": "string", "format": "date"}

LINE_ITEM_IN = obj(
    {
        "Description": STR,
        "Quantity": NUM,
        "UnitAmount": NUM,
        "AccountCode": STR,
        "AccountID": UUID,
        "TaxType": STR,
        "TaxAmount": NUM,
        "LineAmount": NUM,
        "DiscountRate": NUM,
        "ItemCode": STR,
        "Tracking": {**arr(ref("LineItemTrackingInput")), "maxItems": 2},
    }
)
LINE_ITEM = obj({**LINE_ITEM_IN["properties"], "LineItemID": UUID, "Tracking": arr(ref("LineItemTracking"))})
CONTACT_REF = obj({"ContactID": UUID, "ContactNumber": STR, "Name": STR})
ACCOUNT_REF = obj({"AccountID": UUID, "Code": STR})

# The fields invoices, credit notes, bank transactions and overpayments share, as sent and as returned.
DOC_IN: dict[str, Schema] = {
    "Contact": CONTACT_REF,
    "Date": INPUT_DATE,
    "Status": enum("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED", "VOIDED"),
    "LineAmountTypes": LINE_AMOUNT_TYPES,
    "LineItems": arr(LINE_ITEM_IN),
    "Reference": STR,
    "CurrencyCode": STR,
    "CurrencyRate": NUM,
}
DOC_OUT: dict[str, Schema] = {
    "Contact": ref("Contact"),
    "Date": MSDATE,
    "Status": enum("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "DELETED", "VOIDED"),
    "LineAmountTypes": LINE_AMOUNT_TYPES,
    "LineItems": arr(ref("LineItem")),
    "Reference": STR,
    "SubTotal": NUM,
    "TotalTax": NUM,
    "Total": NUM,
    "CurrencyCode": STR,
    "CurrencyRate": NUM,
    "UpdatedDateUTC": MSDATE,
    "HasAttachments": BOOL,
    **VALIDATION,
}
