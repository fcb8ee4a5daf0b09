"""Changes a person makes in Xero's web app rather than through the API: voiding or editing a
document, deleting a payment, a bank-feed reconciliation that pays an invoice. They follow the
same status and lock-date rules as the API, change the ledger the same way, and are reported to
webhooks like any other change; they are not API calls (no rate limit, no request record)."""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation
from typing import Any

from xero_emulator.domain import banking, documents, field_rules, settlement
from xero_emulator.domain.errors import ValidationFailure
from xero_emulator.domain.organisation import Organisation

# The fields each resource takes in a hand edit.
EDITABLE: dict[str, tuple[str, ...]] = {
    "Invoices": ("Status", "Date", "DueDate", "Contact", "LineItems", "Reference"),
    "CreditNotes": ("Status", "Date", "DueDate", "Contact", "LineItems", "Reference"),
    "Payments": ("Status",),
    "BankTransactions": ("Status", "Date", "LineItems"),
    "ManualJournals": ("Status", "Date", "JournalLines"),
}
_KINDS = {"Invoices": documents.INVOICE, "CreditNotes": documents.CREDIT_NOTE}
_LIVE = ("AUTHORISED", "PAID")


def hand_edit(org: Organisation, resource: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Applies a partial object to a stored one, all or nothing; the caller holds org.lock."""
    if resource not in EDITABLE:
        raise ValidationFailure(f"Hand edits are made to {', '.join(EDITABLE)}; not to {resource}.")
    if not isinstance(changes, dict) or not changes:
        fields = ", ".join(EDITABLE[resource])
        raise ValidationFailure(f"A hand edit of {resource} takes an object with some of {fields}.")
    unknown = sorted(set(changes) - set(EDITABLE[resource]))
    if unknown:
        raise ValidationFailure(
            f"A hand edit of {resource} takes {', '.join(EDITABLE[resource])}; not {', '.join(unknown)}."
        )
    obj = org.get(resource, object_id)
    snapshot = copy.deepcopy(obj)
    try:
        if resource in _KINDS:
            return _edit_document(org, _KINDS[resource], obj, changes)
        if resource == "Payments":
            return settlement.delete_payment(org, obj, changes, by_hand=True)
        if resource == "BankTransactions":
            return _edit_bank_transaction(org, obj, changes)
        return _edit_manual_journal(org, obj, changes)
    except ValidationFailure:
        obj.clear()
        obj.update(snapshot)
        raise


def _edit_document(
    org: Organisation, kind: documents.DocumentKind, doc: dict[str, Any], changes: dict[str, Any]
) -> dict[str, Any]:
    status = changes.get("Status")
    if status is not None and status not in ("VOIDED", "DELETED"):
        raise ValidationFailure("A hand edit sets Status VOIDED or DELETED only.")
    contact = changes.get("Contact")
    if "Contact" in changes and not (isinstance(contact, dict) and isinstance(contact.get("ContactID"), str)):
        raise ValidationFailure('A hand edit names the new contact as {"ContactID": ...}.')
    # Xero keeps Reference only on sales documents (Xero's OpenAPI: "ACCREC only").
    element = field_rules.accepted_fields(kind.resource, changes, doc["Type"])
    field_rules.check_lengths(kind.resource, element)
    if not element:
        return doc  # only fields this Type does not keep: nothing changes
    day_before = doc["_date"]
    updated = documents.update_document(org, kind, doc, element)
    if updated["Status"] in _LIVE and updated["_date"] != day_before:
        org.check_lock_date(updated["_date"])
    return updated


def _edit_bank_transaction(org: Organisation, tx: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    _check_removal(changes)
    content = {k: v for k, v in changes.items() if k != "Status"}
    if content:
        banking.edit_bank_transaction(org, tx, content)
    if "Status" in changes:
        banking.remove_bank_transaction(org, tx, str(changes["Status"]), by_hand=True)
    return tx


def _edit_manual_journal(org: Organisation, journal: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    _check_removal(changes)
    content = {k: v for k, v in changes.items() if k != "Status"}
    if content:
        banking.edit_manual_journal(org, journal, content)
    if "Status" in changes:
        banking.update_manual_journal(org, journal, {"Status": changes["Status"]})
    return journal


def _check_removal(changes: dict[str, Any]) -> None:
    if "Status" in changes and changes["Status"] not in ("DELETED", "VOIDED"):
        raise ValidationFailure("A hand edit sets Status DELETED or VOIDED only.")


def bank_feed_match(org: Organisation, match: dict[str, Any]) -> dict[str, Any]:
    """A payment made by reconciling a bank-feed line against an invoice or credit note in Xero's
    web app: an ordinary payment (the document goes PAID when fully paid), already reconciled."""
    allowed = {"InvoiceID", "CreditNoteID", "Amount", "Date", "AccountCode", "Reference"}
    unknown = sorted(set(match) - allowed)
    if unknown:
        raise ValidationFailure(f"A bank-feed match takes {', '.join(sorted(allowed))}; not {', '.join(unknown)}.")
    targets = [key for key in ("InvoiceID", "CreditNoteID") if match.get(key)]
    if len(targets) != 1:
        raise ValidationFailure("A bank-feed match names one InvoiceID or one CreditNoteID.")
    code = match.get("AccountCode")
    account = org.account_by_code(code) if isinstance(code, str) else None
    if account is None or account["Type"] != "BANK":
        raise ValidationFailure(f"AccountCode {code!r} is not a bank account of this organisation.")
    target = targets[0]
    element = {
        target[: -len("ID")]: {target: match[target]},
        "Account": {"Code": account["Code"]},
        "Amount": _money(match.get("Amount")),
        "Date": match.get("Date"),
        "Reference": match.get("Reference", "Bank feed"),
        "IsReconciled": True,
    }
    return settlement.create_payment(org, element)


def _money(value: Any) -> Decimal:
    """An amount as an exact decimal (a string, an integer or a Decimal; never a float)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValidationFailure("Amount must be a decimal number such as 110.00 (a string or an exact number).")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValidationFailure(f"Amount {value!r} is not a number.") from exc
    if not amount.is_finite():
        raise ValidationFailure(f"Amount {value!r} is not a number.")
    return amount
