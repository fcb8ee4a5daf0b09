"""The ledger view: the journal entries each live object implies and the totals per account,
so tests can check what was really posted. Debits are positive, credits negative. Everything is
in the base currency: a foreign document books at its own CurrencyRate, and money applied to it
at another rate leaves the difference on the realised currency gains account, as Xero does."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any, NamedTuple

from xero_emulator.domain.amounts import ZERO
from xero_emulator.domain.chart import AP_CODE, AR_CODE, FX_GAINS_CODE, TAX_CODE
from xero_emulator.domain.currency import to_base
from xero_emulator.domain.lines import net_amount
from xero_emulator.domain.organisation import ID_FIELD, Organisation


class Entry(NamedTuple):
    """One posting: an account code, a signed amount (debit > 0) and the tracking options
    (TrackingOptionIDs) of the line it comes from, empty for control, tax and bank postings."""

    code: str
    amount: Decimal
    tracking: tuple[str, ...] = ()


class Posted(NamedTuple):
    """The postings of one object that touches the ledger, on its date."""

    resource: str
    object_id: str
    entries: list[Entry]
    day: dt.date


def _options(line: dict[str, Any]) -> tuple[str, ...]:
    return tuple(t["TrackingOptionID"] for t in line.get("Tracking") or [])


_LIVE_DOCUMENT = ("AUTHORISED", "PAID")


def _rate(doc: dict[str, Any]) -> Decimal:
    return Decimal(doc.get("CurrencyRate", 1))


def _document_entries(doc: dict[str, Any], sign: int, control: str) -> list[Entry]:
    """sign +1 books the lines as credits (sales side), -1 as debits (purchases side). Each foreign
    amount converts on its own; the cent the rounding can leave between the converted total and
    its converted parts goes to the first line's account, so the entries balance."""
    rate = _rate(doc)
    total = to_base(doc["Total"], rate)
    entries: list[Entry] = [Entry(control, sign * total)]
    for line in doc["LineItems"]:
        net = -sign * to_base(net_amount(line, doc["LineAmountTypes"]), rate)
        entries.append(Entry(line["AccountCode"], net, _options(line)))
        if line["TaxAmount"]:
            entries.append(Entry(TAX_CODE, -sign * to_base(line["TaxAmount"], rate)))
    residual = sum((entry.amount for entry in entries), ZERO)
    if residual and len(entries) > 1:
        entries[1] = entries[1]._replace(amount=entries[1].amount - residual)
    return entries


class _Applied:
    """The base value of money applied to each document, taken cumulatively: the parts applied to
    a document add up to its own booked total once it is fully paid, so no cent is left behind."""

    def __init__(self) -> None:
        self._applied: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)

    def take(self, resource: str, doc: dict[str, Any], amount: Decimal) -> Decimal:
        key = (resource, str(doc[ID_FIELD[resource]]))
        before = self._applied[key]
        self._applied[key] = before + amount
        return to_base(before + amount, _rate(doc)) - to_base(before, _rate(doc))


def entries_of(org: Organisation) -> list[Posted]:
    """The postings of every object that touches the ledger."""
    out: list[Posted] = []
    for doc in org.objects["Invoices"].values():
        if doc["Status"] in _LIVE_DOCUMENT:
            sales = doc["Type"] == "ACCREC"
            entries = _document_entries(doc, 1 if sales else -1, AR_CODE if sales else AP_CODE)
            out.append(Posted("Invoices", doc["InvoiceID"], entries, doc["_date"]))
    for doc in org.objects["CreditNotes"].values():
        if doc["Status"] in _LIVE_DOCUMENT:
            sales = doc["Type"] == "ACCRECCREDIT"
            entries = _document_entries(doc, -1 if sales else 1, AR_CODE if sales else AP_CODE)
            out.append(Posted("CreditNotes", doc["CreditNoteID"], entries, doc["_date"]))
    for tx in org.objects["BankTransactions"].values():
        if tx["Status"] != "AUTHORISED":
            continue
        receive = tx["Type"].startswith("RECEIVE")
        entries = _document_entries(tx, 1 if receive else -1, tx["BankAccount"]["Code"])
        out.append(Posted("BankTransactions", tx["BankTransactionID"], entries, tx["_date"]))
    applied = _Applied()
    for payment in org.objects["Payments"].values():
        if payment["Status"] != "AUTHORISED":
            continue
        bank = payment["Account"]["Code"]
        # Money in for sales invoices and for refunds of supplier credits; money out otherwise.
        money_in = payment["PaymentType"] in ("ACCRECPAYMENT", "APCREDITPAYMENT", "APOVERPAYMENTPAYMENT")
        control = (
            AR_CODE
            if payment["PaymentType"] in ("ACCRECPAYMENT", "ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT")
            else AP_CODE
        )
        resource, target_id = payment["_target"]
        booked = applied.take(resource, org.objects[resource][target_id], payment["Amount"])
        sign = 1 if money_in else -1
        moved = [Entry(bank, sign * payment["BankAmount"]), Entry(control, -sign * booked)]
        if payment["BankAmount"] != booked:  # paid at another rate than the document's
            moved.append(Entry(FX_GAINS_CODE, -sign * (payment["BankAmount"] - booked)))
        out.append(Posted("Payments", payment["PaymentID"], moved, payment["_date"]))
    for resource in ("CreditNotes", "Overpayments"):
        for source in org.objects[resource].values():
            for allocation in source["Allocations"]:
                if allocation["IsDeleted"]:
                    continue
                invoice = org.objects["Invoices"][allocation["Invoice"]["InvoiceID"]]
                from_source = applied.take(resource, source, allocation["Amount"])
                from_invoice = applied.take("Invoices", invoice, allocation["Amount"])
                if from_source == from_invoice:
                    continue  # one control account, one value: nothing moves
                sales = invoice["Type"] == "ACCREC"
                diff = from_source - from_invoice if sales else from_invoice - from_source
                moved = [Entry(AR_CODE if sales else AP_CODE, diff), Entry(FX_GAINS_CODE, -diff)]
                out.append(Posted("Allocations", allocation["AllocationID"], moved, allocation["_date"]))
    for transfer in org.objects["BankTransfers"].values():
        amount = transfer["Amount"]
        moved = [Entry(transfer["ToBankAccount"]["Code"], amount), Entry(transfer["FromBankAccount"]["Code"], -amount)]
        out.append(Posted("BankTransfers", transfer["BankTransferID"], moved, transfer["_date"]))
    for journal in org.objects["ManualJournals"].values():
        if journal["Status"] != "POSTED":
            continue
        posted: list[Entry] = []
        for line in journal["JournalLines"]:
            net = (
                line["LineAmount"] - line["TaxAmount"]
                if journal["LineAmountTypes"] == "Inclusive"
                else line["LineAmount"]
            )
            posted.append(Entry(line["AccountCode"], net, _options(line)))
            if line["TaxAmount"]:
                posted.append(Entry(TAX_CODE, line["TaxAmount"]))
        out.append(Posted("ManualJournals", journal["ManualJournalID"], posted, journal["_date"]))
    return out


def ledger_view(org: Organisation) -> dict[str, Any]:
    debit: dict[str, Decimal] = defaultdict(lambda: ZERO)
    credit: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for posted in entries_of(org):
        for code, amount, _tracking in posted.entries:
            if amount >= 0:
                debit[code] += amount
            else:
                credit[code] -= amount
    accounts = []
    for account in sorted(org.accounts.values(), key=lambda a: a["Code"]):
        code = account["Code"]
        if code in debit or code in credit:
            accounts.append(
                {
                    "Code": code,
                    "Name": account["Name"],
                    "Type": account["Type"],
                    "Debit": debit[code],
                    "Credit": credit[code],
                    "Balance": debit[code] - credit[code],
                }
            )
    counts: dict[str, dict[str, int]] = {}
    for resource, objects in org.objects.items():
        by_status: dict[str, int] = defaultdict(int)
        for obj in objects.values():
            by_status[str(obj.get("Status") or obj.get("ContactStatus") or "ACTIVE")] += 1
        counts[resource] = dict(by_status)
    total_debit = sum(debit.values(), ZERO)
    total_credit = sum(credit.values(), ZERO)
    return {
        "tenant_id": org.tenant_id,
        "accounts": accounts,
        "total_debit": total_debit,
        "total_credit": total_credit,
        "balanced": total_debit == total_credit,
        "objects": counts,
        "receivables_outstanding": sum(
            (
                to_base(d["AmountDue"], _rate(d))
                for d in org.objects["Invoices"].values()
                if d["Type"] == "ACCREC" and d["Status"] == "AUTHORISED"
            ),
            ZERO,
        ),
        "payables_outstanding": sum(
            (
                to_base(d["AmountDue"], _rate(d))
                for d in org.objects["Invoices"].values()
                if d["Type"] == "ACCPAY" and d["Status"] == "AUTHORISED"
            ),
            ZERO,
        ),
    }
