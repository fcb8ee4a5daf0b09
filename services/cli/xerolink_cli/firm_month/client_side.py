"""The client side of the month: bills, credit notes and their applications, and the receipts that
pay bills (from the office bank or out of trust), each never beyond what is still due."""

from __future__ import annotations

from datetime import timedelta

from xerolink.actionstep.v1 import billing_pb2, common_pb2, trust_pb2

from xerolink_cli.firm_month import proto_values as pv
from xerolink_cli.firm_month.builder import MonthBuilder, split
from xerolink_cli.firm_month.chart import (
    DISBURSEMENT_WORK,
    DISBURSEMENTS_RECOVERED,
    FEE_WORK,
    FEES,
    OFFICE_BANK,
    TRUST_BANK,
)
from xerolink_cli.firm_month.records import Matter, OpenDocument


def bill(b: MonthBuilder, matter: Matter) -> OpenDocument:
    record_id = b.new_id()
    on = b.day(latest_day=24)
    lines: list[common_pb2.Line] = []
    for _ in range(b.rng.randint(1, 4)):
        hours_tenths = b.rng.randint(3, 60)
        rate = b.rng.choice((25000, 32000, 45000, 55000))
        amount = hours_tenths * rate // 10
        work = b.rng.choice(FEE_WORK)
        lines.append(
            b.line(f"{work} ({hours_tenths / 10:.1f}h)", f"{hours_tenths / 10:.1f}", rate, FEES, amount, taxed=True)
        )
    for _ in range(b.rng.randint(0, 3)):
        text, taxed = b.rng.choice(DISBURSEMENT_WORK)
        amount = b.cents(8, 400)
        lines.append(b.line(text, "1", amount, DISBURSEMENTS_RECOVERED, amount, taxed))
    b.add(
        record_id,
        on,
        matter.client,
        matter.action_id,
        f"INV-{record_id}",
        "client_bill",
        billing_pb2.ClientBill(
            bill_number=f"INV-{record_id}",
            due_date=pv.date(on + timedelta(days=14)),
            lines=lines,
            totals=b.totals(lines),
        ),
    )
    return OpenDocument(record_id, matter, matter.client, on, b.totals(lines).inclusive.units)


def credit_note(b: MonthBuilder, doc: OpenDocument, always_apply: bool = False) -> None:
    record_id = b.new_id()
    on = b.day(doc.issued)
    # A share of what is due, before tax and in whole ten cents.
    amount = max(b.region.without_tax(doc.due // b.rng.randint(8, 20)) // 10 * 10, 1000)
    line = b.line("Fee reduction", "1", amount, FEES, amount, taxed=True)
    total = amount + b.tax_on(amount)
    matter = doc.matter
    assert matter is not None
    b.add(
        record_id,
        on,
        doc.party,
        matter.action_id,
        f"CN-{record_id}",
        "credit_note",
        billing_pb2.CreditNote(
            credit_note_number=f"CN-{record_id}", bill_id=doc.record_id, lines=[line], totals=b.totals([line])
        ),
    )
    # Most credits are applied to their bill at once; some stay open (applied later or refunded).
    if (always_apply or b.rng.random() < 0.8) and doc.due > 0:
        applied = min(total, doc.due) if b.rng.random() < 0.7 else min(total // 2, doc.due)
        if applied > 0:
            app_id = b.new_id()
            doc.due -= applied
            b.add(
                app_id,
                on,
                doc.party,
                matter.action_id,
                f"CN-{record_id}",
                "credit_note_application",
                billing_pb2.CreditNoteApplication(
                    credit_note_id=record_id, bill_id=doc.record_id, amount=b.money(applied)
                ),
                depends_on=doc.record_id,
            )


def receipts(b: MonthBuilder, doc: OpenDocument) -> None:
    """Full, partial (one or two instalments), from trust, or still unpaid."""
    matter = doc.matter
    assert matter is not None
    roll = b.rng.random()
    if roll < 0.2 or doc.due <= 0:
        return
    if roll < 0.4 and matter.trust > 0:
        paid = min(doc.due, matter.trust)
        matter.trust -= paid
        doc.due -= paid
        record_id = b.new_id()
        on = b.day(doc.issued)
        bank = b.rng.choice((TRUST_BANK, ""))
        b.add(
            record_id,
            on,
            doc.party,
            matter.action_id,
            f"TR-{record_id}",
            "invoice_paid_from_trust",
            trust_pb2.InvoicePaidFromTrust(bill_id=doc.record_id, trust_bank_account=bank, amount=b.money(paid)),
            depends_on=doc.record_id,
        )
        return
    instalments = [doc.due] if roll < 0.7 else split(b.rng, doc.due, b.rng.randint(2, 3), partial=roll > 0.9)
    on = doc.issued
    for amount in instalments:
        record_id = b.new_id()
        on = b.day(on)
        doc.due -= amount
        bank = b.rng.choice((OFFICE_BANK, ""))
        b.add(
            record_id,
            on,
            doc.party,
            matter.action_id,
            f"RCP-{record_id}",
            "client_bill_payment",
            billing_pb2.ClientBillPayment(bill_id=doc.record_id, amount=b.money(amount), bank_account=bank),
            depends_on=doc.record_id,
        )
