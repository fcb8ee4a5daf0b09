"""Trust money of the month: receipts and payments on matters' trust ledgers (never below zero),
journals between matters, interest, the transfer to the office, and statutory and advanced funds."""

from __future__ import annotations

from datetime import date

from google.protobuf.message import Message
from xerolink.actionstep.v1 import trust_pb2

from xerolink_cli.firm_month.builder import MonthBuilder
from xerolink_cli.firm_month.chart import OFFICE_BANK, TRUST_BANK
from xerolink_cli.firm_month.records import Matter


def receipt(b: MonthBuilder, matter: Matter) -> None:
    record_id = b.new_id()
    on = b.day(latest_day=12)
    amount = b.cents(500, 60_000)
    matter.trust += amount
    b.add(
        record_id,
        on,
        matter.client,
        matter.action_id,
        f"TRCP-{record_id}",
        "trust_receipt",
        trust_pb2.TrustReceipt(
            trust_bank_account=b.rng.choice((TRUST_BANK, "")),
            amount=b.money(amount),
            description="Funds received for matter",
        ),
    )


def payment(b: MonthBuilder, matter: Matter) -> None:
    if matter.trust < 200:
        return
    record_id = b.new_id()
    on = b.day(date(b.year, b.month, 13))
    amount = b.rng.randint(100, matter.trust // 2)
    matter.trust -= amount
    b.add(
        record_id,
        on,
        matter.client,
        matter.action_id,
        f"TPAY-{record_id}",
        "trust_payment",
        trust_pb2.TrustPayment(
            trust_bank_account=b.rng.choice((TRUST_BANK, "")),
            amount=b.money(amount),
            description=b.rng.choice(("Stamp duty", "Settlement funds", "Payment to vendor")),
        ),
    )


def journal(b: MonthBuilder, source: Matter, target: Matter) -> None:
    if source.trust < 200 or source is target:
        return
    record_id = b.new_id()
    on = b.day(date(b.year, b.month, 13))
    amount = b.rng.randint(100, source.trust // 3)
    source.trust -= amount
    target.trust += amount
    b.add(
        record_id,
        on,
        source.client,
        source.action_id,
        f"TJ-{record_id}",
        "trust_journal",
        trust_pb2.TrustJournal(
            from_action_id=source.action_id,
            to_action_id=target.action_id,
            amount=b.money(amount),
            description="Move funds to related matter",
        ),
    )


def interest(b: MonthBuilder, amount: int) -> None:
    record_id = b.new_id()
    on = date(b.year, b.month, 28)
    b.add(
        record_id,
        on,
        b.bank,
        0,
        f"INT-{record_id}",
        "trust_interest",
        trust_pb2.TrustInterest(trust_bank_account=TRUST_BANK, amount=b.money(amount)),
    )


def transfer(b: MonthBuilder, amount: int) -> None:
    record_id = b.new_id()
    on = b.day(date(b.year, b.month, 20))
    b.add(
        record_id,
        on,
        None,
        0,
        f"TT-{record_id}",
        "trust_transfer",
        trust_pb2.TrustTransfer(
            from_bank_account=b.rng.choice((TRUST_BANK, "")),
            to_bank_account=OFFICE_BANK,
            amount=b.money(amount),
        ),
    )


def funds(b: MonthBuilder, statutory: bool, out_of_trust: bool, amount: int) -> None:
    record_id = b.new_id()
    on = b.day(date(b.year, b.month, 14))
    direction = trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST if out_of_trust else trust_pb2.FUNDS_DIRECTION_INTO_TRUST
    reference = f"SF-{record_id}"
    if statutory:
        body: Message = trust_pb2.StatutoryFunds(direction=direction, amount=b.money(amount))
        b.add(record_id, on, None, 0, reference, "statutory_funds", body)
    else:
        body = trust_pb2.AdvancedFunds(direction=direction, amount=b.money(amount))
        b.add(record_id, on, None, 0, reference, "advanced_funds", body)
