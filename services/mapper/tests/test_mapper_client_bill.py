"""Client bills become one AUTHORISED ACCREC invoice, lines summed per account and tax type."""

from __future__ import annotations

from datetime import date

from mapper_factories import context, line, totals_of, transaction
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import DocumentBody, Kind, Line
from xerolink_mapper.domain.xero import Invoice, InvoiceType, LineAmountTypes


def bill(lines: list[Line]) -> DocumentBody:
    return DocumentBody("INV-1001", tuple(lines), totals_of(lines), due_date=date(2026, 4, 1))


def test_client_bill_lines_are_summed_per_account_and_tax_type() -> None:
    lines = [
        line("200", "GST", 45000, 4500, "Advice"),
        line("210", "GST", 2050, 205, "Search fee"),
        line("200", "GST", 30000, 3000, "Drafting"),
        line("210", "FRE", 8900, 0, "Filing fee"),
    ]
    outcome = map_transaction(transaction(Kind.CLIENT_BILL, bill(lines)), context())

    assert outcome.decision.supported and outcome.decision.reason_code == "SUPPORTED"
    assert [op.local_ref for op in outcome.operations] == ["invoice"]
    invoice = outcome.operations[0].body
    assert isinstance(invoice, Invoice)
    assert invoice.type is InvoiceType.ACCREC
    assert invoice.line_amount_types is LineAmountTypes.EXCLUSIVE
    summed = {(i.account_code, i.tax_type): (i.line_amount, i.tax_amount) for i in invoice.line_items}
    assert summed == {
        ("200", "OUTPUT"): (75000, 7500),
        ("210", "OUTPUT"): (2050, 205),
        ("210", "EXEMPTOUTPUT"): (8900, 0),
    }
    assert invoice.line_items[0].description == "Advice; Drafting"
    assert (invoice.sub_total, invoice.total_tax, invoice.total) == (85950, 7705, 93655)
    assert outcome.total == 93655
    assert invoice.invoice_number == "INV-1001"
    assert invoice.contact.contact_number == "AS-501"
    assert invoice.due_date == date(2026, 4, 1)
