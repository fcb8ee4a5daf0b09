"""Money applied to documents: payments (and deleting them) and allocations of credit notes and
overpayments to invoices. Applying money moves AmountDue/RemainingCredit and the PAID status."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from xero_emulator.domain.amounts import optional_text, positive_number
from xero_emulator.domain.currency import payment_rate, to_base
from xero_emulator.domain.errors import Errors, NotFound, ValidationFailure
from xero_emulator.domain.organisation import Organisation, account_summary, new_id, now_utc
from xero_emulator.jsonio import ms_date, ms_datetime

PAYMENT_TYPES = {
    ("Invoices", "ACCREC"): "ACCRECPAYMENT",
    ("Invoices", "ACCPAY"): "ACCPAYPAYMENT",
    ("CreditNotes", "ACCRECCREDIT"): "ARCREDITPAYMENT",
    ("CreditNotes", "ACCPAYCREDIT"): "APCREDITPAYMENT",
    ("Overpayments", "RECEIVE-OVERPAYMENT"): "AROVERPAYMENTPAYMENT",
    ("Overpayments", "SPEND-OVERPAYMENT"): "APOVERPAYMENTPAYMENT",
}
_TARGETS = (
    ("Invoice", "Invoices", "InvoiceID", "InvoiceNumber"),
    ("CreditNote", "CreditNotes", "CreditNoteID", "CreditNoteNumber"),
    ("Overpayment", "Overpayments", "OverpaymentID", None),
)


def outstanding(resource: str, doc: dict[str, Any]) -> Decimal:
    value: Decimal = doc["AmountDue"] if resource == "Invoices" else doc["RemainingCredit"]
    return value


def _reduce(
    org: Organisation, resource: str, doc: dict[str, Any], amount: Decimal, day: dt.date, *, credited: bool
) -> None:
    if resource == "Invoices":
        doc["AmountCredited" if credited else "AmountPaid"] += amount
        doc["AmountDue"] -= amount
        left = doc["AmountDue"]
    else:
        doc["RemainingCredit"] -= amount
        left = doc["RemainingCredit"]
    if left == 0:
        doc["Status"] = "PAID"
        doc["FullyPaidOnDate"] = ms_date(day)
    # Money applied changes the document: Xero reports it as an UPDATE of the document (it has no
    # payment events; developer.xero.com/documentation/webhooks/overview lists the events).
    org.touch(resource, doc)


def _restore(org: Organisation, resource: str, doc: dict[str, Any], amount: Decimal, *, credited: bool) -> None:
    if resource == "Invoices":
        doc["AmountCredited" if credited else "AmountPaid"] -= amount
        doc["AmountDue"] += amount
    else:
        doc["RemainingCredit"] += amount
    if doc["Status"] == "PAID":
        doc["Status"] = "AUTHORISED"
        doc.pop("FullyPaidOnDate", None)
    org.touch(resource, doc)


def _find_target(org: Organisation, element: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for key, resource, id_field, number_field in _TARGETS:
        ref = element.get(key)
        if not isinstance(ref, dict):
            continue
        ref_id = ref.get(id_field)
        if isinstance(ref_id, str) and ref_id:
            doc = org.objects[resource].get(ref_id.lower())
            if doc is None:
                raise ValidationFailure(f"The {key} with {id_field} {ref_id} could not be found.")
            return resource, doc
        number = ref.get(number_field) if number_field else None
        if isinstance(number, str) and number and number_field:
            found = [
                d for d in org.objects[resource].values() if d.get(number_field) == number and d["Status"] != "DELETED"
            ]
            if len(found) != 1:
                raise ValidationFailure(f"The {key} with {number_field} {number} could not be found uniquely.")
            return resource, found[0]
    raise ValidationFailure("A payment must reference an Invoice, CreditNote or Overpayment by its ID.")


def _payment_account(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    account = org.resolve_account(element.get("Account"), "Account")
    if account["Type"] != "BANK" and not account["EnablePaymentsToAccount"]:
        raise ValidationFailure(f"Account {account['Code']} is not a bank account and does not have payments enabled.")
    return account


def create_payment(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    errors = Errors()
    target = errors.check(lambda: _find_target(org, element))
    account = errors.check(lambda: _payment_account(org, element))
    amount = errors.check(lambda: positive_number(element, "Amount", "Payment amount"))
    day = errors.check(lambda: org.parse_date_field(element, "Date"))
    reference = errors.check(lambda: optional_text(element, "Reference"))
    errors.raise_any()
    assert target is not None and account is not None and amount is not None and day is not None
    resource, doc = target
    if doc["Status"] != "AUTHORISED":
        raise ValidationFailure("Payments can only be made against Authorised documents")
    rate = payment_rate(org, element, doc)
    if amount > outstanding(resource, doc):
        raise ValidationFailure("The payment amount exceeds the amount outstanding on this document")
    org.check_lock_date(day)
    payment: dict[str, Any] = {
        "PaymentID": new_id(),
        "_date": day,
        "_target": (resource, doc[_id_field(resource)]),
        "Date": ms_date(day),
        "Amount": amount,  # in the document's currency
        "BankAmount": to_base(amount, rate),  # every seeded bank account is in the base currency
        "CurrencyRate": rate,
        "Reference": reference or "",
        "IsReconciled": element.get("IsReconciled") is True,
        "Status": "AUTHORISED",
        "PaymentType": PAYMENT_TYPES[(resource, doc["Type"])],
        "UpdatedDateUTC": ms_datetime(now_utc()),
        "HasAccount": True,
        "HasValidationErrors": False,
        "Account": account_summary(account),
        _singular(resource): _doc_summary(resource, doc),
    }
    _reduce(org, resource, doc, amount, day, credited=False)
    doc["Payments"].append(
        {
            "PaymentID": payment["PaymentID"],
            "Date": payment["Date"],
            "Amount": amount,
            "Reference": payment["Reference"],
        }
    )
    return org.put("Payments", payment)


def delete_payment(
    org: Organisation, payment: dict[str, Any], element: dict[str, Any], *, by_hand: bool = False
) -> dict[str, Any]:
    """POST Payments/{id} with Status DELETED is the only change Xero accepts on a payment. By hand
    (in Xero's web app) a reconciled payment can be removed too: the person unreconciles it first."""
    if element.get("Status") != "DELETED" or set(element) - {"Status", "PaymentID"}:
        raise ValidationFailure("A payment can only be deleted (Status DELETED); it cannot be edited.")
    if payment["Status"] == "DELETED":
        raise ValidationFailure("This payment has already been deleted.")
    if payment["IsReconciled"] and not by_hand:
        raise ValidationFailure("This payment is reconciled and cannot be deleted; unreconcile it first.")
    org.check_lock_date(payment["_date"])
    resource, target_id = payment["_target"]
    doc = org.objects[resource][target_id]
    _restore(org, resource, doc, payment["Amount"], credited=False)
    doc["Payments"] = [p for p in doc["Payments"] if p["PaymentID"] != payment["PaymentID"]]
    payment["Status"] = "DELETED"
    org.touch("Payments", payment)
    return payment


def allocate(
    org: Organisation, source_resource: str, source: dict[str, Any], element: dict[str, Any]
) -> dict[str, Any]:
    """Applies a credit note or overpayment to an invoice of the same side (sales or purchases)."""
    errors = Errors()
    invoice = errors.check(lambda: _allocated_invoice(org, element))
    amount = errors.check(lambda: positive_number(element, "Amount", "Allocation amount"))
    day = errors.check(lambda: org.parse_date_field(element, "Date", required=False) or source["_date"])
    errors.raise_any()
    assert invoice is not None and amount is not None and day is not None
    sales_source = source["Type"] in ("ACCRECCREDIT", "RECEIVE-OVERPAYMENT")
    if sales_source != (invoice["Type"] == "ACCREC"):
        raise ValidationFailure("The document and the invoice must both be sales (ACCREC) or both purchases (ACCPAY).")
    if source["Status"] != "AUTHORISED":
        raise ValidationFailure("Only an AUTHORISED document with remaining credit can be allocated.")
    if invoice["Status"] != "AUTHORISED":
        raise ValidationFailure("Allocations can only be made against Authorised invoices")
    if invoice["CurrencyCode"] != source["CurrencyCode"]:
        raise ValidationFailure("The invoice and the credit must be in the same currency.")
    if invoice["Contact"]["ContactID"] != source["Contact"]["ContactID"]:
        raise ValidationFailure("The invoice belongs to a different contact than the credit.")
    if amount > source["RemainingCredit"]:
        raise ValidationFailure("The allocation amount exceeds the remaining credit.")
    if amount > invoice["AmountDue"]:
        raise ValidationFailure("The allocation amount exceeds the amount due on the invoice.")
    org.check_lock_date(day)
    allocation: dict[str, Any] = {
        "AllocationID": new_id(),
        "_date": day,
        "Amount": amount,
        "Date": ms_date(day),
        "IsDeleted": False,
        "Invoice": _doc_summary("Invoices", invoice),
        _singular(source_resource): _doc_summary(source_resource, source),
    }
    _reduce(org, source_resource, source, amount, day, credited=True)
    _reduce(org, "Invoices", invoice, amount, day, credited=True)
    source["Allocations"].append(allocation)
    invoice["CreditNotes" if source_resource == "CreditNotes" else "Overpayments"].append(
        {
            _id_field(source_resource): source[_id_field(source_resource)],
            "Total": source["Total"],
            "AppliedAmount": amount,
        }
    )
    return allocation


def _allocated_invoice(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    ref = element.get("Invoice")
    ref_id = ref.get("InvoiceID") if isinstance(ref, dict) else None
    if not isinstance(ref_id, str) or not ref_id:
        raise ValidationFailure("An allocation must reference an Invoice by InvoiceID.")
    invoice = org.objects["Invoices"].get(ref_id.lower())
    if invoice is None:
        raise ValidationFailure(f"The Invoice with InvoiceID {ref_id} could not be found.")
    return invoice


def delete_allocation(
    org: Organisation, source_resource: str, source: dict[str, Any], allocation_id: str
) -> dict[str, Any]:
    allocation = next(
        (a for a in source["Allocations"] if a["AllocationID"] == allocation_id.lower() and not a["IsDeleted"]), None
    )
    if allocation is None:
        raise NotFound("Allocations", allocation_id)
    org.check_lock_date(allocation["_date"])
    invoice = org.objects["Invoices"][allocation["Invoice"]["InvoiceID"]]
    _restore(org, source_resource, source, allocation["Amount"], credited=True)
    _restore(org, "Invoices", invoice, allocation["Amount"], credited=True)
    allocation["IsDeleted"] = True
    key = "CreditNotes" if source_resource == "CreditNotes" else "Overpayments"
    source_id = source[_id_field(source_resource)]
    for i, applied in enumerate(invoice[key]):
        if applied.get(_id_field(source_resource)) == source_id and applied["AppliedAmount"] == allocation["Amount"]:
            del invoice[key][i]
            break
    result: dict[str, Any] = allocation
    return result


def _id_field(resource: str) -> str:
    return {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID", "Overpayments": "OverpaymentID"}[resource]


def _singular(resource: str) -> str:
    return {"Invoices": "Invoice", "CreditNotes": "CreditNote", "Overpayments": "Overpayment"}[resource]


def _doc_summary(resource: str, doc: dict[str, Any]) -> dict[str, Any]:
    summary = {_id_field(resource): doc[_id_field(resource)], "Type": doc["Type"], "Contact": doc["Contact"]}
    for field in ("InvoiceNumber", "CreditNoteNumber", "Reference"):
        if doc.get(field):
            summary[field] = doc[field]
    return summary
