"""A realistic month of a law firm's Actionstep transactions, deterministic from a seed.

Every kind the actionstep-compatible profile posts appears: client bills with several lines over
fee and disbursement accounts (GST and GST-free), partial and full payments, credit notes and
their applications, trust receipts and payments, invoices paid from trust, trust interest, trust
journals between matters, trust transfers, statutory and advanced funds, supplier invoices and
their payments, supplier credits and their applications.

The amounts respect what Actionstep itself enforces (a payment never exceeds what is due, a
matter's trust ledger never goes negative, a credit is never applied beyond what is left of it),
so every transaction is one Xero accepts. Transactions come in posting order: chronological, but
now and then a payment is posted before its bill, as happens when receipts are keyed first.

    python -m xerolink_cli.firm_generator --seed 7 --matters 300 > month.ndjson

Amounts are integer cents throughout.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from xerolink.actionstep.v1 import billing_pb2, common_pb2, supplier_pb2, transaction_pb2, trust_pb2
from xerolink.type.v1 import date_pb2, money_pb2

CURRENCY = "AUD"
DIVISION = 1
# Account codes of the firm's chart (the demo organisation's): income, expenses and banks.
FEES = "200"
DISBURSEMENTS_RECOVERED = "210"
DISBURSEMENTS = "310"
OFFICE_EXPENSES = "420"
TELEPHONE = "489"
OFFICE_BANK = "090"
TRUST_BANK = "091"
OFFICE_SAVINGS = "094"
# Actionstep tax codes; the connection maps them to Xero tax types.
GST = "GST"
GST_FREE = "FRE"
BANK_PARTICIPANT = 900
# Posting order: this share of payments is posted before the bill they pay.
EARLY_PAYMENT_SHARE = 0.06

# fmt: off
_FIRST = [
    "Amelia", "Olivia", "Isla", "Ava", "Mia", "Grace", "Chloe", "Ruby", "Zoe", "Harper", "Jack", "Oliver",
    "Noah", "Leo", "William", "Henry", "Thomas", "Lucas", "James", "Charlie", "Ethan", "Samuel", "Max",
    "Archie", "Hugo", "Ivy", "Sienna", "Matilda", "Evie", "Ella",
]
_LAST = [
    "Nguyen", "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Walker", "Harris", "Lee", "Ryan", "Robinson", "Kelly", "King", "Davis", "Wright",
    "Evans", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan",
]
_COMPANY = [
    "Marlow", "Harbour", "Kestrel", "Banksia", "Wattle", "Coastal", "Summit", "Ironbark", "Bluegum",
    "Meridian", "Southern", "Granite", "Lachlan", "Riverside", "Eastwood", "Jacaranda", "Pelican", "Redgum",
    "Seabreeze", "Northgate",
]
# fmt: on
_COMPANY_TAIL = ("Holdings Pty Ltd", "Developments Pty Ltd", "Trading Pty Ltd", "Group Pty Ltd", "Partners")
_SUPPLIERS = (
    ("Metro Process Servers", DISBURSEMENTS),
    ("Counsel Chambers 12", DISBURSEMENTS),
    ("LandInfo Searches", DISBURSEMENTS),
    ("Swift Couriers", DISBURSEMENTS),
    ("Medical Reports Australia", DISBURSEMENTS),
    ("Office Supplies Direct", OFFICE_EXPENSES),
    ("Telco One", TELEPHONE),
    ("Archive Storage Co", OFFICE_EXPENSES),
)
_FEE_WORK = (
    "Advice on lease terms",
    "Drafting deed of variation",
    "Conveyancing - purchase",
    "Conveyancing - sale",
    "Preparing affidavit",
    "Attendance at mediation",
    "Review of contract",
    "Correspondence with other side",
    "Estate administration",
    "Court appearance",
)
_DISBURSEMENT_WORK = (
    ("Title search fee", GST_FREE),
    ("Court filing fee", GST_FREE),
    ("Stamp duty lodgement", GST_FREE),
    ("Courier", GST),
    ("Photocopying", GST),
    ("Settlement agent fee", GST),
)


def gst_on(cents: int) -> int:
    """10% GST rounded half up, in cents."""
    return (cents + 5) // 10


@dataclass
class Party:
    participant_id: int
    display_name: str
    first_name: str = ""
    last_name: str = ""


@dataclass
class Matter:
    action_id: int
    client: Party
    trust: int = 0  # the matter's trust ledger balance, cents


@dataclass
class OpenDocument:
    """A posted bill or supplier invoice and what is still due on it."""

    record_id: int
    matter: Matter | None
    party: Party
    issued: date
    due: int


@dataclass
class _Event:
    day: date
    transaction: transaction_pb2.Transaction
    # The record this event pays or applies to (for posting some payments before their bill).
    depends_on: int = 0


@dataclass
class FirmMonth:
    """The generated month: transactions in posting order, and what they were built from."""

    seed: int
    year: int
    month: int
    matters: list[Matter]
    transactions: list[transaction_pb2.Transaction] = field(default_factory=list)
    early_payments: int = 0

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tx in self.transactions:
            name = tx.WhichOneof("kind") or ""
            counts[name] = counts.get(name, 0) + 1
        return counts


class _Builder:
    def __init__(self, seed: int, year: int, month: int) -> None:
        self.rng = random.Random(seed)
        self.year = year
        self.month = month
        self.next_id = 10_000
        self.events: list[_Event] = []
        self.bank = Party(BANK_PARTICIPANT, "Harbour Bank Ltd")

    # -- small helpers -------------------------------------------------------------------------

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def day(self, earliest: date | None = None, latest_day: int = 28) -> date:
        first = max(earliest.day if earliest else 1, 1)
        return date(self.year, self.month, self.rng.randint(first, max(first, latest_day)))

    def cents(self, low_dollars: int, high_dollars: int) -> int:
        return self.rng.randint(low_dollars * 100, high_dollars * 100)

    def header(
        self, record_id: int, on: date, party: Party | None, action_id: int, reference: str
    ) -> common_pb2.TransactionHeader:
        posted = datetime(on.year, on.month, on.day, 9, tzinfo=UTC) + timedelta(seconds=record_id % 30_000)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(posted)
        header = common_pb2.TransactionHeader(
            id=record_id,
            division_id=DIVISION,
            currency_code=CURRENCY,
            posted_at=stamp,
            transaction_date=_date(on),
            action_id=action_id,
            reference=reference,
        )
        if party is not None:
            header.participant.CopyFrom(
                common_pb2.Participant(
                    participant_id=party.participant_id,
                    display_name=party.display_name,
                    first_name=party.first_name,
                    last_name=party.last_name,
                )
            )
        return header

    def add(
        self,
        record_id: int,
        on: date,
        party: Party | None,
        action_id: int,
        reference: str,
        kind: str,
        body: Message,
        depends_on: int = 0,
    ) -> None:
        """Records one transaction of `kind` (the Transaction oneof field) with its body."""
        tx = transaction_pb2.Transaction(header=self.header(record_id, on, party, action_id, reference))
        getattr(tx, kind).CopyFrom(body)
        self.events.append(_Event(on, tx, depends_on))

    # -- parties -------------------------------------------------------------------------------

    def clients(self, count: int) -> list[Party]:
        seen: set[str] = set()
        out: list[Party] = []
        for index in range(count):
            if self.rng.random() < 0.35:
                name = f"{self.rng.choice(_COMPANY)} {self.rng.choice(_COMPANY_TAIL)}"
                first = last = ""
            else:
                first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
                name = f"{first} {last}"
            # Xero contact names are unique in an organisation; so are Actionstep participants.
            base, suffix = name, 2
            while name in seen:
                name, suffix = f"{base} ({suffix})", suffix + 1
            seen.add(name)
            out.append(Party(500 + index, name, first, last))
        return out

    # -- client side ---------------------------------------------------------------------------

    def bill(self, matter: Matter) -> OpenDocument:
        record_id = self.new_id()
        on = self.day(latest_day=24)
        lines: list[common_pb2.Line] = []
        for _ in range(self.rng.randint(1, 4)):
            hours_tenths = self.rng.randint(3, 60)
            rate = self.rng.choice((25000, 32000, 45000, 55000))
            amount = hours_tenths * rate // 10
            work = self.rng.choice(_FEE_WORK)
            lines.append(
                _line(
                    f"{work} ({hours_tenths / 10:.1f}h)",
                    f"{hours_tenths / 10:.1f}",
                    rate,
                    FEES,
                    GST,
                    amount,
                    gst_on(amount),
                )
            )
        for _ in range(self.rng.randint(0, 3)):
            text, code = self.rng.choice(_DISBURSEMENT_WORK)
            amount = self.cents(8, 400)
            lines.append(
                _line(text, "1", amount, DISBURSEMENTS_RECOVERED, code, amount, gst_on(amount) if code == GST else 0)
            )
        self.add(
            record_id,
            on,
            matter.client,
            matter.action_id,
            f"INV-{record_id}",
            "client_bill",
            billing_pb2.ClientBill(
                bill_number=f"INV-{record_id}",
                due_date=_date(on + timedelta(days=14)),
                lines=lines,
                totals=_totals(lines),
            ),
        )
        return OpenDocument(record_id, matter, matter.client, on, _totals(lines).inclusive.units)

    def credit_note(self, doc: OpenDocument, always_apply: bool = False) -> None:
        record_id = self.new_id()
        on = self.day(doc.issued)
        amount = max(doc.due // self.rng.randint(8, 20) // 11 * 10, 1000)
        line = _line("Fee reduction", "1", amount, FEES, GST, amount, gst_on(amount))
        total = amount + gst_on(amount)
        matter = doc.matter
        assert matter is not None
        self.add(
            record_id,
            on,
            doc.party,
            matter.action_id,
            f"CN-{record_id}",
            "credit_note",
            billing_pb2.CreditNote(
                credit_note_number=f"CN-{record_id}", bill_id=doc.record_id, lines=[line], totals=_totals([line])
            ),
        )
        # Most credits are applied to their bill at once; some stay open (applied later or refunded).
        if (always_apply or self.rng.random() < 0.8) and doc.due > 0:
            applied = min(total, doc.due) if self.rng.random() < 0.7 else min(total // 2, doc.due)
            if applied > 0:
                app_id = self.new_id()
                doc.due -= applied
                self.add(
                    app_id,
                    on,
                    doc.party,
                    matter.action_id,
                    f"CN-{record_id}",
                    "credit_note_application",
                    billing_pb2.CreditNoteApplication(
                        credit_note_id=record_id, bill_id=doc.record_id, amount=_money(applied)
                    ),
                    depends_on=doc.record_id,
                )

    def receipts(self, doc: OpenDocument) -> None:
        """Full, partial (one or two instalments), from trust, or still unpaid."""
        matter = doc.matter
        assert matter is not None
        roll = self.rng.random()
        if roll < 0.2 or doc.due <= 0:
            return
        if roll < 0.4 and matter.trust > 0:
            paid = min(doc.due, matter.trust)
            matter.trust -= paid
            doc.due -= paid
            record_id = self.new_id()
            on = self.day(doc.issued)
            bank = self.rng.choice((TRUST_BANK, ""))
            self.add(
                record_id,
                on,
                doc.party,
                matter.action_id,
                f"TR-{record_id}",
                "invoice_paid_from_trust",
                trust_pb2.InvoicePaidFromTrust(bill_id=doc.record_id, trust_bank_account=bank, amount=_money(paid)),
                depends_on=doc.record_id,
            )
            return
        instalments = [doc.due] if roll < 0.7 else _split(self.rng, doc.due, self.rng.randint(2, 3), partial=roll > 0.9)
        on = doc.issued
        for amount in instalments:
            record_id = self.new_id()
            on = self.day(on)
            doc.due -= amount
            bank = self.rng.choice((OFFICE_BANK, ""))
            self.add(
                record_id,
                on,
                doc.party,
                matter.action_id,
                f"RCP-{record_id}",
                "client_bill_payment",
                billing_pb2.ClientBillPayment(bill_id=doc.record_id, amount=_money(amount), bank_account=bank),
                depends_on=doc.record_id,
            )

    # -- trust ---------------------------------------------------------------------------------

    def trust_receipt(self, matter: Matter) -> None:
        record_id = self.new_id()
        on = self.day(latest_day=12)
        amount = self.cents(500, 60_000)
        matter.trust += amount
        self.add(
            record_id,
            on,
            matter.client,
            matter.action_id,
            f"TRCP-{record_id}",
            "trust_receipt",
            trust_pb2.TrustReceipt(
                trust_bank_account=self.rng.choice((TRUST_BANK, "")),
                amount=_money(amount),
                description="Funds received for matter",
            ),
        )

    def trust_payment(self, matter: Matter) -> None:
        if matter.trust < 200:
            return
        record_id = self.new_id()
        on = self.day(date(self.year, self.month, 13))
        amount = self.rng.randint(100, matter.trust // 2)
        matter.trust -= amount
        self.add(
            record_id,
            on,
            matter.client,
            matter.action_id,
            f"TPAY-{record_id}",
            "trust_payment",
            trust_pb2.TrustPayment(
                trust_bank_account=self.rng.choice((TRUST_BANK, "")),
                amount=_money(amount),
                description=self.rng.choice(("Stamp duty", "Settlement funds", "Payment to vendor")),
            ),
        )

    def trust_journal(self, source: Matter, target: Matter) -> None:
        if source.trust < 200 or source is target:
            return
        record_id = self.new_id()
        on = self.day(date(self.year, self.month, 13))
        amount = self.rng.randint(100, source.trust // 3)
        source.trust -= amount
        target.trust += amount
        self.add(
            record_id,
            on,
            source.client,
            source.action_id,
            f"TJ-{record_id}",
            "trust_journal",
            trust_pb2.TrustJournal(
                from_action_id=source.action_id,
                to_action_id=target.action_id,
                amount=_money(amount),
                description="Move funds to related matter",
            ),
        )

    def trust_interest(self, amount: int) -> None:
        record_id = self.new_id()
        on = date(self.year, self.month, 28)
        self.add(
            record_id,
            on,
            self.bank,
            0,
            f"INT-{record_id}",
            "trust_interest",
            trust_pb2.TrustInterest(trust_bank_account=TRUST_BANK, amount=_money(amount)),
        )

    def trust_transfer(self, amount: int) -> None:
        record_id = self.new_id()
        on = self.day(date(self.year, self.month, 20))
        self.add(
            record_id,
            on,
            None,
            0,
            f"TT-{record_id}",
            "trust_transfer",
            trust_pb2.TrustTransfer(
                from_bank_account=self.rng.choice((TRUST_BANK, "")),
                to_bank_account=OFFICE_BANK,
                amount=_money(amount),
            ),
        )

    def funds(self, statutory: bool, out_of_trust: bool, amount: int) -> None:
        record_id = self.new_id()
        on = self.day(date(self.year, self.month, 14))
        direction = trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST if out_of_trust else trust_pb2.FUNDS_DIRECTION_INTO_TRUST
        reference = f"SF-{record_id}"
        if statutory:
            body: Message = trust_pb2.StatutoryFunds(direction=direction, amount=_money(amount))
            self.add(record_id, on, None, 0, reference, "statutory_funds", body)
        else:
            body = trust_pb2.AdvancedFunds(direction=direction, amount=_money(amount))
            self.add(record_id, on, None, 0, reference, "advanced_funds", body)

    # -- suppliers -----------------------------------------------------------------------------

    def supplier_invoice(self, supplier: Party, account: str, matter: Matter | None) -> OpenDocument:
        record_id = self.new_id()
        on = self.day(latest_day=22)
        lines: list[common_pb2.Line] = []
        for _ in range(self.rng.randint(1, 3)):
            amount = self.cents(15, 2_500)
            code = GST if self.rng.random() < 0.8 else GST_FREE
            lines.append(
                _line(
                    f"{supplier.display_name} services",
                    "1",
                    amount,
                    account,
                    code,
                    amount,
                    gst_on(amount) if code == GST else 0,
                )
            )
        self.add(
            record_id,
            on,
            supplier,
            matter.action_id if matter else 0,
            f"SUP-{record_id}",
            "supplier_invoice",
            supplier_pb2.SupplierInvoice(
                invoice_number=f"{supplier.display_name.split()[0].upper()}-{record_id}",
                due_date=_date(on + timedelta(days=30)),
                lines=lines,
                totals=_totals(lines),
            ),
        )
        return OpenDocument(record_id, matter, supplier, on, _totals(lines).inclusive.units)

    def supplier_credit(self, doc: OpenDocument, account: str, always_apply: bool = False) -> None:
        record_id = self.new_id()
        on = self.day(doc.issued)
        amount = max(doc.due // 5 // 11 * 10, 500)
        line = _line("Credit for overcharge", "1", amount, account, GST, amount, gst_on(amount))
        total = amount + gst_on(amount)
        self.add(
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
                totals=_totals([line]),
            ),
        )
        applied = min(total, doc.due)
        if applied > 0 and (always_apply or self.rng.random() < 0.85):
            app_id = self.new_id()
            doc.due -= applied
            self.add(
                app_id,
                on,
                doc.party,
                0,
                f"SC-{record_id}",
                "supplier_credit_application",
                supplier_pb2.SupplierCreditApplication(
                    supplier_credit_id=record_id, supplier_invoice_id=doc.record_id, amount=_money(applied)
                ),
                depends_on=doc.record_id,
            )

    def supplier_payments(self, doc: OpenDocument) -> None:
        if doc.due <= 0 or self.rng.random() < 0.25:
            return
        parts = [doc.due] if self.rng.random() < 0.75 else _split(self.rng, doc.due, 2, partial=True)
        on = doc.issued
        for amount in parts:
            record_id = self.new_id()
            on = self.day(on)
            doc.due -= amount
            self.add(
                record_id,
                on,
                doc.party,
                0,
                f"EFT-{record_id}",
                "supplier_invoice_payment",
                supplier_pb2.SupplierInvoicePayment(
                    supplier_invoice_id=doc.record_id,
                    amount=_money(amount),
                    bank_account=self.rng.choice((OFFICE_BANK, "")),
                ),
                depends_on=doc.record_id,
            )

    # -- ordering ------------------------------------------------------------------------------

    def posting_order(self) -> tuple[list[transaction_pb2.Transaction], int]:
        ordered = sorted(enumerate(self.events), key=lambda item: (item[1].day, item[0]))
        events = [event for _, event in ordered]
        position = {event.transaction.header.id: i for i, event in enumerate(events)}
        early = 0
        for event in list(events):
            tx = event.transaction
            if not event.depends_on or tx.WhichOneof("kind") not in _PAYMENT_KINDS:
                continue
            if self.rng.random() >= EARLY_PAYMENT_SHARE:
                continue
            # Move the payment to just before the document it pays.
            events.remove(event)
            events.insert(position[event.depends_on], event)
            position = {e.transaction.header.id: i for i, e in enumerate(events)}
            early += 1
        return [event.transaction for event in events], early


_PAYMENT_KINDS = frozenset(("client_bill_payment", "supplier_invoice_payment", "invoice_paid_from_trust"))


def generate_month(seed: int = 1, matters: int = 300, year: int = 2026, month: int = 3) -> FirmMonth:
    """A month of a firm with `matters` open matters, deterministic from `seed`."""
    b = _Builder(seed, year, month)
    clients = b.clients(max(matters * 3 // 4, 1))
    all_matters = [
        Matter(3000 + i, clients[i % len(clients)] if i < len(clients) else b.rng.choice(clients))
        for i in range(matters)
    ]
    suppliers = [(Party(800 + i, name), account) for i, (name, account) in enumerate(_SUPPLIERS)]

    for matter in all_matters:
        if b.rng.random() < 0.45:
            b.trust_receipt(matter)
    # Trust journals between matters of one client, or to a related matter.
    for matter in all_matters:
        if matter.trust and b.rng.random() < 0.15:
            b.trust_journal(matter, b.rng.choice(all_matters))
    documents: list[OpenDocument] = []
    for matter in all_matters:
        for _ in range(b.rng.choice((0, 1, 1, 1, 2))):
            documents.append(b.bill(matter))
    # The first document of each side always gets a credit, so even a small month has every kind.
    for index, doc in enumerate(documents):
        if index == 0 or b.rng.random() < 0.12:
            b.credit_note(doc, always_apply=index == 0)
        b.receipts(doc)
    for matter in all_matters:
        if b.rng.random() < 0.25:
            b.trust_payment(matter)
    bills: list[tuple[OpenDocument, str]] = []
    for matter in all_matters:
        if b.rng.random() < 0.3:
            supplier, account = b.rng.choice(suppliers[:5])
            bills.append((b.supplier_invoice(supplier, account, matter), account))
    for supplier, account in suppliers[5:]:
        for _ in range(max(matters // 60, 1)):
            bills.append((b.supplier_invoice(supplier, account, None), account))
    for index, (doc, account) in enumerate(bills):
        if index == 0 or b.rng.random() < 0.1:
            b.supplier_credit(doc, account, always_apply=index == 0)
        b.supplier_payments(doc)
    held = sum(m.trust for m in all_matters)
    b.trust_interest(max(held // 4000, 1))
    b.trust_transfer(max(held // 50, 100))
    for _ in range(max(matters // 100, 1)):
        b.funds(statutory=True, out_of_trust=True, amount=max(held // 20, 100))
        b.funds(statutory=False, out_of_trust=b.rng.random() < 0.5, amount=b.cents(1_000, 20_000))
    b.funds(statutory=True, out_of_trust=False, amount=max(held // 100, 100))
    transactions, early = b.posting_order()
    return FirmMonth(seed, year, month, all_matters, transactions, early)


# -- proto helpers ---------------------------------------------------------------------------------


def _date(on: date) -> date_pb2.Date:
    return date_pb2.Date(year=on.year, month=on.month, day=on.day)


def _money(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=CURRENCY, units=cents)


def _line(
    description: str, quantity: str, unit_cents: int, account: str, tax_code: str, amount: int, tax: int
) -> common_pb2.Line:
    return common_pb2.Line(
        description=description,
        quantity=quantity,
        unit_price=f"{unit_cents // 100}.{unit_cents % 100:02d}",
        gl_account=account,
        tax_code=tax_code,
        amount=_money(amount),
        tax=_money(tax),
    )


def _totals(lines: list[common_pb2.Line]) -> common_pb2.Totals:
    exclusive = sum(line.amount.units for line in lines)
    tax = sum(line.tax.units for line in lines)
    return common_pb2.Totals(exclusive=_money(exclusive), tax=_money(tax), inclusive=_money(exclusive + tax))


def _split(rng: random.Random, total: int, parts: int, partial: bool) -> list[int]:
    """`parts` instalments summing to `total` (or to less of it when `partial`), each >= 1 cent."""
    target = total if not partial else max(total * rng.randint(30, 90) // 100, 1)
    if target < parts:
        return [target]
    cuts = sorted(rng.sample(range(1, target), parts - 1))
    bounds = [0, *cuts, target]
    return [bounds[i + 1] - bounds[i] for i in range(parts)]


def to_ndjson(transactions: list[transaction_pb2.Transaction]) -> Iterator[str]:
    """One protobuf-JSON transaction a line, the format `xerolink post` reads."""
    for tx in transactions:
        yield json_format.MessageToJson(tx, indent=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--matters", type=int, default=300)
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--month", type=int, default=3)
    args = parser.parse_args(argv)
    month = generate_month(args.seed, args.matters, args.year, args.month)
    for line in to_ndjson(month.transactions):
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
