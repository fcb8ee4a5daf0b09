"""The accountant's model of a month, written from the Actionstep side: what each kind of
Actionstep transaction debits and credits, with accounts from the connection's account
allocation and the organisation's control accounts. It knows nothing of the mapper or of
Xero's objects, so the balances it computes are an independent expectation of the ledger.

Debits are positive, credits negative, integer cents."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xerolink.actionstep.v1 import common_pb2, transaction_pb2, trust_pb2


@dataclass(frozen=True)
class Controls:
    """The organisation's control accounts: receivables, payables and the GST account."""

    receivables: str
    payables: str
    gst: str


class Books:
    def __init__(self, allocation: Mapping[str, str], controls: Controls) -> None:
        self.allocation = dict(allocation)
        self.controls = controls
        self.balances: dict[str, int] = defaultdict(int)
        self.entries = 0

    def _account(self, explicit: str, function: str) -> str:
        """The account the transaction names, else the one the connection allocates."""
        return explicit or self.allocation[function]

    def _post(self, *entries: tuple[str, int]) -> None:
        assert sum(amount for _, amount in entries) == 0, f"unbalanced entry {entries}"
        for account, amount in entries:
            self.balances[account] += amount
        self.entries += 1

    def _document(self, lines: Iterable[common_pb2.Line], control: str, debit_lines: bool) -> None:
        """Books each line and its GST on one side and the document's total on the control
        account on the other: a bill credits income, a supplier invoice debits expenses."""
        sign = 1 if debit_lines else -1
        entries: list[tuple[str, int]] = []
        total = 0
        for line in lines:
            entries.append((line.gl_account, sign * line.amount.units))
            entries.append((self.controls.gst, sign * line.tax.units))
            total += line.amount.units + line.tax.units
        entries.append((control, -sign * total))
        self._post(*entries)

    def _move(self, debit: str, credit: str, amount: int) -> None:
        self._post((debit, amount), (credit, -amount))

    def record(self, tx: transaction_pb2.Transaction) -> None:
        kind = tx.WhichOneof("kind")
        c = self.controls
        if kind == "client_bill":
            self._document(tx.client_bill.lines, c.receivables, debit_lines=False)
        elif kind == "credit_note":
            # A credit note reverses part of a bill: debits income and GST, credits receivables.
            self._document(tx.credit_note.lines, c.receivables, debit_lines=True)
        elif kind == "client_bill_payment":
            payment = tx.client_bill_payment
            self._move(self._account(payment.bank_account, "office_bank"), c.receivables, payment.amount.units)
        elif kind in ("credit_note_application", "supplier_credit_application"):
            pass  # settles one document against another: no ledger movement
        elif kind == "trust_receipt":
            receipt = tx.trust_receipt
            bank = self._account(receipt.trust_bank_account, "trust_bank")
            self._move(bank, self.allocation["trust_liability"], receipt.amount.units)
        elif kind == "trust_payment":
            spent = tx.trust_payment
            bank = self._account(spent.trust_bank_account, "trust_bank")
            self._move(self.allocation["trust_liability"], bank, spent.amount.units)
        elif kind == "trust_journal":
            # One matter's share of the trust liability falls, the other's rises.
            liability = self.allocation["trust_liability"]
            self._move(liability, liability, tx.trust_journal.amount.units)
        elif kind == "trust_transfer":
            transfer = tx.trust_transfer
            source = self._account(transfer.from_bank_account, "trust_bank")
            self._move(transfer.to_bank_account, source, transfer.amount.units)
        elif kind == "trust_interest":
            interest = tx.trust_interest
            bank = self._account(interest.trust_bank_account, "trust_bank")
            self._move(bank, self.allocation["trust_interest"], interest.amount.units)
        elif kind == "invoice_paid_from_trust":
            paid = tx.invoice_paid_from_trust
            bank = self._account(paid.trust_bank_account, "trust_bank")
            # The firm takes its fee out of trust: the trust bank pays against the matter's
            # liability, and the office bank receives it as the payment of the bill.
            self._move(self.allocation["trust_liability"], bank, paid.amount.units)
            self._move(self.allocation["office_bank"], c.receivables, paid.amount.units)
        elif kind in ("statutory_funds", "advanced_funds"):
            funds_body: trust_pb2.StatutoryFunds | trust_pb2.AdvancedFunds = getattr(tx, kind)
            trust = self._account(funds_body.trust_bank_account, "trust_bank")
            if isinstance(funds_body, trust_pb2.StatutoryFunds):
                other = self._account(funds_body.statutory_account, "statutory_deposit")
            else:
                other = self._account(funds_body.advanced_funds_account, "advanced_funds")
            if funds_body.direction == trust_pb2.FUNDS_DIRECTION_OUT_OF_TRUST:
                self._move(other, trust, funds_body.amount.units)
            else:
                self._move(trust, other, funds_body.amount.units)
        elif kind == "supplier_invoice":
            self._document(tx.supplier_invoice.lines, c.payables, debit_lines=True)
        elif kind == "supplier_credit":
            self._document(tx.supplier_credit.lines, c.payables, debit_lines=False)
        elif kind == "supplier_invoice_payment":
            body_p = tx.supplier_invoice_payment
            self._move(c.payables, self._account(body_p.bank_account, "office_bank"), body_p.amount.units)
        else:
            raise AssertionError(f"the model has no entry for {kind}: extend it before generating that kind")

    def nonzero(self) -> dict[str, int]:
        return {account: cents for account, cents in sorted(self.balances.items()) if cents}
