"""An Australian sample transaction as a firm of another region records it: its currency, the
firm's tax codes, and tax at the region's rate with the totals that follow. Integer cents only."""

from __future__ import annotations

from google.protobuf.message import Message
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.type.v1 import money_pb2

from xerolink_cli.firm_month.regions import AU, FirmRegion

# The Australian sample's codes, by whether they carry tax.
_AU_CODES = {AU.taxed_code: True, AU.untaxed_code: False}


def localise(transaction: transaction_pb2.Transaction, region: FirmRegion) -> transaction_pb2.Transaction:
    copy = transaction_pb2.Transaction()
    copy.CopyFrom(transaction)
    if region.key != AU.key:
        _rewrite(copy, region)
    return copy


def _rewrite(message: Message, region: FirmRegion) -> None:
    if isinstance(message, money_pb2.Money):
        message.currency_code = region.currency
        return
    if isinstance(message, common_pb2.Line) and message.tax_code in _AU_CODES:
        taxed = _AU_CODES[message.tax_code]
        message.tax_code = region.code(taxed)
        message.tax.units = region.tax_on(message.amount.units) if taxed else 0
    for descriptor, value in message.ListFields():
        if descriptor.name == "currency_code" and descriptor.type == descriptor.TYPE_STRING:
            setattr(message, descriptor.name, region.currency)
        elif descriptor.message_type is not None:
            for item in value if descriptor.is_repeated else [value]:
                if isinstance(item, Message):
                    _rewrite(item, region)
    fields = message.DESCRIPTOR.fields_by_name
    if "lines" in fields and "totals" in fields and message.HasField("totals"):
        # Any message with lines and totals (documents of every kind): read by name.
        repeated = getattr(message, "lines")  # noqa: B009 - a Message has no typed attributes
        lines = [line for line in repeated if isinstance(line, common_pb2.Line)]
        if lines:
            exclusive = sum(line.amount.units for line in lines)
            tax = sum(line.tax.units for line in lines)
            totals = getattr(message, "totals")  # noqa: B009 - as above
            totals.exclusive.units, totals.tax.units, totals.inclusive.units = exclusive, tax, exclusive + tax


# A settlement kind -> the fields naming the documents it settles (payments, applications, refunds).
_SETTLES = {
    "client_bill_payment": ("bill_id",),
    "invoice_paid_from_trust": ("bill_id",),
    "credit_note_application": ("credit_note_id", "bill_id"),
    "credit_note_refund": ("credit_note_id",),
    "supplier_invoice_payment": ("supplier_invoice_id",),
    "supplier_credit_application": ("supplier_credit_id", "supplier_invoice_id"),
}


def _inclusive(message: Message) -> int | None:
    """The inclusive total of the document a transaction's body is (its totals, at any depth)."""
    for descriptor, value in message.ListFields():
        if descriptor.name == "totals" and isinstance(value, common_pb2.Totals):
            return int(value.inclusive.units)
        if descriptor.message_type is not None and not descriptor.is_repeated:
            found = _inclusive(value)
            if found is not None:
                return found
    return None


def localise_all(
    transactions: list[transaction_pb2.Transaction], region: FirmRegion
) -> list[transaction_pb2.Transaction]:
    """The transactions as `localise` makes them, with each settlement fitted to its documents'
    totals at the region's rate: one that settled a document in full settles it in full, and none
    settles more than what its documents still owe (Xero refuses that, as it should)."""
    owed: dict[int, tuple[int, int]] = {}  # document id -> (total in the sample, still owed here)
    localised = []
    for transaction in transactions:
        copy = localise(transaction, region)
        kind = copy.WhichOneof("kind")
        body = getattr(copy, kind) if kind else None
        total = _inclusive(body) if body is not None else None
        if total is not None:
            owed[copy.header.id] = (_inclusive(getattr(transaction, str(kind))) or 0, total)
        fields = _SETTLES.get(str(kind), ())
        documents = [getattr(body, f) for f in fields if getattr(body, f) in owed]
        if documents and region.key != AU.key:
            amount = body.amount.units  # type: ignore[union-attr]
            fitted = amount
            for document in documents:
                sample_total, still_owed = owed[document]
                fitted = min(still_owed if amount == sample_total else fitted, still_owed)
            body.amount.units = fitted  # type: ignore[union-attr]
            for document in documents:
                sample_total, still_owed = owed[document]
                owed[document] = (sample_total, still_owed - fitted)
        localised.append(copy)
    return localised
