"""The resources the API serves: the methods each accepts, how it creates and updates an object,
how a POST finds the object an element names, and the fields a failed element echoes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xero_emulator.domain import banking, contacts, documents, settlement
from xero_emulator.domain.errors import ValidationFailure
from xero_emulator.domain.organisation import ID_FIELD, Organisation

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    collection_methods: tuple[str, ...]
    item_methods: tuple[str, ...]
    create: Callable[[Organisation, Obj], Obj] | None = None
    update: Callable[[Organisation, Obj, Obj], Obj] | None = None
    # For POST to the collection: the existing object an element names, if any.
    existing: Callable[[Organisation, Obj], Obj | None] | None = None
    echo: tuple[str, ...] = field(default=())


def _by_id(resource: str) -> Callable[[Organisation, Obj], Obj | None]:
    def find(org: Organisation, element: Obj) -> Obj | None:
        value = element.get(ID_FIELD[resource])
        if isinstance(value, str) and value:
            found = org.objects[resource].get(value.lower())
            if found is None:
                raise ValidationFailure(f"{ID_FIELD[resource]} {value} does not exist in this organisation.")
            return found
        return None

    return find


def _document_existing(kind: documents.DocumentKind) -> Callable[[Organisation, Obj], Obj | None]:
    by_id = _by_id(kind.resource)

    def find(org: Organisation, element: Obj) -> Obj | None:
        found = by_id(org, element)
        number = element.get(kind.number_field)
        if found is None and isinstance(number, str) and number:
            found = documents.find_by_number(org, kind, number, element.get("Type"))
        return found

    return find


def _contact_existing(org: Organisation, element: Obj) -> Obj | None:
    found = _by_id("Contacts")(org, element)
    number = element.get("ContactNumber")
    if found is None and isinstance(number, str) and number:
        found = contacts.find_by_number(org, number)
    return found


def _refuse_payment_update(org: Organisation, payment: Obj, element: Obj) -> Obj:
    return settlement.delete_payment(org, payment, element)


SPECS: dict[str, ResourceSpec] = {
    "Invoices": ResourceSpec(
        "Invoices",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        lambda org, e: documents.create_document(org, documents.INVOICE, e),
        lambda org, d, e: documents.update_document(org, documents.INVOICE, d, e),
        _document_existing(documents.INVOICE),
        ("InvoiceNumber", "Reference"),
    ),
    "CreditNotes": ResourceSpec(
        "CreditNotes",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        lambda org, e: documents.create_document(org, documents.CREDIT_NOTE, e),
        lambda org, d, e: documents.update_document(org, documents.CREDIT_NOTE, d, e),
        _document_existing(documents.CREDIT_NOTE),
        ("CreditNoteNumber", "Reference"),
    ),
    "Payments": ResourceSpec(
        "Payments",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        settlement.create_payment,
        _refuse_payment_update,
        _by_id("Payments"),
        ("Reference",),
    ),
    "BankTransactions": ResourceSpec(
        "BankTransactions",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        banking.create_bank_transaction,
        banking.update_bank_transaction,
        _by_id("BankTransactions"),
        ("Reference",),
    ),
    "BankTransfers": ResourceSpec(
        "BankTransfers", ("GET", "PUT"), ("GET",), banking.create_bank_transfer, None, None, ("Reference",)
    ),
    "ManualJournals": ResourceSpec(
        "ManualJournals",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        banking.create_manual_journal,
        banking.update_manual_journal,
        _by_id("ManualJournals"),
        ("Narration",),
    ),
    "Overpayments": ResourceSpec("Overpayments", ("GET",), ("GET",)),
    "Contacts": ResourceSpec(
        "Contacts",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        contacts.create_contact,
        contacts.update_contact,
        _contact_existing,
        ("Name", "ContactNumber"),
    ),
    "Accounts": ResourceSpec("Accounts", ("GET",), ("GET",)),
}
READ_ONLY = {"Organisation": ("GET",), "TaxRates": ("GET",)}
ALLOCATION_SOURCES = ("CreditNotes", "Overpayments")
