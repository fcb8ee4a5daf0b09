"""Drift: what xerolink posted to a linked Xero object against what Xero holds now.

`trim` keeps of a Xero element (the answer when xerolink posted it, or a later read) only the
fields drift detection and reconciliation read, in Xero's own names and nesting, with money as
two-decimal strings and dates as YYYY-MM-DD, so a snapshot and a later read compare as text.
`compare` turns a snapshot and Xero's current element into findings, one per kind of difference.

Every field read is in Xero's OpenAPI description (xero_accounting.yaml, components/schemas):
Invoice (Type, Contact, Date, Status DRAFT|SUBMITTED|DELETED|AUTHORISED|PAID|VOIDED, SubTotal,
TotalTax, Total, LineItems, Payments, Prepayments, Overpayments, CreditNotes "credit notes that
have been applied to an invoice", UpdatedDateUTC); CreditNote (the same with Allocations and
Payments, no CreditNotes); Payment (Invoice, CreditNote, Prepayment, Overpayment, Account, Date,
Amount, Reference, Status AUTHORISED|DELETED, PaymentID, PaymentType, CurrencyRate); Allocation (AllocationID, Invoice,
CreditNote, Overpayment, Prepayment, Amount, Date, IsDeleted); BankTransaction (Type, Contact,
LineItems, BankAccount, Date, Reference, Status AUTHORISED|DELETED|VOIDED, SubTotal, TotalTax,
Total, BankTransactionID, OverpaymentID, PrepaymentID); BankTransfer (FromBankAccount,
ToBankAccount, Amount, Date, BankTransferID, Reference, Status AUTHORISED|DELETED); ManualJournal
(Narration, JournalLines, Date, Status DRAFT|POSTED|DELETED|VOIDED|ARCHIVED, ManualJournalID);
ManualJournalLine and LineItem (AccountCode, LineAmount, TaxType, TaxAmount, Tracking);
Overpayment (Type, Contact, Date, Status AUTHORISED|PAID|VOIDED, LineItems, totals,
Allocations, Payments). Xero sends no payment webhooks (developer.xero.com/documentation/webhooks):
a payment deleted in Xero shows as its document's Payments list no longer holding it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, DecimalException
from enum import StrEnum
from typing import Any

from xerolink_poster.domain.kinds import ObjectType

CENT = Decimal("0.01")
# dict before the ABC: isinstance stops at the first match, and elements come from JSON as dicts.
_MAPPINGS = (dict, Mapping)


class DriftKind(StrEnum):
    """xerolink.poster.v1.DriftKind names without their prefix (stored in DriftRow.kind)."""

    PAID_IN_XERO = "PAID_IN_XERO"
    VOIDED_IN_XERO = "VOIDED_IN_XERO"
    DELETED_IN_XERO = "DELETED_IN_XERO"
    AMOUNT_CHANGED = "AMOUNT_CHANGED"
    LINES_CHANGED = "LINES_CHANGED"
    CONTACT_CHANGED = "CONTACT_CHANGED"
    DATE_CHANGED = "DATE_CHANGED"
    PAYMENT_DELETED_IN_XERO = "PAYMENT_DELETED_IN_XERO"
    ALLOCATION_ADDED_IN_XERO = "ALLOCATION_ADDED_IN_XERO"
    STATUS_CHANGED = "STATUS_CHANGED"


@dataclass(frozen=True)
class Difference:
    field: str
    posted: str
    xero: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "posted": self.posted, "xero": self.xero}


@dataclass(frozen=True)
class Finding:
    """One kind of difference. `xero_id` names the object it is about when that is not the one
    compared (a payment xerolink made, seen missing from its document's Payments)."""

    kind: DriftKind
    differences: tuple[Difference, ...]
    description: str
    xero_id: str = ""


# ObjectType -> (Xero id field, label for sentences).
ID_FIELDS: dict[int, tuple[str, str]] = {
    ObjectType.INVOICE: ("InvoiceID", "invoice"),
    ObjectType.CREDIT_NOTE: ("CreditNoteID", "credit note"),
    ObjectType.PAYMENT: ("PaymentID", "payment"),
    ObjectType.ALLOCATION: ("AllocationID", "allocation"),
    ObjectType.BANK_TRANSACTION: ("BankTransactionID", "bank transaction"),
    ObjectType.BANK_TRANSFER: ("BankTransferID", "bank transfer"),
    ObjectType.MANUAL_JOURNAL: ("ManualJournalID", "manual journal"),
    ObjectType.OVERPAYMENT: ("OverpaymentID", "overpayment"),
}
# What a document holds that pays or credits it: list field -> id field of its entries.
_APPLIED: dict[int, dict[str, str]] = {
    ObjectType.INVOICE: {
        "Payments": "PaymentID",
        "CreditNotes": "CreditNoteID",
        "Prepayments": "PrepaymentID",
        "Overpayments": "OverpaymentID",
    },
    ObjectType.CREDIT_NOTE: {"Payments": "PaymentID", "Allocations": "AllocationID"},
    ObjectType.OVERPAYMENT: {"Payments": "PaymentID", "Allocations": "AllocationID"},
}
# The lists whose entries are each one object xerolink can make and record on the document (a
# payment, an allocation): one missing was deleted in Xero. An invoice's CreditNotes,
# Prepayments and Overpayments name the crediting document, not the allocation, so they only
# show money xerolink did not apply.
_OWN_ENTRIES = ("Payments", "Allocations")
_DOCUMENT_REFS: tuple[tuple[str, str], ...] = (
    ("Invoice", "InvoiceID"),
    ("CreditNote", "CreditNoteID"),
    ("Prepayment", "PrepaymentID"),
    ("Overpayment", "OverpaymentID"),
)
# Statuses that end a document in Xero.
_GONE = {"DELETED", "VOIDED"}


# -- trimming ----------------------------------------------------------------------------------
def money(value: Any) -> str:
    """Xero's two-decimal form of an amount ("" when there is none), never through a float. An
    amount that is not one, or that cents cannot hold (infinite, more digits than a decimal
    keeps), is kept as written: a garbled element must not stop the call's other answers."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        # A Decimal (how xero_json reads Xero's numbers) is its own exact value: no text round trip.
        exact = value if type(value) is Decimal else Decimal(str(value))
        return str(exact.quantize(CENT))
    except DecimalException:
        return str(value)


def _rate(value: Any) -> str:
    """A CurrencyRate as a decimal string ("" when there is none), never through a float."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except DecimalException:  # not a number, or one no decimal holds (it overflows)
        return ""


_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def xero_date(value: Any) -> str:
    """YYYY-MM-DD of a Xero date: "/Date(1735689600000+0000)/" (Xero's JSON dates, midnight UTC),
    "2026-07-01T00:00:00" (DateString) or "2026-07-01"; "" when there is none."""
    if not isinstance(value, str) or not value:
        return ""
    # Cached: a call's answer repeats a handful of dates across its fifty elements. Only values
    # as short as a date's forms: a garbled answer's long text is not kept.
    return _cached_day(value) if len(value) <= _DATE_TEXT_MAX else _day_of(value)


_DATE_TEXT_MAX = 40


def _day_of(value: str) -> str:
    match = _MS_DATE.fullmatch(value.strip())
    if match:
        try:
            moment = dt.datetime.fromtimestamp(int(match.group(1)) / 1000, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):  # beyond any calendar: kept as written
            return value.strip()[:10]
        return moment.date().isoformat()
    return value.strip()[:10]


_cached_day = functools.lru_cache(maxsize=4096)(_day_of)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _ref(element: Mapping[str, Any], key: str, id_field: str) -> dict[str, str] | None:
    inner = element.get(key)
    if not isinstance(inner, _MAPPINGS) or not inner.get(id_field):
        return None
    return {id_field: _text(inner.get(id_field)).lower()}


def _account(element: Mapping[str, Any], key: str) -> dict[str, str] | None:
    inner = element.get(key)
    if not isinstance(inner, _MAPPINGS):
        return None
    out = {k: _text(inner[k]) for k in ("Code", "AccountID") if inner.get(k)}
    if "AccountID" in out:
        out["AccountID"] = out["AccountID"].lower()
    return out or None


def _tracking(line: Mapping[str, Any]) -> list[dict[str, str]]:
    tracking = line.get("Tracking")
    if not isinstance(tracking, list):
        return []
    out = [
        {"Name": _text(t.get("Name")), "Option": _text(t.get("Option"))}
        for t in tracking
        if isinstance(t, _MAPPINGS) and (t.get("Name") or t.get("Option"))
    ]
    return sorted(out, key=lambda t: (t["Name"], t["Option"]))


def _lines(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    lines = []
    for item in items:
        if not isinstance(item, _MAPPINGS):
            continue
        line: dict[str, Any] = {
            "AccountCode": _text(item.get("AccountCode")),
            "LineAmount": money(item.get("LineAmount")),
            "TaxType": _text(item.get("TaxType")),
            "TaxAmount": money(item.get("TaxAmount")),
        }
        tracking = _tracking(item)
        if tracking:
            line["Tracking"] = tracking
        lines.append(line)
    return lines


def _applied_entries(element: Mapping[str, Any], key: str, id_field: str) -> list[dict[str, Any]]:
    entries = element.get(key)
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries:
        if not isinstance(entry, _MAPPINGS) or not entry.get(id_field) or entry.get("IsDeleted") is True:
            continue
        # Payment.Amount on a payment; AppliedAmount where a credit is applied to an invoice;
        # Allocation.Amount on a credit note's or overpayment's allocations.
        kept: dict[str, Any] = {id_field: _text(entry[id_field]).lower()}
        amount = entry.get("Amount", entry.get("AppliedAmount"))
        kept["Amount"] = money(amount)
        invoice = _ref(entry, "Invoice", "InvoiceID")
        if invoice:
            kept["Invoice"] = invoice
        out.append(kept)
    return out


def object_type_of(document: Mapping[str, Any]) -> int:
    """The object type of a trimmed element, by its id field (a bank transaction's answer also
    carries an OverpaymentID, so its own id is looked at first)."""
    for object_type in (
        ObjectType.BANK_TRANSACTION,
        ObjectType.PAYMENT,
        ObjectType.ALLOCATION,
        ObjectType.BANK_TRANSFER,
        ObjectType.MANUAL_JOURNAL,
        ObjectType.CREDIT_NOTE,
        ObjectType.INVOICE,
        ObjectType.OVERPAYMENT,
    ):
        if document.get(ID_FIELDS[object_type][0]):
            return object_type
    return ObjectType.UNSPECIFIED


def trim(object_type: int, element: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `element` (a Xero object of `object_type`) that drift and reconciliation
    read. Trimming a trimmed element changes nothing."""
    id_field, _ = ID_FIELDS.get(object_type, ("", ""))
    out: dict[str, Any] = {}
    if id_field:
        out[id_field] = _text(element.get(id_field)).lower()
    for key in ("Type", "Status", "Reference", "InvoiceNumber", "CreditNoteNumber", "Narration", "CurrencyCode"):
        if element.get(key) not in (None, ""):
            out[key] = _text(element.get(key))
    out["Date"] = xero_date(element.get("Date"))
    contact = _ref(element, "Contact", "ContactID")
    if contact:
        out["Contact"] = contact
    for key in ("SubTotal", "TotalTax", "Total", "Amount"):
        if element.get(key) is not None:
            out[key] = money(element.get(key))
    # What reconciliation needs to book the object as Xero does: whether LineAmount includes tax
    # (LineAmountTypes Exclusive|Inclusive|NoTax), the rate to the base currency (CurrencyRate,
    # "units of the currency per unit of the base currency", kept as Xero wrote it), and on a
    # payment which side it settles (Payment.PaymentType: ACCRECPAYMENT, ..., AROVERPAYMENTPAYMENT,
    # ARPREPAYMENTPAYMENT, APPREPAYMENTPAYMENT, APOVERPAYMENTPAYMENT; an overpayment's or
    # prepayment's refund pays money out, not in).
    if element.get("LineAmountTypes") not in (None, ""):
        out["LineAmountTypes"] = _text(element.get("LineAmountTypes"))
    rate = _rate(element.get("CurrencyRate"))
    if rate:
        out["CurrencyRate"] = rate
    if object_type == ObjectType.PAYMENT and element.get("PaymentType") not in (None, ""):
        out["PaymentType"] = _text(element.get("PaymentType")).upper()
    if object_type in (ObjectType.INVOICE, ObjectType.CREDIT_NOTE, ObjectType.BANK_TRANSACTION, ObjectType.OVERPAYMENT):
        out["LineItems"] = _lines(element.get("LineItems"))
    if object_type == ObjectType.MANUAL_JOURNAL:
        out["JournalLines"] = _lines(element.get("JournalLines"))
    for key in ("BankAccount", "FromBankAccount", "ToBankAccount", "Account"):
        account = _account(element, key)
        if account:
            out[key] = account
    if object_type in (ObjectType.PAYMENT, ObjectType.ALLOCATION):
        for key, ref_id in _DOCUMENT_REFS:
            ref = _ref(element, key, ref_id)
            if ref:
                out[key] = ref
        if element.get("IsDeleted") is True:
            out["IsDeleted"] = True
    if object_type == ObjectType.BANK_TRANSACTION:
        for key in ("OverpaymentID", "PrepaymentID"):
            value = _text(element.get(key)).lower()
            if value and value != "00000000-0000-0000-0000-000000000000":
                out[key] = value
    for key, entry_id in _APPLIED.get(object_type, {}).items():
        out[key] = _applied_entries(element, key, entry_id)
    if element.get("UpdatedDateUTC"):
        out["UpdatedDateUTC"] = _text(element.get("UpdatedDateUTC"))
    return out


def with_applied(document: Mapping[str, Any], key: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The document's snapshot with a payment or allocation xerolink made added to `key`
    (Payments or Allocations): what xerolink now expects the document to hold."""
    out = dict(document)
    id_field = "PaymentID" if key == "Payments" else "AllocationID"
    entries = [e for e in out.get(key) or [] if e.get(id_field) != entry.get(id_field)]
    out[key] = [*entries, dict(entry)]
    return out


def applied_entry(object_type: int, document: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]] | None:
    """For a payment or allocation xerolink made: (the document's id field, its id, the list it
    sits in on that document, the entry), so the document's snapshot can expect it."""
    if object_type == ObjectType.PAYMENT:
        for key, ref_id in _DOCUMENT_REFS:
            ref = document.get(key)
            if isinstance(ref, Mapping) and ref.get(ref_id):
                entry = {"PaymentID": document.get("PaymentID", ""), "Amount": document.get("Amount", "")}
                return ref_id, str(ref[ref_id]), "Payments", entry
    if object_type == ObjectType.ALLOCATION:
        invoice = document.get("Invoice") or {}
        entry = {"AllocationID": document.get("AllocationID", ""), "Amount": document.get("Amount", "")}
        if invoice.get("InvoiceID"):
            entry["Invoice"] = {"InvoiceID": invoice["InvoiceID"]}
        for key, ref_id in (("CreditNote", "CreditNoteID"), ("Overpayment", "OverpaymentID")):
            ref = document.get(key)
            if isinstance(ref, Mapping) and ref.get(ref_id):
                return ref_id, str(ref[ref_id]), "Allocations", entry
    return None


def without_entries(object_type: int, document: Mapping[str, Any], ids: set[str]) -> dict[str, Any]:
    """The trimmed document without the applied entries (payments, allocations, crediting
    documents) whose id is in `ids`."""
    out = dict(document)
    for key, id_field in _APPLIED.get(object_type, {}).items():
        if key in out:
            out[key] = [e for e in out[key] or [] if str(e.get(id_field, "")).lower() not in ids]
    return out


def referenced_ids(document: Mapping[str, Any]) -> set[str]:
    """Every id of a payment, allocation or crediting document a trimmed document holds."""
    ids: set[str] = set()
    for key in ("Payments", "Allocations", "CreditNotes", "Prepayments", "Overpayments"):
        for entry in document.get(key) or []:
            for field, value in entry.items():
                if field.endswith("ID") and isinstance(value, str):
                    ids.add(value.lower())
    return ids


# -- comparing ---------------------------------------------------------------------------------
def _label(object_type: int, document: Mapping[str, Any]) -> str:
    _, label = ID_FIELDS.get(object_type, ("", "object"))
    number = document.get("InvoiceNumber") or document.get("CreditNoteNumber") or ""
    return f"{label} {number}".strip() if number else label


def _per_account(lines: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Each account's LineAmount and TaxAmount summed, its tax types and tracking: lines split
    or merged on one account with the same amounts are no difference."""
    sums: dict[str, dict[str, Any]] = {}
    for line in lines:
        account = sums.setdefault(
            str(line.get("AccountCode", "")),
            {"LineAmount": Decimal(0), "TaxAmount": Decimal(0), "TaxType": set(), "Tracking": set()},
        )
        account["LineAmount"] += Decimal(line.get("LineAmount") or 0)
        account["TaxAmount"] += Decimal(line.get("TaxAmount") or 0)
        if line.get("TaxType"):
            account["TaxType"].add(str(line["TaxType"]))
        for t in line.get("Tracking") or []:
            account["Tracking"].add(f"{t.get('Name', '')}={t.get('Option', '')}")
    return {
        code: {
            "LineAmount": str(v["LineAmount"].quantize(CENT)),
            "TaxAmount": str(v["TaxAmount"].quantize(CENT)),
            "TaxType": ",".join(sorted(v["TaxType"])),
            "Tracking": ",".join(sorted(v["Tracking"])),
        }
        for code, v in sums.items()
    }


def _line_differences(list_key: str, posted: Mapping[str, Any], current: Mapping[str, Any]) -> list[Difference]:
    before = _per_account(posted.get(list_key) or [])
    after = _per_account(current.get(list_key) or [])
    out = []
    for code in sorted(set(before) | set(after)):
        for field in ("LineAmount", "TaxAmount", "TaxType", "Tracking"):
            was = before.get(code, {}).get(field, "")
            now = after.get(code, {}).get(field, "")
            if was != now:
                out.append(Difference(f"{list_key}[AccountCode={code}].{field}", was, now))
    return out


def _account_code(account: Any) -> str:
    if not isinstance(account, Mapping):
        return ""
    return str(account.get("Code") or account.get("AccountID") or "")


def _account_differences(posted: Mapping[str, Any], current: Mapping[str, Any]) -> list[Difference]:
    out = []
    for key in ("BankAccount", "FromBankAccount", "ToBankAccount", "Account"):
        was, now = posted.get(key), current.get(key)
        if not isinstance(was, Mapping) or not isinstance(now, Mapping):
            continue
        # Compare by the field both sides have: an answer may name the account by code or id.
        field = "Code" if was.get("Code") and now.get("Code") else "AccountID"
        if str(was.get(field, "")).lower() != str(now.get(field, "")).lower():
            out.append(Difference(f"{key}.{field}", str(was.get(field, "")), str(now.get(field, ""))))
    return out


def _entries(document: Mapping[str, Any], key: str, id_field: str) -> dict[str, str]:
    return {str(e.get(id_field, "")).lower(): str(e.get("Amount", "")) for e in document.get(key) or []}


def _status(value: Any) -> str:
    return str(value or "").upper()


def compare(
    object_type: int,
    posted: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    made_by_xerolink_ids: set[str],
) -> list[Finding]:
    """The findings between what xerolink posted (its snapshot) and Xero's current element
    (trimmed; None: Xero no longer has the object). `made_by_xerolink_ids`: the ids of the
    payments, allocations and documents the connection's links hold, which pay or credit a
    document as xerolink meant."""
    label = _label(object_type, posted)
    made = {i.lower() for i in made_by_xerolink_ids}
    payment_like = object_type in (ObjectType.PAYMENT, ObjectType.BANK_TRANSACTION)
    if current is None:
        kind = DriftKind.PAYMENT_DELETED_IN_XERO if payment_like else DriftKind.DELETED_IN_XERO
        return [_finding(kind, label, [Difference("Status", _status(posted.get("Status")), "")])]
    findings: list[Finding] = []
    was, now = _status(posted.get("Status")), _status(current.get("Status"))
    if object_type == ObjectType.ALLOCATION and current.get("IsDeleted") is True:
        now = "DELETED"
    status_diff = [Difference("Status", was, now)]
    if now in _GONE and was != now:
        if now == "VOIDED":
            findings.append(_finding(DriftKind.VOIDED_IN_XERO, label, status_diff))
        elif payment_like:
            findings.append(_finding(DriftKind.PAYMENT_DELETED_IN_XERO, label, status_diff))
        else:
            findings.append(_finding(DriftKind.DELETED_IN_XERO, label, status_diff))
    # Money on the document that xerolink did not apply.
    foreign: list[Difference] = []
    for key, entry_id in _APPLIED.get(object_type, {}).items():
        before = _entries(posted, key, entry_id)
        for xero_id, amount in sorted(_entries(current, key, entry_id).items()):
            if xero_id not in before and xero_id not in made:
                foreign.append(Difference(f"{key}[{entry_id}={xero_id}].Amount", "", amount))
    if foreign:
        paid = now == "PAID"
        kind = DriftKind.PAID_IN_XERO if paid else DriftKind.ALLOCATION_ADDED_IN_XERO
        findings.append(_finding(kind, label, ([Difference("Status", was, now)] if paid else []) + foreign))
    # Payments and allocations xerolink made that the document no longer holds: deleted in Xero
    # (a document is voided only once they are gone), each on its own link.
    findings += missing_own_entries(object_type, posted, current)
    # PAID is what xerolink's own payments make of an AUTHORISED document (and back when one is
    # deleted): only another change of status is one.
    if now not in _GONE and _paid_as(was) != _paid_as(now):
        findings.append(_finding(DriftKind.STATUS_CHANGED, label, status_diff))
    # Totals, then lines with the same totals.
    totals = [
        Difference(key, str(posted.get(key, "")), str(current.get(key, "")))
        for key in ("SubTotal", "TotalTax", "Total", "Amount")
        if key in posted and key in current and posted.get(key) != current.get(key)
    ]
    list_key = "JournalLines" if object_type == ObjectType.MANUAL_JOURNAL else "LineItems"
    lines = _line_differences(list_key, posted, current) if list_key in posted and list_key in current else []
    if object_type == ObjectType.MANUAL_JOURNAL and lines:
        debit_was, debit_now = _debits(posted), _debits(current)
        if debit_was != debit_now:
            totals.append(Difference("JournalLines.Debits", debit_was, debit_now))
    lines += _account_differences(posted, current)
    if totals:
        findings.append(_finding(DriftKind.AMOUNT_CHANGED, label, totals + lines))
    elif lines:
        findings.append(_finding(DriftKind.LINES_CHANGED, label, lines))
    was_contact = (posted.get("Contact") or {}).get("ContactID", "")
    now_contact = (current.get("Contact") or {}).get("ContactID", "")
    if "Contact" in posted and was_contact != now_contact:
        findings.append(
            _finding(DriftKind.CONTACT_CHANGED, label, [Difference("Contact.ContactID", was_contact, now_contact)])
        )
    if posted.get("Date") and current.get("Date") and posted["Date"] != current["Date"]:
        findings.append(
            _finding(DriftKind.DATE_CHANGED, label, [Difference("Date", str(posted["Date"]), str(current["Date"]))])
        )
    return findings


def missing_own_entries(object_type: int, posted: Mapping[str, Any], current: Mapping[str, Any]) -> list[Finding]:
    """The payments and allocations xerolink made on the document that it no longer holds."""
    out = []
    for key in _OWN_ENTRIES:
        entry_id = _APPLIED.get(object_type, {}).get(key)
        if entry_id is None:
            continue
        still = _entries(current, key, entry_id)
        for xero_id in sorted(_entries(posted, key, entry_id)):
            if xero_id not in still:
                kind = DriftKind.PAYMENT_DELETED_IN_XERO if key == "Payments" else DriftKind.DELETED_IN_XERO
                what = "payment" if key == "Payments" else "allocation"
                out.append(_finding(kind, what, [Difference("Status", "AUTHORISED", "DELETED")], xero_id=xero_id))
    return out


def own_entries(object_type: int, document: Mapping[str, Any]) -> set[str]:
    """The ids of the payments and allocations a document's snapshot expects it to hold."""
    return {
        xero_id
        for key in _OWN_ENTRIES
        if (entry_id := _APPLIED.get(object_type, {}).get(key))
        for xero_id in _entries(document, key, entry_id)
    }


def _paid_as(status: str) -> str:
    return "AUTHORISED" if status == "PAID" else status


def _debits(document: Mapping[str, Any]) -> str:
    total = sum(
        (Decimal(line.get("LineAmount") or 0) for line in document.get("JournalLines") or []),
        Decimal(0),
    )
    debits = sum(
        (
            Decimal(line.get("LineAmount") or 0)
            for line in document.get("JournalLines") or []
            if Decimal(line.get("LineAmount") or 0) > 0
        ),
        Decimal(0),
    )
    return f"{debits.quantize(CENT)}" if total == 0 else f"{debits.quantize(CENT)} (unbalanced {total.quantize(CENT)})"


# -- sentences ---------------------------------------------------------------------------------
_WHAT: dict[DriftKind, str] = {
    DriftKind.PAID_IN_XERO: (
        "The {label} was paid in Xero by money xerolink did not post (a bank-feed match or a payment "
        "entered by hand), so Xero shows it paid while Actionstep does not. Record the receipt in "
        "Actionstep and remove the payment in Xero, or accept Xero's version (xerolink drift resolve "
        "--accept-xero); payments xerolink posts for it wait meanwhile."
    ),
    DriftKind.VOIDED_IN_XERO: (
        "The {label} was voided in Xero while Actionstep still holds it. If the void was a mistake, "
        "the record must be posted afresh (unlink it, then post it again); if it was meant, reverse "
        "the record in Actionstep and accept Xero's version."
    ),
    DriftKind.DELETED_IN_XERO: (
        "The {label} was deleted in Xero (or Xero no longer has it) while Actionstep still holds it. "
        "Unlink the record and post it again to put it back in Xero, or reverse it in Actionstep "
        "and accept Xero's version."
    ),
    DriftKind.AMOUNT_CHANGED: (
        "The {label}'s amounts were edited in Xero and no longer match what Actionstep posted. Put "
        "the amounts back in Xero, or correct the record in Actionstep and accept Xero's version."
    ),
    DriftKind.LINES_CHANGED: (
        "The {label}'s lines were edited in Xero: the total is unchanged but the amounts per account "
        "(or their tax or tracking) differ from what Actionstep posted. Put the lines back in Xero, "
        "or change the accounts in Actionstep and accept Xero's version."
    ),
    DriftKind.CONTACT_CHANGED: (
        "The {label} was moved to another contact in Xero. Put the contact back in Xero, or change "
        "the record's participant in Actionstep and accept Xero's version."
    ),
    DriftKind.DATE_CHANGED: (
        "The {label}'s date was changed in Xero. Put the date back in Xero, or change the date in "
        "Actionstep and accept Xero's version."
    ),
    DriftKind.PAYMENT_DELETED_IN_XERO: (
        "The {label} xerolink posted was deleted in Xero, so Xero shows the money unpaid while "
        "Actionstep shows it received. Unlink the record and post it again to put the payment back, "
        "or reverse the receipt in Actionstep and accept Xero's version."
    ),
    DriftKind.ALLOCATION_ADDED_IN_XERO: (
        "Money xerolink did not post was applied to the {label} in Xero (a payment, credit note, "
        "prepayment or overpayment), leaving less owing than Actionstep shows. Record it in "
        "Actionstep and remove it in Xero, or accept Xero's version."
    ),
    DriftKind.STATUS_CHANGED: (
        "The {label}'s status was changed in Xero (for example back to draft). Put the status back "
        "in Xero, or accept Xero's version."
    ),
}


def describe(kind: DriftKind, label: str) -> str:
    """What happened in Xero and what to do."""
    return _WHAT[kind].format(label=label)


def _finding(kind: DriftKind, label: str, differences: Iterable[Difference], xero_id: str = "") -> Finding:
    return Finding(kind, tuple(differences), describe(kind, label), xero_id)
