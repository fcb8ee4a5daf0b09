"""Identity of Actionstep records and of the Xero objects that links hold."""

from __future__ import annotations

import re
from dataclasses import dataclass

from xerolink_poster.domain.kinds import LinkGroup, TransactionKind

_GROUP_BY_KIND: dict[int, LinkGroup] = {
    TransactionKind.CLIENT_BILL: LinkGroup.SALES_INVOICES,
    TransactionKind.CLIENT_BILL_PAYMENT: LinkGroup.PAYMENTS,
    TransactionKind.CREDIT_NOTE: LinkGroup.CREDIT_NOTES,
    TransactionKind.CREDIT_NOTE_APPLICATION: LinkGroup.CREDIT_NOTES,
    TransactionKind.CREDIT_NOTE_REFUND: LinkGroup.PAYMENTS,
    TransactionKind.OVERPAYMENT_REFUND: LinkGroup.PAYMENTS,
    TransactionKind.INVOICE_PAID_FROM_TRUST: LinkGroup.PAYMENTS,
    # The seed shows bills beside sales invoices.
    TransactionKind.SUPPLIER_INVOICE: LinkGroup.SALES_INVOICES,
    TransactionKind.SUPPLIER_INVOICE_PAYMENT: LinkGroup.PAYMENTS,
    TransactionKind.SUPPLIER_CREDIT: LinkGroup.CREDIT_NOTES,
    TransactionKind.SUPPLIER_CREDIT_APPLICATION: LinkGroup.CREDIT_NOTES,
}


# A name has one spelling (AIP-122): a kind in lower-case ASCII, a number in ASCII digits without
# a leading zero, and a record id that fits the proto's int64.
MAX_RECORD_ID = 2**63 - 1
_NUMBER = re.compile(r"[1-9][0-9]{0,18}")
_SLUG = re.compile(r"[a-z]+(?:-[a-z]+)*")

# The kinds this contract version defines: a record key of any other kind names no record.
KNOWN_KINDS: frozenset[int] = frozenset(TransactionKind) - {TransactionKind.UNSPECIFIED}


def group_of(kind: int) -> LinkGroup:
    """Everything that is not a document, a payment or a credit is a bank transaction
    (trust receipts and payments, transfers, journals, deposits and withdrawals)."""
    return _GROUP_BY_KIND.get(kind, LinkGroup.BANK_TRANSACTIONS)


def kind_slug(kind: int) -> str:
    """The kind as a readable collection id (AIP-122): TRANSACTION_KIND_CLIENT_BILL -> "client-bill".
    A number this contract version does not name stays a number."""
    if kind not in KNOWN_KINDS:
        return str(kind)
    return TransactionKind(kind).name.lower().replace("_", "-")


def kind_from_slug(text: str) -> int | None:
    """The kind a collection id names: "client-bill", or the kind's number as v1 names first had it."""
    if _NUMBER.fullmatch(text):
        kind = int(text)
    else:
        if not _SLUG.fullmatch(text):
            return None
        try:
            kind = int(TransactionKind[text.upper().replace("-", "_")])
        except KeyError:
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
    if kind is None or not _NUMBER.fullmatch(parts[4]) or int(parts[4]) > MAX_RECORD_ID:
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
