"""The month under construction: record ids, days, transaction headers, the client list, and the
posting order the transactions finally come in."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.type.v1 import money_pb2

from xerolink_cli.firm_month import names
from xerolink_cli.firm_month import proto_values as pv
from xerolink_cli.firm_month.chart import BANK_PARTICIPANT, DIVISION
from xerolink_cli.firm_month.records import Party
from xerolink_cli.firm_month.regions import FirmRegion

# Posting order: this share of payments is posted before the bill they pay.
EARLY_PAYMENT_SHARE = 0.06
PAYMENT_KINDS = frozenset(("client_bill_payment", "supplier_invoice_payment", "invoice_paid_from_trust"))


@dataclass
class Event:
    day: date
    transaction: transaction_pb2.Transaction
    # The record this event pays or applies to (for posting some payments before their bill).
    depends_on: int = 0


class MonthBuilder:
    """The month being generated: its random source, the firm's region (currency and tax), the
    next record id and the transactions so far. The kinds' modules (client_side, trust, suppliers)
    add to it."""

    def __init__(self, seed: int, year: int, month: int, region: FirmRegion) -> None:
        self.rng = random.Random(seed)
        self.year = year
        self.month = month
        self.region = region
        self.next_id = 10_000
        self.events: list[Event] = []
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

    # -- money in the region's currency and tax -------------------------------------------------

    def money(self, cents: int) -> money_pb2.Money:
        return pv.money(cents, self.region.currency)

    def tax_on(self, cents: int) -> int:
        return self.region.tax_on(cents)

    def line(
        self, description: str, quantity: str, unit_cents: int, account: str, amount: int, taxed: bool
    ) -> common_pb2.Line:
        """A document line of `amount` cents, with the region's tax when `taxed` (else none)."""
        tax = self.tax_on(amount) if taxed else 0
        code = self.region.code(taxed)
        return pv.line(description, quantity, unit_cents, account, code, self.money(amount), self.money(tax))

    def totals(self, lines: list[common_pb2.Line]) -> common_pb2.Totals:
        return pv.totals(lines, self.region.currency)

    def header(
        self, record_id: int, on: date, party: Party | None, action_id: int, reference: str
    ) -> common_pb2.TransactionHeader:
        posted = datetime(on.year, on.month, on.day, 9, tzinfo=UTC) + timedelta(seconds=record_id % 30_000)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(posted)
        header = common_pb2.TransactionHeader(
            id=record_id,
            division_id=DIVISION,
            currency_code=self.region.currency,
            posted_at=stamp,
            transaction_date=pv.date(on),
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
        self.events.append(Event(on, tx, depends_on))

    # -- parties -------------------------------------------------------------------------------

    def clients(self, count: int) -> list[Party]:
        seen: set[str] = set()
        out: list[Party] = []
        for index in range(count):
            if self.rng.random() < 0.35:
                name = f"{self.rng.choice(names.COMPANY)} {self.rng.choice(names.COMPANY_TAIL)}"
                first = last = ""
            else:
                first, last = self.rng.choice(names.FIRST), self.rng.choice(names.LAST)
                name = f"{first} {last}"
            # Xero contact names are unique in an organisation; so are Actionstep participants.
            base, suffix = name, 2
            while name in seen:
                name, suffix = f"{base} ({suffix})", suffix + 1
            seen.add(name)
            out.append(Party(500 + index, name, first, last))
        return out

    # -- ordering ------------------------------------------------------------------------------

    def posting_order(self) -> tuple[list[transaction_pb2.Transaction], int]:
        ordered = sorted(enumerate(self.events), key=lambda item: (item[1].day, item[0]))
        events = [event for _, event in ordered]
        position = {event.transaction.header.id: i for i, event in enumerate(events)}
        early = 0
        for event in list(events):
            tx = event.transaction
            if not event.depends_on or tx.WhichOneof("kind") not in PAYMENT_KINDS:
                continue
            if self.rng.random() >= EARLY_PAYMENT_SHARE:
                continue
            # Move the payment to just before the document it pays.
            events.remove(event)
            events.insert(position[event.depends_on], event)
            position = {e.transaction.header.id: i for i, e in enumerate(events)}
            early += 1
        return [event.transaction for event in events], early


def split(rng: random.Random, total: int, parts: int, partial: bool) -> list[int]:
    """`parts` instalments summing to `total` (or to less of it when `partial`), each >= 1 cent."""
    target = total if not partial else max(total * rng.randint(30, 90) // 100, 1)
    if target < parts:
        return [target]
    cuts = sorted(rng.sample(range(1, target), parts - 1))
    bounds = [0, *cuts, target]
    return [bounds[i + 1] - bounds[i] for i in range(parts)]
