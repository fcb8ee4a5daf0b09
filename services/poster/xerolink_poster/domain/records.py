"""Identity of Actionstep records and of the Xero objects that links hold."""

from __future__ import annotations

from dataclasses import dataclass

from xerolink.actionstep.v1 import common_pb2

# Link groups as the seed lists them (Sales Invoices, Payments, Bank Transactions, Credit Notes),
# numbered as xerolink.poster.v1.LinkGroup.
GROUP_SALES_INVOICES = 1
GROUP_PAYMENTS = 2
GROUP_BANK_TRANSACTIONS = 3
GROUP_CREDIT_NOTES = 4

# TransactionKind numbers (xerolink.actionstep.v1.TransactionKind) -> link group.
_GROUP_BY_KIND: dict[int, int] = {
    1: GROUP_SALES_INVOICES,  # client bill
    2: GROUP_PAYMENTS,  # client bill payment
    3: GROUP_CREDIT_NOTES,  # credit note
    4: GROUP_CREDIT_NOTES,  # credit note application
    5: GROUP_PAYMENTS,  # credit note refund
    6: GROUP_PAYMENTS,  # overpayment refund
    13: GROUP_PAYMENTS,  # invoice paid from trust
    17: GROUP_SALES_INVOICES,  # supplier invoice (the seed shows bills beside sales invoices)
    18: GROUP_PAYMENTS,  # supplier invoice payment
    19: GROUP_CREDIT_NOTES,  # supplier credit
    20: GROUP_CREDIT_NOTES,  # supplier credit application
}


# The kinds this contract version defines: a record key of any other kind names no record.
KNOWN_KINDS = frozenset(common_pb2.TransactionKind.values()) - {common_pb2.TRANSACTION_KIND_UNSPECIFIED}


def group_of(kind: int) -> int:
    """Everything that is not a document, a payment or a credit is a bank transaction
    (trust receipts and payments, transfers, journals, deposits and withdrawals)."""
    return _GROUP_BY_KIND.get(kind, GROUP_BANK_TRANSACTIONS)


@dataclass(frozen=True, order=True)
class RecordRef:
    kind: int
    id: int

    def __str__(self) -> str:
        return f"{self.kind}/{self.id}"


@dataclass(frozen=True)
class XeroObjectRef:
    """A Xero object a link holds: type (xerolink.xero.v1.ObjectType number), id, the
    operation that created it, and its document number if it has one."""

    type: int
    xero_id: str
    local_ref: str
    number: str = ""

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "xero_id": self.xero_id, "local_ref": self.local_ref, "number": self.number}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> XeroObjectRef:
        return cls(int(str(data["type"])), str(data["xero_id"]), str(data["local_ref"]), str(data.get("number", "")))
