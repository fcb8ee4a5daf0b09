"""The ledger view: the journal entries each live object implies and the totals per account,
so tests can check what was really posted. Debits are positive, credits negative."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from xero_emulator.domain.amounts import ZERO
from xero_emulator.domain.chart import AP_CODE, AR_CODE, GST_CODE
from xero_emulator.domain.lines import net_amount
from xero_emulator.domain.organisation import Organisation

Entry = tuple[str, Decimal]  # (account code, signed amount: debit > 0)
_LIVE_DOCUMENT = ("AUTHORISED", "PAID")


def _document_entries(doc: dict[str, Any], sign: int, control: str) -> list[Entry]:
    """sign +1 books the lines as credits (sales side), -1 as debits (purchases side)."""
    entries: list[Entry] = [(control, sign * doc["Total"])]
    for line in doc["LineItems"]:
        entries.append((line["AccountCode"], -sign * net_amount(line, doc["LineAmountTypes"])))
        if line["TaxAmount"]:
            entries.append((GST_CODE, -sign * line["TaxAmount"]))
    return entries


def entries_of(org: Organisation) -> list[tuple[str, str, list[Entry]]]:
    """(resource, id, entries) for every object that touches the ledger."""
    out: list[tuple[str, str, list[Entry]]] = []
    for doc in org.objects["Invoices"].values():
        if doc["Status"] in _LIVE_DOCUMENT:
            sales = doc["Type"] == "ACCREC"
            out.append(
                (
                    "Invoices",
                    doc["InvoiceID"],
                    _document_entries(doc, 1 if sales else -1, AR_CODE if sales else AP_CODE),
                )
            )
    for doc in org.objects["CreditNotes"].values():
        if doc["Status"] in _LIVE_DOCUMENT:
            sales = doc["Type"] == "ACCRECCREDIT"
            out.append(
                (
                    "CreditNotes",
                    doc["CreditNoteID"],
                    _document_entries(doc, -1 if sales else 1, AR_CODE if sales else AP_CODE),
                )
            )
    for tx in org.objects["BankTransactions"].values():
        if tx["Status"] != "AUTHORISED":
            continue
        receive = tx["Type"].startswith("RECEIVE")
        out.append(
            (
                "BankTransactions",
                tx["BankTransactionID"],
                _document_entries(tx, 1 if receive else -1, tx["BankAccount"]["Code"]),
            )
        )
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
        amount = payment["Amount"] if money_in else -payment["Amount"]
        out.append(("Payments", payment["PaymentID"], [(bank, amount), (control, -amount)]))
    for transfer in org.objects["BankTransfers"].values():
        amount = transfer["Amount"]
        out.append(
            (
                "BankTransfers",
                transfer["BankTransferID"],
                [(transfer["ToBankAccount"]["Code"], amount), (transfer["FromBankAccount"]["Code"], -amount)],
            )
        )
    for journal in org.objects["ManualJournals"].values():
        if journal["Status"] != "POSTED":
            continue
        entries: list[Entry] = []
        for line in journal["JournalLines"]:
            net = (
                line["LineAmount"] - line["TaxAmount"]
                if journal["LineAmountTypes"] == "Inclusive"
                else line["LineAmount"]
            )
            entries.append((line["AccountCode"], net))
            if line["TaxAmount"]:
                entries.append((GST_CODE, line["TaxAmount"]))
        out.append(("ManualJournals", journal["ManualJournalID"], entries))
    return out


def ledger_view(org: Organisation) -> dict[str, Any]:
    debit: dict[str, Decimal] = defaultdict(lambda: ZERO)
    credit: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for _resource, _id, entries in entries_of(org):
        for code, amount in entries:
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
                d["AmountDue"]
                for d in org.objects["Invoices"].values()
                if d["Type"] == "ACCREC" and d["Status"] == "AUTHORISED"
            ),
            ZERO,
        ),
        "payables_outstanding": sum(
            (
                d["AmountDue"]
                for d in org.objects["Invoices"].values()
                if d["Type"] == "ACCPAY" and d["Status"] == "AUTHORISED"
            ),
            ZERO,
        ),
    }
