"""The mapper's operations as Xero Accounting API elements, and Xero's answers as ids.

Every element carries a deterministic tag naming the Actionstep record ("[AS-CBP-7001]", plus
" #<generation>" when the record is posted again after an unlink), in a field Xero keeps for that
type (`tag_field`), so a look-up after an uncertain outcome finds this record's object: never
another record's that happens to carry the same user reference and amount (two instalments
referenced "Smith"), and never the orphan of an earlier cycle. Which field carries it follows
Xero's OpenAPI description (../shared/xero-openapi/xero_accounting.yaml), see docs/poster.md:
- Invoice.Reference is "ACCREC only" and CreditNote.Reference "ACCRECCREDIT only": Xero drops them
  on bills and supplier credits (XeroAPI/xero-mcp-server#121, XeroAPI/Xero-NetStandard#249). There
  the tag goes in InvoiceNumber / CreditNoteNumber, the supplier's number, which Xero keeps and
  shows as the bill's reference (not unique for ACCPAY, so the tag is what makes it ours).
- BankTransaction.Reference is "Only supported for SPEND and RECEIVE transactions": on an
  overpayment the tag goes in the first line's Description (LineItem.Description, kept).
- Payment.Reference, BankTransfer.Reference and ManualJournal.Narration carry no restriction.
- Allocations have no field to carry it: see the dispatcher's look-up of allocations.

A line of a matter (tracked_action_id, reports by matter) carries the matter's tracking option in
its Tracking element (`line_tracking`)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.money import cents_to_decimal

from xerolink_poster.adapters.operations import OBJECT_TYPE_BY_BODY, body_of
from xerolink_poster.domain.matters import LineTracking
from xerolink_poster.domain.records import XeroObjectRef

Element = dict[str, Any]
# A matter's option on each tracked line: None when the connection does not track matters.
Tracking = Mapping[int, LineTracking] | None


class MissingTracking(Exception):
    """A line of a matter whose option the dispatcher did not find: it is never sent without it."""


# Operation body -> (Xero resource, id field, number field).
RESOURCES: dict[str, tuple[str, str, str]] = {
    "invoice": ("Invoices", "InvoiceID", "InvoiceNumber"),
    "credit_note": ("CreditNotes", "CreditNoteID", "CreditNoteNumber"),
    "payment": ("Payments", "PaymentID", ""),
    "allocation": ("Allocations", "AllocationID", ""),
    "bank_transaction": ("BankTransactions", "BankTransactionID", ""),
    "bank_transfer": ("BankTransfers", "BankTransferID", ""),
    "manual_journal": ("ManualJournals", "ManualJournalID", ""),
}
_LINE_AMOUNT_TYPES = {
    xero_pb2.LINE_AMOUNT_TYPES_EXCLUSIVE: "Exclusive",
    xero_pb2.LINE_AMOUNT_TYPES_INCLUSIVE: "Inclusive",
    xero_pb2.LINE_AMOUNT_TYPES_NO_TAX: "NoTax",
}
_DOC_STATUS = {
    xero_pb2.DOCUMENT_STATUS_DRAFT: "DRAFT",
    xero_pb2.DOCUMENT_STATUS_SUBMITTED: "SUBMITTED",
    xero_pb2.DOCUMENT_STATUS_AUTHORISED: "AUTHORISED",
}
# BankTransaction.Reference: "Only supported for SPEND and RECEIVE transactions" (Xero's OpenAPI).
_REFERENCE_BANK_TYPES = (xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE, xero_pb2.BANK_TRANSACTION_TYPE_SPEND)
_OVERPAYMENT_BANK_TYPES = (
    xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE_OVERPAYMENT,
    xero_pb2.BANK_TRANSACTION_TYPE_SPEND_OVERPAYMENT,
)
_BANK_TYPES = {
    xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE: "RECEIVE",
    xero_pb2.BANK_TRANSACTION_TYPE_SPEND: "SPEND",
    xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE_OVERPAYMENT: "RECEIVE-OVERPAYMENT",
    xero_pb2.BANK_TRANSACTION_TYPE_SPEND_OVERPAYMENT: "SPEND-OVERPAYMENT",
}


@dataclass(frozen=True)
class Target:
    """Where an element goes: one batched PUT per (path) groups elements of one endpoint."""

    body: str
    resource: str
    path: str  # relative to /api.xro/2.0/, e.g. "Invoices" or "CreditNotes/<id>/Allocations"
    collection: str  # JSON key of the element list
    # Xero declares summarizeErrors (an outcome per element) for this endpoint's PUT. Its OpenAPI
    # declares it for Invoices, CreditNotes, Payments, Allocations, BankTransactions,
    # ManualJournals and Contacts, not for BankTransfers: those go one per call, without it.
    per_element: bool = True


def kind_code(kind: int) -> str:
    """Initials of the kind's name: TRANSACTION_KIND_CLIENT_BILL_PAYMENT -> CBP."""
    name = common_pb2.TransactionKind.Name(kind).removeprefix("TRANSACTION_KIND_")  # type: ignore[arg-type]
    return "".join(word[0] for word in name.split("_"))


_UNQUOTABLE = str.maketrans({'"': "'", "\\": "/"})


def tracking_reference(reference: str, kind: int, record_id: int, generation: int) -> str:
    tag = f"[AS-{kind_code(kind)}-{record_id}]"
    # Stripped: a value Xero stores trimmed would no longer equal what the look-up asks for. No
    # double quote or backslash: Xero's `where` takes the value as a quoted string literal, and
    # one the look-up cannot quote is one it cannot find (a lost answer would then post it twice).
    reference = reference.strip().translate(_UNQUOTABLE)
    base = f"{reference} {tag}" if reference else tag
    return base if generation <= 1 else f"{base} #{generation}"


def _date(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _amount(value: money_pb2.Money) -> Decimal:
    return cents_to_decimal(value.units)


def line_tracking(tracking: LineTracking) -> list[Element]:
    """A line's Tracking element. Xero's OpenAPI LineItemTracking (ManualJournalLine.Tracking:
    TrackingCategory) holds TrackingCategoryID, TrackingOptionID, Name (the category's) and Option
    (the option's name), none marked required; Xero's own examples send Name and Option
    (quoted in calcinai/xero-php#70); SDK users send only the ids (XeroAPI/xero-node#516,
    XeroAPI/xero-php-oauth2#228), which Xero sometimes ignored (xero-node#516) or refused on
    purchase orders (XeroAPI/xero-php-oauth2#268). Which pair Xero requires, and which wins when
    they differ, is not documented: both are sent, the names as Xero has them (the dispatcher keeps
    them current: service_layer/dispatch/matters.py)."""
    return [
        {
            "TrackingCategoryID": tracking.category_id,
            "TrackingOptionID": tracking.option_id,
            "Name": tracking.category_name,
            "Option": tracking.option_name,
        }
    ]


def _track(line: Element, action_id: int, tracking: Tracking) -> Element:
    if tracking is None or not action_id:
        return line
    found = tracking.get(action_id)
    if found is None:
        raise MissingTracking(f"no tracking option for matter {action_id}")
    line["Tracking"] = line_tracking(found)
    return line


def tracked_matters(operation: xero_pb2.Operation) -> set[int]:
    """The matters the operation's lines carry (tracked_action_id)."""
    body = body_of(operation)
    if body in ("invoice", "credit_note", "bank_transaction"):
        return {i.tracked_action_id for i in getattr(operation, body).line_items if i.tracked_action_id}
    if body == "manual_journal":
        return {i.tracked_action_id for i in operation.manual_journal.journal_lines if i.tracked_action_id}
    return set()


def matters_of_mapped(serialized: bytes) -> set[int]:
    """The matters a posting's operations (an outbox entry's serialized MapTransactionResponse)
    carry on any line."""
    mapped = mapper_pb2.MapTransactionResponse()
    mapped.ParseFromString(serialized)
    return set().union(*(tracked_matters(o) for o in mapped.operations))


def _lines(items: Any, tracking: Tracking) -> list[Element]:
    out: list[Element] = []
    for item in items:
        line: Element = {
            "Description": item.description,
            "Quantity": Decimal(item.quantity or "1"),
            "UnitAmount": Decimal(item.unit_amount) if item.unit_amount else _amount(item.line_amount),
            "AccountCode": item.account_code,
            "LineAmount": _amount(item.line_amount),
            "TaxAmount": _amount(item.tax_amount),
        }
        if item.tax_type:
            line["TaxType"] = item.tax_type
        out.append(_track(line, item.tracked_action_id, tracking))
    return out


def _currency(element: Element, code: str, rate: str) -> Element:
    if code:
        element["CurrencyCode"] = code
    if rate:
        element["CurrencyRate"] = Decimal(rate)
    return element


def target_of(operation: xero_pb2.Operation, resolved: dict[str, str]) -> Target:
    body = body_of(operation)
    resource, _, _ = RESOURCES[body]
    if body == "allocation":
        credit_note_id = resolved["credit_note"]
        return Target(body, "Allocations", f"CreditNotes/{credit_note_id}/Allocations", "Allocations")
    return Target(body, resource, resource, resource, per_element=body != "bank_transfer")


def element_of(
    operation: xero_pb2.Operation,
    reference: str,
    contact_id: str,
    resolved: dict[str, str],
    tracking: Tracking = None,
) -> Element:
    """The Xero element of one operation. `resolved` holds the Xero ids of the documents it
    refers to ("document", "credit_note", "invoice"); `contact_id` its contact; `tracking` the
    option of each matter its lines carry (None: the connection does not track matters)."""
    body = body_of(operation)
    if body == "invoice":
        inv = operation.invoice
        element: Element = {
            "Type": xero_pb2.InvoiceType.Name(inv.type).removeprefix("INVOICE_TYPE_"),
            "Contact": {"ContactID": contact_id},
            "Date": _date(inv.date),
            "LineAmountTypes": _LINE_AMOUNT_TYPES.get(inv.line_amount_types, "Exclusive"),
            "LineItems": _lines(inv.line_items, tracking),
            "Status": _DOC_STATUS.get(inv.status, "AUTHORISED"),
        }
        if inv.HasField("due_date"):
            element["DueDate"] = _date(inv.due_date)
        if inv.type == xero_pb2.INVOICE_TYPE_ACCREC:
            element["Reference"] = reference
            if inv.invoice_number:
                element["InvoiceNumber"] = inv.invoice_number
        else:
            element["InvoiceNumber"] = reference
        return _currency(element, inv.currency_code, inv.currency_rate)
    if body == "credit_note":
        note = operation.credit_note
        element = {
            "Type": xero_pb2.CreditNoteType.Name(note.type).removeprefix("CREDIT_NOTE_TYPE_"),
            "Contact": {"ContactID": contact_id},
            "Date": _date(note.date),
            "LineAmountTypes": _LINE_AMOUNT_TYPES.get(note.line_amount_types, "Exclusive"),
            "LineItems": _lines(note.line_items, tracking),
            "Status": _DOC_STATUS.get(note.status, "AUTHORISED"),
        }
        if note.type == xero_pb2.CREDIT_NOTE_TYPE_ACCRECCREDIT:
            element["Reference"] = reference
            if note.credit_note_number:
                element["CreditNoteNumber"] = note.credit_note_number
        else:
            element["CreditNoteNumber"] = reference
        return _currency(element, note.currency_code, note.currency_rate)
    if body == "payment":
        pay = operation.payment
        doc_key = {
            xero_pb2.OBJECT_TYPE_INVOICE: ("Invoice", "InvoiceID"),
            xero_pb2.OBJECT_TYPE_CREDIT_NOTE: ("CreditNote", "CreditNoteID"),
            xero_pb2.OBJECT_TYPE_OVERPAYMENT: ("Overpayment", "OverpaymentID"),
        }[pay.document_type]
        element = {
            doc_key[0]: {doc_key[1]: resolved["document"]},
            "Account": {"Code": pay.account_code},
            "Date": _date(pay.date),
            "Amount": _amount(pay.amount),
            "Reference": reference,
        }
        if pay.currency_rate:
            element["CurrencyRate"] = Decimal(pay.currency_rate)
        return element
    if body == "allocation":
        alloc = operation.allocation
        return {
            "Invoice": {"InvoiceID": resolved["invoice"]},
            "Amount": _amount(alloc.amount),
            "Date": _date(alloc.date),
        }
    if body == "bank_transaction":
        txn = operation.bank_transaction
        lines = _lines(txn.line_items, tracking)
        element = {
            "Type": _BANK_TYPES[txn.type],
            "BankAccount": {"Code": txn.bank_account_code},
            "Date": _date(txn.date),
            "LineAmountTypes": _LINE_AMOUNT_TYPES.get(txn.line_amount_types, "Exclusive"),
            "LineItems": lines,
        }
        if txn.type in _REFERENCE_BANK_TYPES:
            element["Reference"] = reference
        elif lines:
            lines[0]["Description"] = reference
        if contact_id:
            element["Contact"] = {"ContactID": contact_id}
        return _currency(element, txn.currency_code, txn.currency_rate)
    if body == "bank_transfer":
        transfer = operation.bank_transfer
        return {
            "FromBankAccount": {"Code": transfer.from_bank_account_code},
            "ToBankAccount": {"Code": transfer.to_bank_account_code},
            "Amount": _amount(transfer.amount),
            "Date": _date(transfer.date),
            "Reference": reference,
        }
    journal = operation.manual_journal
    lines = []
    for item in journal.journal_lines:
        line: Element = {"LineAmount": _amount(item.line_amount), "AccountCode": item.account_code}
        if item.description:
            line["Description"] = item.description
        if item.tax_type:
            line["TaxType"] = item.tax_type
            line["TaxAmount"] = _amount(item.tax_amount)
        lines.append(_track(line, item.tracked_action_id, tracking))
    return {
        "Narration": reference,
        "Date": _date(journal.date),
        "LineAmountTypes": _LINE_AMOUNT_TYPES.get(journal.line_amount_types, "NoTax"),
        "JournalLines": lines,
        "Status": "DRAFT" if journal.status == xero_pb2.MANUAL_JOURNAL_STATUS_DRAFT else "POSTED",
    }


def unique_number(operation: xero_pb2.Operation) -> tuple[int, str, str] | None:
    """(ObjectType, number field, number) of a document whose number Xero keeps unique, a VOIDED
    one's included: an ACCREC invoice ("ACCREC - Unique alpha numeric code", Invoice.InvoiceNumber)
    or an ACCRECCREDIT credit note ("ACCRECCREDIT - Unique alpha numeric code",
    CreditNote.CreditNoteNumber), carrying a number. None otherwise: supplier numbers may repeat."""
    body = body_of(operation)
    if body == "invoice" and operation.invoice.type == xero_pb2.INVOICE_TYPE_ACCREC:
        number = operation.invoice.invoice_number
        return (xero_pb2.OBJECT_TYPE_INVOICE, "InvoiceNumber", number) if number else None
    if body == "credit_note" and operation.credit_note.type == xero_pb2.CREDIT_NOTE_TYPE_ACCRECCREDIT:
        number = operation.credit_note.credit_note_number
        return (xero_pb2.OBJECT_TYPE_CREDIT_NOTE, "CreditNoteNumber", number) if number else None
    return None


def tag_base(operation: xero_pb2.Operation) -> str:
    """The mapper's value of the field that carries the record's tag (see the module doc), before
    the tag is added: the user's reference, or the supplier's number on bills and supplier
    credits, or the first line's description on an overpayment."""
    body = body_of(operation)
    if body == "manual_journal":
        return operation.manual_journal.narration
    if body == "allocation":
        return ""
    if body == "invoice" and operation.invoice.type != xero_pb2.INVOICE_TYPE_ACCREC:
        return operation.invoice.invoice_number
    if body == "credit_note" and operation.credit_note.type != xero_pb2.CREDIT_NOTE_TYPE_ACCRECCREDIT:
        return operation.credit_note.credit_note_number
    if body == "bank_transaction" and operation.bank_transaction.type in _OVERPAYMENT_BANK_TYPES:
        items = operation.bank_transaction.line_items
        return items[0].description if items else ""
    value: str = getattr(operation, body).reference
    return value


def contact_of(operation: xero_pb2.Operation) -> xero_pb2.Contact | None:
    body = body_of(operation)
    if body in ("invoice", "credit_note", "bank_transaction"):
        contact: xero_pb2.Contact = getattr(operation, body).contact
        if contact.contact_number or contact.name:
            return contact
    return None


def contact_element(contact: xero_pb2.Contact) -> Element:
    element: Element = {"Name": contact.name, "ContactNumber": contact.contact_number}
    for key, value in (
        ("FirstName", contact.first_name),
        ("LastName", contact.last_name),
        ("EmailAddress", contact.email_address),
        ("TaxNumber", contact.tax_number),
    ):
        if value:
            element[key] = value
    return element


def amount_of(answered: object) -> Decimal | None:
    """An amount Xero answered with, as a number (Xero may write 100 or 100.0 where xerolink sent
    100.00); None when it is none (missing, text, a signalling NaN no comparison takes)."""
    try:
        amount = Decimal(str(answered))
    except InvalidOperation:
        return None
    return None if amount.is_snan() else amount


def same_amount(answered: object, sent: Decimal) -> bool:
    """An amount Xero answered with against one xerolink sent, as numbers."""
    return amount_of(answered) == sent


# Each type's Status values, as Xero's OpenAPI enumerates them (Invoice, CreditNote, Payment,
# BankTransaction, BankTransfer, ManualJournal `Status`): (live, deleted or voided). A value in
# neither, ManualJournal's ARCHIVED included (the OpenAPI does not say whether it still posts), is
# no reading of the object's state.
STATUSES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "invoice": (frozenset({"DRAFT", "SUBMITTED", "AUTHORISED", "PAID"}), frozenset({"DELETED", "VOIDED"})),
    "credit_note": (frozenset({"DRAFT", "SUBMITTED", "AUTHORISED", "PAID"}), frozenset({"DELETED", "VOIDED"})),
    "payment": (frozenset({"AUTHORISED"}), frozenset({"DELETED"})),
    "bank_transaction": (frozenset({"AUTHORISED"}), frozenset({"DELETED", "VOIDED"})),
    "bank_transfer": (frozenset({"AUTHORISED"}), frozenset({"DELETED"})),
    "manual_journal": (frozenset({"DRAFT", "POSTED"}), frozenset({"DELETED", "VOIDED"})),
}


def is_live(body: str, answered: Element) -> bool | None:
    """Whether an object Xero listed is live (True) or deleted or voided (False) by its Status;
    None when its Status is none of its type's values (missing, not text, padded, unknown)."""
    status = answered.get("Status")
    if not isinstance(status, str) or not status.isascii():
        return None  # upper() reads a dotless i or a long s as I or S: no value of Xero's
    live, dead = STATUSES[body]
    status = status.upper()  # the case Xero writes is its enum's; another case reads the same
    return True if status in live else False if status in dead else None


def object_type_of(body: str) -> int:
    return OBJECT_TYPE_BY_BODY[body]


def ids_of(body: str, answer: Element) -> tuple[str, str]:
    """(Xero id, document number) of an element Xero answered with."""
    _, id_field, number_field = RESOURCES[body]
    return str(answer.get(id_field, "")), str(answer.get(number_field, "")) if number_field else ""


@dataclass(frozen=True)
class Lookup:
    """How to find the object an uncertain call may have created: a GET of `resource` with a
    `where` clause on fields Xero keeps for the type, then `tagged` checks each answer carries
    this record's tag exactly (Xero's string filters are case-insensitive).

    `clause` is the condition on the tag alone, which other records' look-ups of the same field
    are ORed with in one GET (empty: looked up on its own, by `where`); what else `where` asks
    (the type, a payment's amount) is then checked on each object listed, by `matches`."""

    resource: str
    where: str
    tag: str
    tag_path: tuple[str, ...]
    clause: str = ""
    type: str = ""
    amount: Decimal | None = None

    def tagged(self, item: Element) -> bool:
        value: Any = item
        for part in self.tag_path:
            if isinstance(value, list):
                value = value[int(part)] if value and part.isdigit() and len(value) > int(part) else None
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return False
        return isinstance(value, str) and _canonical(value) == _canonical(self.tag)

    def matches(self, item: Element) -> bool | None:
        """Whether the object carries this record's tag and is what `where` asks for; None when it
        carries the tag but its Type or Amount cannot be read (Xero lists both on every object of
        these types: garbled on the way, it proves nothing)."""
        if not self.tagged(item):
            return False
        if self.type:
            kind = item.get("Type")
            if not isinstance(kind, str):
                return None
            if kind.upper() != self.type:
                return False
        if self.amount is None:
            return True
        amount = amount_of(item.get("Amount"))
        return None if amount is None else amount == self.amount


# Characters that show nothing, which a store may drop from a text it keeps.
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def _canonical(text: str) -> str:
    """A tag as compared with the one an object carries: composed (NFC), without characters that
    show nothing, without surrounding spaces. A store may keep a text in another unicode form;
    the record's id in every tag keeps two records' tags apart whatever the form."""
    return unicodedata.normalize("NFC", text.translate(_ZERO_WIDTH)).strip()


def _quoted(value: str) -> str:
    return value.replace('"', "")


def lookup_of(operation: xero_pb2.Operation, tag: str, contact_id: str) -> Lookup | None:
    """The look-up for one operation whose tagged field holds `tag`; None for allocations, which
    carry no field for it (the dispatcher finds them on their credit note)."""
    body = body_of(operation)
    resource = RESOURCES[body][0]
    quoted = _quoted(tag)
    if body == "allocation":
        return None
    if body == "manual_journal":
        clause = f'Narration=="{quoted}"'
        return Lookup(resource, clause, tag, ("Narration",), clause)
    if body == "invoice":
        kind = xero_pb2.InvoiceType.Name(operation.invoice.type).removeprefix("INVOICE_TYPE_")
        field = "Reference" if operation.invoice.type == xero_pb2.INVOICE_TYPE_ACCREC else "InvoiceNumber"
        clause = f'{field}=="{quoted}"'
        return Lookup(resource, f'Type=="{kind}" AND {clause}', tag, (field,), clause, kind)
    if body == "credit_note":
        kind = xero_pb2.CreditNoteType.Name(operation.credit_note.type).removeprefix("CREDIT_NOTE_TYPE_")
        accrec = operation.credit_note.type == xero_pb2.CREDIT_NOTE_TYPE_ACCRECCREDIT
        field = "Reference" if accrec else "CreditNoteNumber"
        clause = f'{field}=="{quoted}"'
        return Lookup(resource, f'Type=="{kind}" AND {clause}', tag, (field,), clause, kind)
    if body == "bank_transaction" and operation.bank_transaction.type in _OVERPAYMENT_BANK_TYPES:
        # No Reference on overpayments: narrowed by type and contact, matched by the tagged line.
        kind = _BANK_TYPES[operation.bank_transaction.type]
        where = f'Type=="{kind}" AND Contact.ContactID==Guid("{_quoted(contact_id)}")'
        return Lookup(resource, where, tag, ("LineItems", "0", "Description"))
    clause = f'Reference=="{quoted}"'
    if body == "payment":
        amount = _amount(operation.payment.amount)
        return Lookup(resource, f"{clause} AND Amount=={amount}", tag, ("Reference",), clause, amount=amount)
    return Lookup(resource, clause, tag, ("Reference",), clause)


def makes_overpayment(operation: xero_pb2.Operation) -> bool:
    """Whether Xero makes an Overpayment with this operation's object (its id then on the answer's
    BankTransaction.OverpaymentID)."""
    return body_of(operation) == "bank_transaction" and operation.bank_transaction.type in _OVERPAYMENT_BANK_TYPES


def created_objects(body: str, local_ref: str, answer: Element) -> list[XeroObjectRef]:
    """The objects one answered element stands for: the object itself, and on an overpayment
    bank transaction the Overpayment Xero made with it, which has its own id (the OpenAPI's
    BankTransaction.OverpaymentID: "returned on BankTransactions with a Type of
    SPEND-OVERPAYMENT or RECEIVE-OVERPAYMENT"); a refund pays that id, not the transaction's."""
    xero_id, number = ids_of(body, answer)
    objects = [XeroObjectRef(object_type_of(body), xero_id, local_ref, number)]
    overpayment = answer.get("OverpaymentID") if body == "bank_transaction" else None
    if overpayment and str(overpayment) != _NO_ID:
        objects.append(XeroObjectRef(xero_pb2.OBJECT_TYPE_OVERPAYMENT, str(overpayment), local_ref))
    return objects


# Xero fills unused id fields with the zero GUID (the OpenAPI's examples of BankTransaction).
_NO_ID = "00000000-0000-0000-0000-000000000000"
