"""The Status values a look-up reads as live or as deleted or voided (`xero_payloads.STATUSES`)
are the values Xero's OpenAPI enumerates for each type's Status: a value Xero can give that the
table leaves out is read as no reading at all (the look-up is made again), so each left out is
named here with why."""

from __future__ import annotations

import pytest
from xerolink_poster.adapters import xero_payloads

from tests.contract.xero_description import xero_description

SCHEMAS = {
    "invoice": "Invoice",
    "credit_note": "CreditNote",
    "payment": "Payment",
    "bank_transaction": "BankTransaction",
    "bank_transfer": "BankTransfer",
    "manual_journal": "ManualJournal",
}
# ARCHIVED: the OpenAPI does not say whether an archived manual journal still posts.
LEFT_OUT = {"manual_journal": {"ARCHIVED"}}


def test_every_type_looked_up_has_its_statuses_read() -> None:
    assert set(xero_payloads.STATUSES) == set(SCHEMAS)
    assert set(SCHEMAS) == set(xero_payloads.RESOURCES) - {"allocation"}  # allocations: IsDeleted


@pytest.mark.parametrize("body", sorted(SCHEMAS))
def test_the_statuses_read_are_the_ones_xero_describes(body: str) -> None:
    described = set(xero_description()["components"]["schemas"][SCHEMAS[body]]["properties"]["Status"]["enum"])
    live, dead = xero_payloads.STATUSES[body]
    assert not live & dead
    assert live | dead == described - LEFT_OUT.get(body, set())


@pytest.mark.parametrize(
    ("body", "status", "read"),
    [
        ("invoice", "PAID", True),
        ("invoice", "paid", True),
        ("invoice", "VOIDED", False),
        ("invoice", " DELETED", None),
        ("invoice", "REMOVED", None),
        ("invoice", None, None),
        ("invoice", 5, None),
        ("payment", "VOIDED", None),  # no value of Payment.Status
        ("manual_journal", "ARCHIVED", None),
        ("manual_journal", "POSTED", True),
    ],
)
def test_a_listed_objects_status_is_read_only_as_its_types_values(body: str, status: object, read: bool | None) -> None:
    assert xero_payloads.is_live(body, {"Status": status}) is read
    assert xero_payloads.is_live(body, {}) is None
