"""Sample requests for the demo organisation: a mapping context matching the emulator's chart and
one well-formed transaction of every kind. Used by the demo, the benchmark and tests."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from xerolink.actionstep.v1 import banking_pb2, billing_pb2, common_pb2, supplier_pb2, transaction_pb2, trust_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink_common.allocation_functions import AllocationFunction

CURRENCY = "AUD"
DIVISION = 1
CONNECTED_AT = datetime(2026, 1, 1, tzinfo=UTC)

# The demo organisation's allocation (function -> Xero account code).
DEMO_ALLOCATION: dict[str, str] = {
    AllocationFunction.OFFICE_BANK: "090",
    AllocationFunction.TRUST_BANK: "091",
    AllocationFunction.STATUTORY_DEPOSIT: "092",
    AllocationFunction.ADVANCED_FUNDS: "093",
    AllocationFunction.TRUST_LIABILITY: "850",
    AllocationFunction.TRUST_TRANSFERS: "855",
    AllocationFunction.TRUST_PAID_BY_FIRM: "860",
    AllocationFunction.TRUST_INTEREST: "270",
}
DEMO_SALES_TAX = {"GST": "OUTPUT", "FRE": "EXEMPTOUTPUT", "NTR": "BASEXCLUDED"}
DEMO_PURCHASE_TAX = {"GST": "INPUT", "FRE": "EXEMPTEXPENSES", "NTR": "BASEXCLUDED"}
# The demo firm is Australian: its organisation's tax types for lines without a tax code.
DEMO_UNTAXED = {
    "trust_money": "BASEXCLUDED",
    "interest_on_trust": "EXEMPTOUTPUT",
    "journal_without_tax_code": "BASEXCLUDED",
}
# (code, name, type, status, tax type, payments enabled)
DEMO_CHART = (
    ("090", "Office Bank", "BANK", "ACTIVE", "", True),
    ("091", "Trust Bank", "BANK", "ACTIVE", "", True),
    ("092", "Statutory Deposit", "BANK", "ACTIVE", "", True),
    ("093", "Advanced Funds", "BANK", "ACTIVE", "", True),
    ("094", "Office Savings", "BANK", "ACTIVE", "", True),
    ("200", "Legal Fees", "REVENUE", "ACTIVE", "OUTPUT", False),
    ("210", "Disbursements Recovered", "REVENUE", "ACTIVE", "OUTPUT", False),
    ("270", "Interest Income", "REVENUE", "ACTIVE", "EXEMPTOUTPUT", False),
    ("310", "Disbursements", "EXPENSE", "ACTIVE", "INPUT", False),
    ("420", "Office Expenses", "EXPENSE", "ACTIVE", "INPUT", False),
    ("489", "Telephone", "EXPENSE", "ACTIVE", "INPUT", False),
    ("850", "Trust Liability", "CURRLIAB", "ACTIVE", "BASEXCLUDED", False),
    ("855", "Trust Transfers", "CURRLIAB", "ACTIVE", "BASEXCLUDED", True),
    ("860", "Trust Paid by Firm", "CURRLIAB", "ACTIVE", "BASEXCLUDED", True),
    ("880", "Retainers Held", "CURRLIAB", "ACTIVE", "BASEXCLUDED", False),
    ("499", "Old Expenses", "EXPENSE", "ARCHIVED", "INPUT", False),
)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def money(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=CURRENCY, units=cents)


def demo_context(
    profile: int = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE, with_chart: bool = True
) -> mapper_pb2.MappingContext:
    return mapper_pb2.MappingContext(
        profile=profile,  # type: ignore[arg-type]
        linked_division_id=DIVISION,
        connected_at=timestamp(CONNECTED_AT),
        base_currency_code=CURRENCY,
        accounting_method=mapper_pb2.ACCOUNTING_METHOD_ACCRUAL,
        account_allocation=DEMO_ALLOCATION,
        tax_code_map=DEMO_SALES_TAX,
        purchase_tax_code_map=DEMO_PURCHASE_TAX,
        untaxed_line_tax_types=mapper_pb2.UntaxedLineTaxTypes(**DEMO_UNTAXED),
        chart=[
            mapper_pb2.ChartAccount(code=c, name=n, type=t, status=s, tax_type=tax, enable_payments=pay)
            for c, n, t, s, tax, pay in DEMO_CHART
        ]
        if with_chart
        else [],
    )


def header(record_id: int, participant_id: int = 501, reference: str = "") -> common_pb2.TransactionHeader:
    return common_pb2.TransactionHeader(
        id=record_id,
        division_id=DIVISION,
        currency_code=CURRENCY,
        posted_at=timestamp(datetime(2026, 3, 2, 9, 30, tzinfo=UTC)),
        transaction_date=date_pb2.Date(year=2026, month=3, day=2),
        action_id=7001,
        participant=common_pb2.Participant(
            participant_id=participant_id, display_name="Harper & Cole Pty Ltd", email="accounts@harpercole.example"
        ),
        reference=reference or f"AS-{record_id}",
    )


def line(description: str, account: str, tax_code: str, cents: int, tax_cents: int) -> common_pb2.Line:
    return common_pb2.Line(
        description=description,
        quantity="1",
        unit_price=f"{cents // 100}.{cents % 100:02d}",
        gl_account=account,
        tax_code=tax_code,
        amount=money(cents),
        tax=money(tax_cents),
    )


def totals(lines: list[common_pb2.Line]) -> common_pb2.Totals:
    exclusive = sum(item.amount.units for item in lines)
    tax = sum(item.tax.units for item in lines)
    return common_pb2.Totals(exclusive=money(exclusive), tax=money(tax), inclusive=money(exclusive + tax))


def client_bill(record_id: int = 1001, lines: list[common_pb2.Line] | None = None) -> transaction_pb2.Transaction:
    items = lines or [
        line("Advice on lease, 1.5h", "200", "GST", 45000, 4500),
        line("Drafting deed of variation", "200", "GST", 30000, 3000),
        line("Search fees", "210", "GST", 2050, 205),
        line("Court filing fee", "210", "FRE", 8900, 0),
    ]
    return transaction_pb2.Transaction(
        header=header(record_id),
        client_bill=billing_pb2.ClientBill(
            bill_number=f"INV-{record_id}",
            due_date=date_pb2.Date(year=2026, month=4, day=1),
            lines=items,
            totals=totals(items),
        ),
    )


def sample_transactions(base_id: int = 1000) -> dict[str, transaction_pb2.Transaction]:
    """One well-formed transaction of every kind, by oneof field name."""
    expense_lines = [line("Printer toner", "420", "GST", 18000, 1800), line("Mobile plan", "489", "GST", 5000, 500)]
    deposit_lines = [line("Sublease rent", "200", "GST", 120000, 12000)]
    doc = supplier_pb2.PurchaseDocument(number="PO-1", lines=expense_lines, totals=totals(expense_lines))
    journal = [
        common_pb2.JournalLine(gl_account="420", description="Reclassify toner", amount=money(18000)),
        common_pb2.JournalLine(gl_account="310", description="Reclassify toner", amount=money(-18000)),
    ]
    bodies: dict[str, object] = {
        "client_bill": client_bill(base_id + 1).client_bill,
        "client_bill_payment": billing_pb2.ClientBillPayment(bill_id=base_id + 1, amount=money(50000)),
        "credit_note": billing_pb2.CreditNote(
            credit_note_number=f"CN-{base_id + 3}",
            bill_id=base_id + 1,
            lines=[line("Fee reduction", "200", "GST", 10000, 1000)],
            totals=totals([line("Fee reduction", "200", "GST", 10000, 1000)]),
        ),
        "credit_note_application": billing_pb2.CreditNoteApplication(
            credit_note_id=base_id + 3, bill_id=base_id + 1, amount=money(11000)
        ),
        "credit_note_refund": billing_pb2.CreditNoteRefund(credit_note_id=base_id + 3, amount=money(11000)),
        "overpayment_refund": billing_pb2.OverpaymentRefund(
            receipt_id=base_id + 2, overpaid_amount=money(2500), refund_amount=money(2500)
        ),
        "general_retainer": billing_pb2.GeneralRetainer(amount=money(100000)),
        "trust_receipt": trust_pb2.TrustReceipt(amount=money(500000), description="Deposit on purchase"),
        "trust_payment": trust_pb2.TrustPayment(amount=money(120000), description="Stamp duty"),
        "trust_journal": trust_pb2.TrustJournal(from_action_id=7001, to_action_id=7002, amount=money(30000)),
        "trust_transfer": trust_pb2.TrustTransfer(to_bank_account="090", amount=money(86000)),
        "trust_interest": trust_pb2.TrustInterest(amount=money(1234)),
        "invoice_paid_from_trust": trust_pb2.InvoicePaidFromTrust(bill_id=base_id + 1, amount=money(40000)),
        "statutory_funds": trust_pb2.StatutoryFunds(
            direction=trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST, amount=money(200000)
        ),
        "advanced_funds": trust_pb2.AdvancedFunds(direction=trust_pb2.FUNDS_DIRECTION_INTO_TRUST, amount=money(50000)),
        "trust_bank_reconciliation": trust_pb2.TrustBankReconciliation(
            statement_date=date_pb2.Date(year=2026, month=3, day=31), statement_balance=money(1000000)
        ),
        "supplier_invoice": supplier_pb2.SupplierInvoice(
            invoice_number="SUP-88",
            due_date=date_pb2.Date(year=2026, month=3, day=30),
            lines=expense_lines,
            totals=totals(expense_lines),
        ),
        "supplier_invoice_payment": supplier_pb2.SupplierInvoicePayment(
            supplier_invoice_id=base_id + 17, amount=money(25300)
        ),
        "supplier_credit": supplier_pb2.SupplierCredit(
            credit_number="SC-9",
            supplier_invoice_id=base_id + 17,
            lines=expense_lines[:1],
            totals=totals(expense_lines[:1]),
        ),
        "supplier_credit_application": supplier_pb2.SupplierCreditApplication(
            supplier_credit_id=base_id + 19, supplier_invoice_id=base_id + 17, amount=money(19800)
        ),
        "purchase_order": doc,
        "purchase_credit_order": doc,
        "pre_entered_supplier_invoice": doc,
        "bank_deposit": banking_pb2.BankEntry(lines=deposit_lines, totals=totals(deposit_lines)),
        "bank_withdrawal": banking_pb2.BankEntry(lines=expense_lines, totals=totals(expense_lines)),
        "office_bank_transfer": banking_pb2.OfficeBankTransfer(
            from_bank_account="090", to_bank_account="094", amount=money(1000000)
        ),
        "electronic_payment_batch": banking_pb2.ElectronicPaymentBatch(total=money(25300)),
        "bank_reconciliation": banking_pb2.BankReconciliation(
            bank_account="090", statement_date=date_pb2.Date(year=2026, month=3, day=31)
        ),
        "printed_cheque": banking_pb2.PaymentDocument(number="000123", total=money(25300)),
        "deposit_slip": banking_pb2.PaymentDocument(number="DS-4", total=money(50000)),
        "general_journal": banking_pb2.GeneralJournal(narration="Reclassify toner", lines=journal),
        "sales_tax_return": banking_pb2.SalesTaxReturn(tax_payable=money(4500)),
    }
    out = {}
    for offset, (name, body) in enumerate(bodies.items(), start=1):
        tx = transaction_pb2.Transaction(header=header(base_id + offset))
        getattr(tx, name).CopyFrom(body)
        out[name] = tx
    return out
