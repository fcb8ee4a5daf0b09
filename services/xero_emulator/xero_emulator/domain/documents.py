"""Invoices (ACCREC/ACCPAY) and credit notes (ACCRECCREDIT/ACCPAYCREDIT): creation, edits and
Xero's status rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from xero_emulator.domain.amounts import ZERO, optional_text
from xero_emulator.domain.currency import document_currency
from xero_emulator.domain.errors import Errors, ValidationFailure
from xero_emulator.domain.lines import build_lines, line_amount_types, totals
from xero_emulator.domain.organisation import Organisation, contact_summary, new_id, now_utc
from xero_emulator.jsonio import date_string, ms_date, ms_datetime

INVOICE_TYPES = ("ACCREC", "ACCPAY")
CREDIT_NOTE_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
CREATE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
# Status changes Xero allows by POSTing a new Status (VOIDED has its own payment rule below).
TRANSITIONS = {
    "DRAFT": {"SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"VOIDED"},
    "PAID": set(),
    "VOIDED": set(),
    "DELETED": set(),
}
EDITABLE = (
    "Contact",
    "Date",
    "DueDate",
    "LineItems",
    "LineAmountTypes",
    "Reference",
    "InvoiceNumber",
    "CreditNoteNumber",
)


class DocumentKind:
    def __init__(self, resource: str, id_field: str, number_field: str, types: tuple[str, ...], prefix: str) -> None:
        self.resource = resource
        self.id_field = id_field
        self.number_field = number_field
        self.types = types
        self.prefix = prefix

    @property
    def is_credit(self) -> bool:
        return self.resource == "CreditNotes"

    @property
    def label(self) -> str:
        return "credit note" if self.is_credit else "invoice"


INVOICE = DocumentKind("Invoices", "InvoiceID", "InvoiceNumber", INVOICE_TYPES, "INV")
CREDIT_NOTE = DocumentKind("CreditNotes", "CreditNoteID", "CreditNoteNumber", CREDIT_NOTE_TYPES, "CN")


def is_sales(doc_type: str) -> bool:
    return doc_type in ("ACCREC", "ACCRECCREDIT")


def create_document(org: Organisation, kind: DocumentKind, element: dict[str, Any]) -> dict[str, Any]:
    doc_type = element.get("Type")
    if doc_type not in kind.types:
        raise ValidationFailure(f"Type must be one of {', '.join(kind.types)}.")
    status = element.get("Status", "DRAFT")
    if status not in CREATE_STATUSES:
        raise ValidationFailure(f"A new {kind.label} must have Status DRAFT, SUBMITTED or AUTHORISED.")
    currency_code, currency_rate = document_currency(org, element)
    doc: dict[str, Any] = {
        "Type": doc_type,
        kind.id_field: new_id(),
        "Status": status,
        "CurrencyCode": currency_code,
        "CurrencyRate": currency_rate,
        "HasAttachments": False,
        "HasErrors": False,
        "Payments": [],
        "Allocations" if kind.is_credit else "CreditNotes": [],
        "Overpayments": [],
        "Prepayments": [],
        "AmountPaid": ZERO,
        "AmountCredited": ZERO,
    }
    if kind.is_credit:
        doc.pop("Overpayments")
        doc.pop("Prepayments")
        doc.pop("AmountPaid")
        doc.pop("AmountCredited")
    _apply_content(org, kind, doc, element, creating=True)
    if status == "AUTHORISED":
        _check_authorise(org, kind, doc)
    if kind.is_credit:
        doc["RemainingCredit"] = doc["Total"]
    else:
        doc["AmountDue"] = doc["Total"]
    doc["UpdatedDateUTC"] = ms_datetime(now_utc())
    return org.put(kind.resource, doc)


def update_document(
    org: Organisation, kind: DocumentKind, doc: dict[str, Any], element: dict[str, Any]
) -> dict[str, Any]:
    if "Type" in element and element["Type"] != doc["Type"]:
        raise ValidationFailure(f"The Type of an existing {kind.label} cannot be changed.")
    new_status = element.get("Status", doc["Status"])
    edits = [f for f in EDITABLE if f in element and f != kind.number_field] + (
        [kind.number_field] if element.get(kind.number_field) not in (None, doc.get(kind.number_field)) else []
    )
    if edits:
        if doc["Status"] not in CREATE_STATUSES:
            raise ValidationFailure(f"{_article(kind)} not of valid status for modification")
        if _has_money_applied(kind, doc):
            raise ValidationFailure(
                "This document cannot be edited as it has a payment or credit note allocated to it."
            )
        if doc["Status"] == "AUTHORISED":
            org.check_lock_date(doc["_date"])
        applied = doc["Total"] - (doc["RemainingCredit"] if kind.is_credit else doc["AmountDue"])
        _apply_content(org, kind, doc, element, creating=False)
        if kind.is_credit:
            doc["RemainingCredit"] = doc["Total"] - applied
        else:
            doc["AmountDue"] = doc["Total"] - applied
    if new_status != doc["Status"]:
        change_status(org, kind, doc, new_status)
    org.touch(kind.resource, doc)
    return doc


def change_status(org: Organisation, kind: DocumentKind, doc: dict[str, Any], new_status: Any) -> None:
    current = doc["Status"]
    if new_status not in TRANSITIONS.get(current, set()):
        if current == "AUTHORISED" and new_status == "DELETED":
            raise ValidationFailure(f"An AUTHORISED {kind.label} cannot be deleted; void it instead (Status VOIDED).")
        if current == "PAID" and new_status == "VOIDED":
            raise ValidationFailure(
                f"This {kind.label} is PAID and cannot be voided: remove its payments and allocations first."
            )
        raise ValidationFailure(f"{_article(kind)} not of valid status for modification")
    if new_status == "VOIDED":
        if _has_money_applied(kind, doc):
            raise ValidationFailure(
                f"This {kind.label} has payments or allocations applied. Delete the payments and allocations "
                "first, then void it."
            )
        org.check_lock_date(doc["_date"])
    if new_status == "AUTHORISED":
        _check_authorise(org, kind, doc)
    doc["Status"] = new_status


def _check_authorise(org: Organisation, kind: DocumentKind, doc: dict[str, Any]) -> None:
    org.check_lock_date(doc["_date"])
    if not kind.is_credit and "_due" not in doc:
        raise ValidationFailure("Due Date is required for an AUTHORISED invoice.")
    if doc["Type"] in NUMBERED_UNIQUE:
        _check_unique_number(org, kind, doc, doc.get(kind.number_field))


def _has_money_applied(kind: DocumentKind, doc: dict[str, Any]) -> bool:
    if kind.is_credit:
        return bool(doc["RemainingCredit"] != doc["Total"])
    return bool(doc["AmountPaid"] != 0 or doc["AmountCredited"] != 0)


def _article(kind: DocumentKind) -> str:
    return "Credit note" if kind.is_credit else "Invoice"


# Numbers Xero keeps unique (Invoice.InvoiceNumber "ACCREC - Unique alpha numeric code",
# CreditNote.CreditNoteNumber "ACCRECCREDIT - Unique alpha numeric code"; the answers "Invoice # must
# be unique." (the description's example) and "Credit Note # must be unique." (XeroAPI/Xero-Net#257));
# ACCPAY and ACCPAYCREDIT numbers are the supplier's and may repeat. A VOIDED invoice keeps its
# number, a DELETED one frees it (Xero's help article "Delete or void an invoice"; docs/emulator.md
# "Numbers"); that credit notes do the same, and
# that numbers compare without case, are the emulator's choices ("Known differences from Xero").
NUMBERED_UNIQUE = ("ACCREC", "ACCRECCREDIT")


def _check_unique_number(org: Organisation, kind: DocumentKind, doc: dict[str, Any], number: Any) -> None:
    if not number:
        return
    for other in org.objects[kind.resource].values():
        if (
            other is not doc
            and other["Type"] == doc["Type"]
            and other.get(kind.number_field, "").lower() == str(number).lower()
            and other["Status"] != "DELETED"
        ):
            raise ValidationFailure(f"{'Invoice' if not kind.is_credit else 'Credit Note'} # must be unique.")


def _apply_content(
    org: Organisation, kind: DocumentKind, doc: dict[str, Any], element: dict[str, Any], *, creating: bool
) -> None:
    """Validates every editable field together so one response lists all of an element's errors."""
    errors = Errors()
    merged = {**{k: v for k, v in doc.items() if k in ("Contact", "LineAmountTypes")}, **element}
    contact = doc.get("Contact")
    if creating or "Contact" in element:
        found = errors.check(lambda: org.resolve_contact(merged.get("Contact")))
        contact = contact_summary(found) if found is not None else None
    day: dt.date | None = doc.get("_date")
    if creating or "Date" in element:
        day = errors.check(lambda: org.parse_date_field(element, "Date", required=False) or now_utc().date())
    due: dt.date | None = doc.get("_due")
    if "DueDate" in element:
        due = errors.check(lambda: org.parse_date_field(element, "DueDate", required=False))
    errors.check(lambda: optional_text(element, "Reference"))
    number = errors.check(lambda: optional_text(element, kind.number_field))
    amount_types = errors.check(lambda: line_amount_types(merged))
    lines = doc.get("LineItems")
    if amount_types is not None and (creating or "LineItems" in element or "LineAmountTypes" in element):
        source = {"LineItems": element.get("LineItems", doc.get("LineItems"))}
        lines = errors.check(lambda: build_lines(org, source, str(amount_types)))
    if number and doc["Type"] in NUMBERED_UNIQUE:
        errors.check(lambda: _check_unique_number(org, kind, doc, number))
    errors.raise_any()
    assert day is not None and lines is not None and amount_types is not None
    doc["Contact"] = contact
    summed = totals(lines, amount_types)
    if summed.total < 0:
        raise ValidationFailure(f"The {kind.label} total cannot be negative.")
    doc["_date"] = day
    doc["Date"] = ms_date(day)
    doc["DateString"] = date_string(day)
    if due is not None:
        doc["_due"] = due
        doc["DueDate"] = ms_date(due)
        doc["DueDateString"] = date_string(due)
    doc["LineAmountTypes"] = amount_types
    doc["LineItems"] = lines
    doc["SubTotal"] = summed.sub_total
    doc["TotalTax"] = summed.total_tax
    doc["Total"] = summed.total
    if isinstance(element.get("Reference"), str):
        doc["Reference"] = element["Reference"]
    if number:
        doc[kind.number_field] = number
    elif creating:
        if doc["Type"] in ("ACCREC", "ACCRECCREDIT"):
            doc[kind.number_field] = org.next_number(kind.prefix)
        else:
            doc[kind.number_field] = ""


def find_by_number(org: Organisation, kind: DocumentKind, number: str, doc_type: Any) -> dict[str, Any] | None:
    """Xero's POST updates the ACCREC invoice that already carries the InvoiceNumber."""
    if doc_type not in ("ACCREC", "ACCRECCREDIT"):
        return None
    return next(
        (
            d
            for d in org.objects[kind.resource].values()
            if d["Type"] == doc_type and d.get(kind.number_field) == number and d["Status"] != "DELETED"
        ),
        None,
    )
