"""What a generated month is made of: parties, matters, the documents still open, and the month."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from xerolink.actionstep.v1 import transaction_pb2

from xerolink_cli.firm_month.regions import FirmRegion


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
class FirmMonth:
    """The generated month: transactions in posting order, and what they were built from (the
    region gives the currency of every amount, the tax rate and the tax codes)."""

    seed: int
    region: FirmRegion
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
