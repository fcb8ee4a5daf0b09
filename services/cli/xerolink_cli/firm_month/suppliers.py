"""The suppliers' side of the month: their invoices (on a matter or the office's), credits and
their applications, and the payments of what is still due."""

from __future__ import annotations

from datetime import timedelta

from xerolink.actionstep.v1 import common_pb2, supplier_pb2

from xerolink_cli.firm_month import proto_values as pv
from xerolink_cli.firm_month.builder import MonthBuilder, split
from xerolink_cli.firm_month.chart import OFFICE_BANK
from xerolink_cli.firm_month.records import Matter, OpenDocument, Party


def invoice(b: MonthBuilder, supplier: Party, account: str, matter: Matter | None) -> OpenDocument:
    record_id = b.new_id()
    on = b.day(latest_day=22)
    lines: list[common_pb2.Line] = []
    for _ in range(b.rng.randint(1, 3)):
        amount = b.cents(15, 2_500)
        taxed = b.rng.random() < 0.8
        lines.append(b.line(f"{supplier.display_name} services", "1", amount, account, amount, taxed))
    b.add(
        record_id,
        on,
        supplier,
        matter.action_id if matter else 0,
        f"SUP-{record_id}",
        "supplier_invoice",
        supplier_pb2.SupplierInvoice(
            invoice_number=f"{supplier.display_name.split()[0].upper()}-{record_id}",
            due_date=pv.date(on + timedelta(days=30)),
            lines=lines,
            totals=b.totals(lines),
        ),
    )
    return OpenDocument(record_id, matter, supplier, on, b.totals(lines).inclusive.units)


def credit(b: MonthBuilder, doc: OpenDocument, account: str, always_apply: bool = False) -> None:
    record_id = b.new_id()
    on = b.day(doc.issued)
    # A fifth of what is due, before tax and in whole ten cents.
    amount = max(b.region.without_tax(doc.due // 5) // 10 * 10, 500)
    line = b.line("Credit for overcharge", "1", amount, account, amount, taxed=True)
    total = amount + b.tax_on(amount)
    b.add(
        record_id,
        on,
        doc.party,
        0,
        f"SC-{record_id}",
        "supplier_credit",
        supplier_pb2.SupplierCredit(
            credit_number=f"SC-{record_id}",
            supplier_invoice_id=doc.record_id,
            lines=[line],
            totals=b.totals([line]),
        ),
    )
    applied = min(total, doc.due)
    if applied > 0 and (always_apply or b.rng.random() < 0.85):
        app_id = b.new_id()
        doc.due -= applied
        b.add(
            app_id,
            on,
            doc.party,
            0,
            f"SC-{record_id}",
            "supplier_credit_application",
            supplier_pb2.SupplierCreditApplication(
                supplier_credit_id=record_id, supplier_invoice_id=doc.record_id, amount=b.money(applied)
            ),
            depends_on=doc.record_id,
        )


def payments(b: MonthBuilder, doc: OpenDocument) -> None:
    if doc.due <= 0 or b.rng.random() < 0.25:
        return
    parts = [doc.due] if b.rng.random() < 0.75 else split(b.rng, doc.due, 2, partial=True)
    on = doc.issued
    for amount in parts:
        record_id = b.new_id()
        on = b.day(on)
        doc.due -= amount
        b.add(
            record_id,
            on,
            doc.party,
            0,
            f"EFT-{record_id}",
            "supplier_invoice_payment",
            supplier_pb2.SupplierInvoicePayment(
                supplier_invoice_id=doc.record_id,
                amount=b.money(amount),
                bank_account=b.rng.choice((OFFICE_BANK, "")),
            ),
            depends_on=doc.record_id,
        )
