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


_KIND_PREFIX = "TRANSACTION_KIND_"


def kind_slug(kind: int) -> str:
    """The kind as a readable collection id (AIP-122): TRANSACTION_KIND_CLIENT_BILL -> "client-bill".
    A number this contract version does not name stays a number."""
    if kind not in KNOWN_KINDS:
        return str(kind)
    return common_pb2.TransactionKind.Name(kind).removeprefix(_KIND_PREFIX).lower().replace("_", "-")  # type: ignore[arg-type]


def kind_from_slug(text: str) -> int | None:
    """The kind a collection id names: "client-bill", or the kind's number as v1 names first had it."""
    if text.isdigit():
        kind = int(text)
    else:
        if not text or "_" in text:
            return None
        try:
            kind = common_pb2.TransactionKind.Value(_KIND_PREFIX + text.upper().replace("-", "_"))
        except ValueError:
            return None
    return kind if kind in KNOWN_KINDS else None


@dataclass(frozen=True, order=True)
class RecordRef:
    kind: int
    id: int

    def __str__(self) -> str:
        return f"{kind_slug(self.kind)}/{self.id}"


def link_name(connection_id: str, record: RecordRef) -> str:
    """ "connections/{connection_id}/links/{kind}/{id}", e.g. "connections/main/links/client-bill/1103"."""
    return f"connections/{connection_id}/links/{record}"


def parse_link_name(name: str) -> tuple[str, RecordRef] | None:
    """The connection and record a link name names, the kind by name or by number; None when the
    text is not a link name."""
    parts = name.split("/")
    if len(parts) != 5 or parts[0] != "connections" or parts[2] != "links" or not parts[1]:
        return None
    kind = kind_from_slug(parts[3])
    if kind is None or not parts[4].isdigit() or int(parts[4]) <= 0:
        return None
    return parts[1], RecordRef(kind, int(parts[4]))


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
