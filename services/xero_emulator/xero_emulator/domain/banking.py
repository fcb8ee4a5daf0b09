"""Bank transactions (spend/receive money, including overpayments), bank transfers and manual
journals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from xero_emulator.domain.amounts import ZERO, optional_text, positive_number, required_number
from xero_emulator.domain.chart import AP_CODE, AR_CODE
from xero_emulator.domain.currency import ONE, document_currency
from xero_emulator.domain.errors import Errors, ValidationFailure
from xero_emulator.domain.lines import build_lines, line_amount_types, totals
from xero_emulator.domain.organisation import Organisation, account_summary, contact_summary, new_id, now_utc
from xero_emulator.jsonio import ms_date, ms_datetime

BANK_TRANSACTION_TYPES = ("RECEIVE", "SPEND", "RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT")


def _bank_account(org: Organisation, ref: Any, what: str) -> dict[str, Any]:
    account = org.resolve_account(ref, what)
    if account["Type"] != "BANK":
        raise ValidationFailure(f"{what} {account['Code']} is not a bank account.")
    return account


def create_bank_transaction(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    errors = Errors()
    tx_type = element.get("Type")
    if tx_type not in BANK_TRANSACTION_TYPES:
        errors.add(f"Type must be one of {', '.join(BANK_TRANSACTION_TYPES)}.")
    if element.get("Status", "AUTHORISED") != "AUTHORISED":
        errors.add("A new bank transaction must have Status AUTHORISED.")
    overpayment = tx_type in ("RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT")
    contact = errors.check(lambda: org.resolve_contact(element.get("Contact")))
    bank = errors.check(lambda: _bank_account(org, element.get("BankAccount"), "BankAccount"))
    day = errors.check(lambda: org.parse_date_field(element, "Date"))
    amount_types = "NoTax" if overpayment else errors.check(lambda: line_amount_types(element))
    lines = None
    if overpayment:
        lines = errors.check(lambda: _overpayment_lines(org, element, tx_type == "RECEIVE-OVERPAYMENT"))
    elif amount_types is not None:
        lines = errors.check(lambda: build_lines(org, element, str(amount_types), tax_as_rate=True))
    reference = errors.check(lambda: optional_text(element, "Reference"))
    currency = errors.check(lambda: _bank_transaction_currency(org, element, bank, overpayment))
    errors.raise_any()
    assert contact is not None and bank is not None and day is not None and lines is not None
    assert amount_types is not None and currency is not None
    summed = totals(lines, amount_types)
    if summed.total <= 0:
        raise ValidationFailure("The bank transaction total must be greater than zero.")
    org.check_lock_date(day)
    tx: dict[str, Any] = {
        "BankTransactionID": new_id(),
        "_date": day,
        "Type": tx_type,
        "Contact": contact_summary(contact),
        "BankAccount": account_summary(bank),
        "Date": ms_date(day),
        "Reference": reference or "",
        "IsReconciled": element.get("IsReconciled") is True,
        "Status": "AUTHORISED",
        "LineAmountTypes": amount_types,
        "LineItems": lines,
        "SubTotal": summed.sub_total,
        "TotalTax": summed.total_tax,
        "Total": summed.total,
        "CurrencyCode": currency[0],
        "CurrencyRate": currency[1],
        "HasAttachments": False,
        "UpdatedDateUTC": ms_datetime(now_utc()),
    }
    if overpayment:
        tx["OverpaymentID"] = _create_overpayment(org, tx)["OverpaymentID"]
    return org.put("BankTransactions", tx)


def _bank_transaction_currency(
    org: Organisation, element: dict[str, Any], bank: dict[str, Any] | None, overpayment: bool
) -> tuple[str, Decimal]:
    """BankTransaction.CurrencyRate: "Setting currency is only supported on overpayments"; other
    bank transactions are in their bank account's currency (every seeded bank account is in the
    base currency), where a rate is not used."""
    if overpayment:
        return document_currency(org, element)
    account_currency = str((bank or {}).get("CurrencyCode") or org.base_currency)
    code = element.get("CurrencyCode")
    if code not in (None, "") and str(code).upper() != account_currency:
        raise ValidationFailure(
            f"The bank account is in {account_currency}: a {element.get('Type')} bank transaction takes its bank "
            "account's currency (setting currency is only supported on overpayments)."
        )
    return account_currency, ONE


def _overpayment_lines(org: Organisation, element: dict[str, Any], receive: bool) -> list[dict[str, Any]]:
    """Overpayment lines carry only amounts: Xero books them to receivables or payables."""
    raw = element.get("LineItems")
    if not isinstance(raw, list) or not raw:
        raise ValidationFailure("At least one line item is required.")
    control = org.account_by_code(AR_CODE if receive else AP_CODE)
    assert control is not None
    lines = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValidationFailure("Each line item must be an object.")
        amount = required_number(item, "LineAmount")
        description = item.get("Description", "")
        lines.append(
            {
                "LineItemID": new_id(),
                "Description": description if isinstance(description, str) else "",
                "Quantity": Decimal("1.0000"),
                "UnitAmount": amount,
                "AccountCode": control["Code"],
                "AccountID": control["AccountID"],
                "TaxType": org.region.no_tax_type,
                "TaxAmount": ZERO,
                "LineAmount": amount,
                "Tracking": [],
            }
        )
    return lines


def _create_overpayment(org: Organisation, tx: dict[str, Any]) -> dict[str, Any]:
    overpayment: dict[str, Any] = {
        "OverpaymentID": new_id(),
        "_date": tx["_date"],
        "_bank_transaction": tx["BankTransactionID"],
        "Type": tx["Type"],
        "Contact": tx["Contact"],
        "Date": tx["Date"],
        "Status": "AUTHORISED",
        "LineAmountTypes": "NoTax",
        "LineItems": tx["LineItems"],
        "SubTotal": tx["SubTotal"],
        "TotalTax": tx["TotalTax"],
        "Total": tx["Total"],
        "RemainingCredit": tx["Total"],
        "CurrencyCode": tx["CurrencyCode"],
        "CurrencyRate": tx["CurrencyRate"],
        "Allocations": [],
        "Payments": [],
        "HasAttachments": False,
        "UpdatedDateUTC": tx["UpdatedDateUTC"],
    }
    return org.put("Overpayments", overpayment)


def update_bank_transaction(org: Organisation, tx: dict[str, Any], element: dict[str, Any]) -> dict[str, Any]:
    """Xero lets an unreconciled bank transaction be deleted; that is the change xerolink needs."""
    if tx["Status"] == "DELETED":
        raise ValidationFailure("This bank transaction has been deleted and cannot be changed.")
    if element.get("Status") != "DELETED":
        raise ValidationFailure("Only Status DELETED can be set on an existing bank transaction in this emulator.")
    return remove_bank_transaction(org, tx, "DELETED")


def remove_bank_transaction(
    org: Organisation, tx: dict[str, Any], status: str, *, by_hand: bool = False
) -> dict[str, Any]:
    """Deletes (or, by hand, voids) a bank transaction; an overpayment it made is voided with it.
    By hand a reconciled one can be removed too: the person unreconciles it first."""
    if tx["Status"] != "AUTHORISED":
        raise ValidationFailure(f"This bank transaction is {tx['Status']} and cannot be changed.")
    if tx["IsReconciled"] and not by_hand:
        raise ValidationFailure("This Bank Transaction cannot be deleted because it is reconciled.")
    org.check_lock_date(tx["_date"])
    overpayment_id = tx.get("OverpaymentID")
    if overpayment_id:
        overpayment = org.objects["Overpayments"][overpayment_id]
        if overpayment["RemainingCredit"] != overpayment["Total"]:
            raise ValidationFailure("This overpayment has been allocated or refunded; remove those first.")
        overpayment["Status"] = "VOIDED"
        org.touch("Overpayments", overpayment)
    tx["Status"] = status
    org.touch("BankTransactions", tx)
    return tx


def edit_bank_transaction(org: Organisation, tx: dict[str, Any], element: dict[str, Any]) -> dict[str, Any]:
    """A Date or LineItems change made in Xero's web app; totals follow the new lines."""
    if tx["Status"] != "AUTHORISED":
        raise ValidationFailure(f"This bank transaction is {tx['Status']} and cannot be changed.")
    if tx["Type"] in ("RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT") and "LineItems" in element:
        raise ValidationFailure("The lines of an overpayment cannot be edited; remove it and record a new one.")
    org.check_lock_date(tx["_date"])
    errors = Errors()
    day = errors.check(lambda: org.parse_date_field(element, "Date")) if "Date" in element else tx["_date"]
    lines = tx["LineItems"]
    if "LineItems" in element:
        lines = errors.check(lambda: build_lines(org, element, str(tx["LineAmountTypes"]), tax_as_rate=True))
    errors.raise_any()
    assert day is not None and lines is not None
    summed = totals(lines, tx["LineAmountTypes"])
    if summed.total <= 0:
        raise ValidationFailure("The bank transaction total must be greater than zero.")
    org.check_lock_date(day)
    tx["_date"] = day
    tx["Date"] = ms_date(day)
    tx["LineItems"] = lines
    tx["SubTotal"] = summed.sub_total
    tx["TotalTax"] = summed.total_tax
    tx["Total"] = summed.total
    org.touch("BankTransactions", tx)
    return tx


def create_bank_transfer(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    errors = Errors()
    source = errors.check(lambda: _bank_account(org, element.get("FromBankAccount"), "FromBankAccount"))
    target = errors.check(lambda: _bank_account(org, element.get("ToBankAccount"), "ToBankAccount"))
    amount = errors.check(lambda: positive_number(element, "Amount", "Amount"))
    day = errors.check(lambda: org.parse_date_field(element, "Date", required=False))
    reference = errors.check(lambda: optional_text(element, "Reference"))
    if source is not None and source is target:
        errors.add("The FromBankAccount and ToBankAccount must be different accounts.")
    errors.raise_any()
    assert source is not None and target is not None and amount is not None
    day = day or now_utc().date()
    org.check_lock_date(day)
    transfer: dict[str, Any] = {
        "BankTransferID": new_id(),
        "_date": day,
        "FromBankAccount": account_summary(source),
        "ToBankAccount": account_summary(target),
        "Amount": amount,
        "Date": ms_date(day),
        "Reference": reference or "",
        "CurrencyRate": 1,
        "FromBankTransactionID": new_id(),
        "ToBankTransactionID": new_id(),
        "FromIsReconciled": False,
        "ToIsReconciled": False,
        "HasAttachments": False,
        "CreatedDateUTC": ms_datetime(now_utc()),
        # Xero's OpenAPI, BankTransfer.Status: "AUTHORISED or DELETED (read-only). New bank
        # transfers will have a status of AUTHORISED."
        "Status": "AUTHORISED",
    }
    return org.put("BankTransfers", transfer)


JOURNAL_TRANSITIONS = {"DRAFT": {"POSTED", "DELETED"}, "POSTED": {"VOIDED"}, "VOIDED": set(), "DELETED": set()}


def create_manual_journal(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    journal: dict[str, Any] = {
        "ManualJournalID": new_id(),
        "Status": "DRAFT",
        "ShowOnCashBasisReports": True,
        "HasAttachments": False,
    }
    status = element.get("Status", "DRAFT")
    if status not in ("DRAFT", "POSTED"):
        raise ValidationFailure("A new manual journal must have Status DRAFT or POSTED.")
    _apply_journal(org, journal, element)
    journal["Status"] = status
    if status == "POSTED":
        org.check_lock_date(journal["_date"])
    return org.put("ManualJournals", journal)


def update_manual_journal(org: Organisation, journal: dict[str, Any], element: dict[str, Any]) -> dict[str, Any]:
    content = {k for k in element if k in ("Narration", "Date", "JournalLines", "LineAmountTypes")}
    if content:
        if journal["Status"] != "DRAFT":
            raise ValidationFailure("Only a DRAFT manual journal can be edited; void it and post a new one.")
        _apply_journal(org, journal, {**_journal_input(journal), **element})
    status = element.get("Status", journal["Status"])
    if status != journal["Status"]:
        if status not in JOURNAL_TRANSITIONS.get(journal["Status"], set()):
            raise ValidationFailure(f"A {journal['Status']} manual journal cannot become {status}.")
        org.check_lock_date(journal["_date"])
        journal["Status"] = status
    org.touch("ManualJournals", journal)
    return journal


def _journal_input(journal: dict[str, Any]) -> dict[str, Any]:
    return {
        "Narration": journal["Narration"],
        "Date": journal["Date"],
        "JournalLines": journal["JournalLines"],
        "LineAmountTypes": journal["LineAmountTypes"],
    }


def edit_manual_journal(org: Organisation, journal: dict[str, Any], element: dict[str, Any]) -> dict[str, Any]:
    """A Date or JournalLines change made in Xero's web app, where a POSTED journal can be edited
    too (the API edits only drafts); a POSTED one is checked against the lock date before and after."""
    if journal["Status"] not in ("DRAFT", "POSTED"):
        raise ValidationFailure(f"A {journal['Status']} manual journal cannot be edited.")
    posted = journal["Status"] == "POSTED"
    if posted:
        org.check_lock_date(journal["_date"])
    _apply_journal(org, journal, {**_journal_input(journal), **element})
    if posted:
        org.check_lock_date(journal["_date"])
    org.touch("ManualJournals", journal)
    return journal


def _journal_lines(org: Organisation, element: dict[str, Any], amount_types: str) -> list[dict[str, Any]]:
    raw = element.get("JournalLines")
    if not isinstance(raw, list) or len(raw) < 2:
        raise ValidationFailure("A manual journal needs at least two JournalLines.")
    return build_lines(org, {"JournalLines": raw}, amount_types, field="JournalLines", allow_bank=True)


def _apply_journal(org: Organisation, journal: dict[str, Any], element: dict[str, Any]) -> None:
    errors = Errors()
    narration = element.get("Narration")
    if not isinstance(narration, str) or not narration.strip():
        errors.add("Narration is required.")
    day = errors.check(lambda: org.parse_date_field(element, "Date", required=False) or now_utc().date())
    amount_types = errors.check(lambda: line_amount_types({"LineAmountTypes": element.get("LineAmountTypes", "NoTax")}))
    lines = errors.check(lambda: _journal_lines(org, element, amount_types or "NoTax"))
    errors.raise_any()
    assert lines is not None and day is not None and amount_types is not None
    journal_lines = [
        {
            "LineAmount": line["LineAmount"],
            "AccountCode": line["AccountCode"],
            "AccountID": line["AccountID"],
            "Description": line["Description"],
            "TaxType": line["TaxType"],
            "TaxAmount": line["TaxAmount"],
            "IsBlank": False,
            "Tracking": line["Tracking"],
        }
        for line in lines
    ]
    gross = sum(
        (line["LineAmount"] + (line["TaxAmount"] if amount_types == "Exclusive" else ZERO) for line in lines), ZERO
    )
    if gross != 0:
        debits = sum((line["LineAmount"] for line in lines if line["LineAmount"] > 0), ZERO)
        credits = -sum((line["LineAmount"] for line in lines if line["LineAmount"] < 0), ZERO)
        raise ValidationFailure(f"The total debits ({debits}) must equal total credits ({credits}).")
    journal["_date"] = day
    journal["Date"] = ms_date(day)
    journal["Narration"] = str(narration).strip()
    journal["LineAmountTypes"] = amount_types
    journal["JournalLines"] = journal_lines
    journal["UpdatedDateUTC"] = ms_datetime(now_utc())
