"""The accountant's model of a month, written from the Actionstep side: what each kind of
Actionstep transaction debits and credits, with accounts from the connection's account
allocation and the organisation's control accounts, and which matter each entry belongs to. It
knows nothing of the mapper or of Xero's objects, so the balances and the profit per matter it
computes are an independent expectation of the ledger.

A firm may keep its trust money in an organisation of its own: a book then holds one of the
firm's ledgers, the trust kinds in the trust book and the others in the office one; an invoice
paid from trust is of both, the trust bank's side in the trust book and the office bank's in
the office book.

Debits are positive, credits negative, integer cents."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xerolink.actionstep.v1 import common_pb2, transaction_pb2, trust_pb2

# Money held for clients, which a trust account keeps apart from the firm's own.
TRUST_KINDS = frozenset(
    {
        "trust_receipt",
        "trust_payment",
        "trust_journal",
        "trust_transfer",
        "trust_interest",
        "statutory_funds",
        "advanced_funds",
    }
)
# Taken out of trust to pay the firm's bill: trust money leaves one ledger and enters the other.
BOTH_LEDGERS_KINDS = frozenset({"invoice_paid_from_trust"})
NO_MATTER = 0


class Ledgers(enum.Enum):
    """Which of the firm's ledgers a book (an organisation) keeps."""

    OFFICE_AND_TRUST = "office and trust"
    OFFICE = "office"
    TRUST = "trust"


def ledger_of(tx: transaction_pb2.Transaction) -> Ledgers:
    """The ledger a transaction's money is in: OFFICE_AND_TRUST for an invoice paid from trust."""
    kind = tx.WhichOneof("kind")
    if kind in BOTH_LEDGERS_KINDS:
        return Ledgers.OFFICE_AND_TRUST
    return Ledgers.TRUST if kind in TRUST_KINDS else Ledgers.OFFICE


@dataclass(frozen=True)
class Controls:
    """The organisation's control accounts: receivables, payables and the GST account."""

    receivables: str
    payables: str
    gst: str


# (account, cents, matter): one side of an entry and the matter it belongs to.
Entry = tuple[str, int, int]


class Books:
    def __init__(
        self, allocation: Mapping[str, str], controls: Controls, ledgers: Ledgers = Ledgers.OFFICE_AND_TRUST
    ) -> None:
        self.allocation = dict(allocation)
        self.controls = controls
        self.ledgers = ledgers
        self.balances: dict[str, int] = defaultdict(int)
        # matter -> account -> cents: each entry's share, by the matter of its Actionstep line.
        self.by_matter: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.entries = 0

    def _account(self, explicit: str, function: str) -> str:
        """The account the transaction names, else the one the connection allocates."""
        return explicit or self.allocation[function]

    def _keeps(self, ledger: Ledgers) -> bool:
        return self.ledgers is Ledgers.OFFICE_AND_TRUST or self.ledgers is ledger

    def _post(self, *entries: Entry) -> None:
        assert sum(amount for _, amount, _ in entries) == 0, f"unbalanced entry {entries}"
        for account, amount, matter in entries:
            self.balances[account] += amount
            self.by_matter[matter][account] += amount
        self.entries += 1

    def _document(self, lines: Iterable[common_pb2.Line], control: str, debit_lines: bool, matter: int) -> None:
        """Books each line and its GST on one side and the document's total on the control
        account on the other: a bill credits income, a supplier invoice debits expenses."""
        sign = 1 if debit_lines else -1
        entries: list[Entry] = []
        total = 0
        for line in lines:
            entries.append((line.gl_account, sign * line.amount.units, matter))
            entries.append((self.controls.gst, sign * line.tax.units, matter))
            total += line.amount.units + line.tax.units
        entries.append((control, -sign * total, matter))
        self._post(*entries)

    def _move(self, debit: str, credit: str, amount: int, matter: int) -> None:
        self._post((debit, amount, matter), (credit, -amount, matter))

    def record(self, tx: transaction_pb2.Transaction) -> None:
        """Books the transaction, or the half of it in this book's ledger; nothing of another's."""
        ledger = ledger_of(tx)
        if ledger is not Ledgers.OFFICE_AND_TRUST and not self._keeps(ledger):
            return
        kind = tx.WhichOneof("kind")
        c = self.controls
        matter = tx.header.action_id
        if kind == "client_bill":
            self._document(tx.client_bill.lines, c.receivables, debit_lines=False, matter=matter)
        elif kind == "credit_note":
            # A credit note reverses part of a bill: debits income and GST, credits receivables.
            self._document(tx.credit_note.lines, c.receivables, debit_lines=True, matter=matter)
        elif kind == "client_bill_payment":
            payment = tx.client_bill_payment
            bank = self._account(payment.bank_account, "office_bank")
            self._move(bank, c.receivables, payment.amount.units, matter)
        elif kind in ("credit_note_application", "supplier_credit_application"):
            pass  # settles one document against another: no ledger movement
        elif kind == "trust_receipt":
            receipt = tx.trust_receipt
            bank = self._account(receipt.trust_bank_account, "trust_bank")
            self._move(bank, self.allocation["trust_liability"], receipt.amount.units, matter)
        elif kind == "trust_payment":
            spent = tx.trust_payment
            bank = self._account(spent.trust_bank_account, "trust_bank")
            self._move(self.allocation["trust_liability"], bank, spent.amount.units, matter)
        elif kind == "trust_journal":
            # The paying matter's share of the trust liability falls, the receiving one's rises.
            journal = tx.trust_journal
            liability = self.allocation["trust_liability"]
            self._post(
                (liability, journal.amount.units, journal.from_action_id),
                (liability, -journal.amount.units, journal.to_action_id),
            )
        elif kind == "trust_transfer":
            transfer = tx.trust_transfer
            source = self._account(transfer.from_bank_account, "trust_bank")
            self._move(transfer.to_bank_account, source, transfer.amount.units, matter)
        elif kind == "trust_interest":
            interest = tx.trust_interest
            bank = self._account(interest.trust_bank_account, "trust_bank")
            self._move(bank, self.allocation["trust_interest"], interest.amount.units, matter)
        elif kind == "invoice_paid_from_trust":
            paid = tx.invoice_paid_from_trust
            # The firm takes its fee out of trust: the trust bank pays against the matter's
            # liability, and the office bank receives it as the payment of the bill.
            if self._keeps(Ledgers.TRUST):
                bank = self._account(paid.trust_bank_account, "trust_bank")
                self._move(self.allocation["trust_liability"], bank, paid.amount.units, matter)
            if self._keeps(Ledgers.OFFICE):
                self._move(self.allocation["office_bank"], c.receivables, paid.amount.units, matter)
        elif kind in ("statutory_funds", "advanced_funds"):
            funds_body: trust_pb2.StatutoryFunds | trust_pb2.AdvancedFunds = getattr(tx, kind)
            trust = self._account(funds_body.trust_bank_account, "trust_bank")
            if isinstance(funds_body, trust_pb2.StatutoryFunds):
                other = self._account(funds_body.statutory_account, "statutory_deposit")
            else:
                other = self._account(funds_body.advanced_funds_account, "advanced_funds")
            if funds_body.direction == trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST:
                self._move(other, trust, funds_body.amount.units, matter)
            else:
                self._move(trust, other, funds_body.amount.units, matter)
        elif kind == "supplier_invoice":
            self._document(tx.supplier_invoice.lines, c.payables, debit_lines=True, matter=matter)
        elif kind == "supplier_credit":
            self._document(tx.supplier_credit.lines, c.payables, debit_lines=False, matter=matter)
        elif kind == "supplier_invoice_payment":
            body_p = tx.supplier_invoice_payment
            bank = self._account(body_p.bank_account, "office_bank")
            self._move(c.payables, bank, body_p.amount.units, matter)
        else:
            raise AssertionError(f"the model has no entry for {kind}: extend it before generating that kind")

    def nonzero(self) -> dict[str, int]:
        return {account: cents for account, cents in sorted(self.balances.items()) if cents}

    def profit_by_matter(self, profit_and_loss: set[str]) -> dict[int, int]:
        """Income less expenses of each matter (NO_MATTER for entries of none), over the accounts
        of the profit and loss: an income is a credit, so profit is minus the entries' sum."""
        profits = {
            matter: -sum(cents for account, cents in accounts.items() if account in profit_and_loss)
            for matter, accounts in self.by_matter.items()
        }
        return {matter: cents for matter, cents in sorted(profits.items()) if cents}
