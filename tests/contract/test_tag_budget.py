"""The mapper leaves room for the poster's tag: whatever the mapper lets through in a field that
carries the tag (references, narrations, bill and supplier credit numbers, an overpayment's first
line), the poster's tagged value still fits the 255 characters of Xero's document numbers."""

from __future__ import annotations

from xerolink.actionstep.v1 import common_pb2
from xerolink_mapper.domain import xero_fields
from xerolink_poster.adapters import xero_payloads

LONGEST_ID = 2**63 - 1
LONGEST_GENERATION = 2**31 - 1


def test_the_longest_tag_the_poster_adds_fits_the_mappers_budget() -> None:
    kinds = [k for k in common_pb2.TransactionKind.values() if k != common_pb2.TRANSACTION_KIND_UNSPECIFIED]
    longest = max(len(xero_payloads.tracking_reference("", kind, LONGEST_ID, LONGEST_GENERATION)) + 1 for kind in kinds)
    assert longest <= xero_fields.TRACKING_TAG_LENGTH, longest
    for rule in (xero_fields.REFERENCE, xero_fields.NARRATION, xero_fields.SUPPLIER_NUMBER):
        assert rule.limit > 0, rule.what
        tagged = xero_payloads.tracking_reference("x" * rule.limit, kinds[0], LONGEST_ID, LONGEST_GENERATION)
        assert len(tagged) <= xero_fields.INVOICE_NUMBER_LENGTH, rule.what
