"""The mapper's length limits are Xero's: each is read here from Xero's OpenAPI description of the
Accounting API, so a limit in the mapper cannot drift from the file, and a limit Xero adds to a
field the mapper fills fails here until the mapper applies it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from xerolink_common.money import CURRENCY_CODES
from xerolink_mapper.domain import xero_fields

from tests.contract.xero_description import xero_description

# The Xero objects the mapper's operations become (Account: the codes of lines and bank accounts).
PRODUCED = (
    "Invoice",
    "CreditNote",
    "LineItem",
    "Payment",
    "Allocation",
    "BankTransaction",
    "BankTransfer",
    "ManualJournal",
    "ManualJournalLine",
    "Contact",
    "Account",
)
# (object, field) -> the mapper's limit for the text it puts there.
FILLED: dict[tuple[str, str], int] = {
    ("Contact", "Name"): xero_fields.CONTACT_NAME_LENGTH,
    ("Contact", "ContactNumber"): xero_fields.CONTACT_NUMBER_LENGTH,
    ("Contact", "FirstName"): xero_fields.CONTACT_FIRST_NAME_LENGTH,
    ("Contact", "LastName"): xero_fields.CONTACT_LAST_NAME_LENGTH,
    ("Contact", "EmailAddress"): xero_fields.CONTACT_EMAIL_LENGTH,
    ("Contact", "TaxNumber"): xero_fields.CONTACT_TAX_NUMBER_LENGTH,
    ("Invoice", "InvoiceNumber"): xero_fields.INVOICE_NUMBER_LENGTH,
    ("Account", "Code"): xero_fields.ACCOUNT_CODE_LENGTH,
}
# Bounded fields of those objects that the mapper never fills.
NOT_FILLED = {
    ("Contact", "AccountNumber"),
    ("Contact", "CompanyNumber"),
    ("Account", "Name"),
    ("Account", "Description"),
}
# Fields the mapper fills that the description leaves unbounded: the mapper's own budget applies.
UNBOUNDED = {
    ("Invoice", "Reference"),
    ("CreditNote", "CreditNoteNumber"),
    ("CreditNote", "Reference"),
    ("LineItem", "Description"),
    ("Payment", "Reference"),
    ("BankTransaction", "Reference"),
    ("BankTransfer", "Reference"),
    ("ManualJournal", "Narration"),
    ("ManualJournalLine", "Description"),
}
# Some limits are stated only in the field's description: "(max length = 10)".
_STATED = re.compile(r"max length\s*=\s*(\d+)")


def _limit(field: dict[str, Any]) -> int | None:
    if "maxLength" in field:
        return int(field["maxLength"])
    stated = _STATED.search(field.get("description", ""))
    return int(stated.group(1)) if stated else None


def _limits() -> dict[tuple[str, str], int]:
    schemas = xero_description()["components"]["schemas"]
    out: dict[tuple[str, str], int] = {}
    for name in PRODUCED:
        for field_name, field in schemas[name].get("properties", {}).items():
            limit = _limit(field)
            if limit is not None:
                out[(name, field_name)] = limit
    return out


@pytest.mark.parametrize(
    ("object_field", "limit"), sorted(FILLED.items()), ids=lambda v: ".".join(v) if isinstance(v, tuple) else str(v)
)
def test_each_limit_of_the_mapper_is_the_one_xero_describes(object_field: tuple[str, str], limit: int) -> None:
    assert _limits().get(object_field) == limit


def test_every_bounded_field_of_the_produced_objects_is_limited_or_never_filled() -> None:
    assert set(_limits()) == set(FILLED) | NOT_FILLED


def test_the_fields_on_the_mapper_s_own_budget_are_still_unbounded_in_the_description() -> None:
    """If Xero bounds one of them, its limit must be read from the file like the others."""
    assert not UNBOUNDED & set(_limits())
    schemas = xero_description()["components"]["schemas"]
    for name, field_name in UNBOUNDED:
        assert field_name in schemas[name]["properties"], f"{name}.{field_name} is gone from the description"


def test_references_leave_room_for_the_poster_s_tag_within_xero_s_document_numbers() -> None:
    """The poster appends a tag of up to 45 characters to references, narrations and supplier numbers: the longest
    reference the mapper lets through, tagged, still fits the 255 of Xero's invoice number."""
    assert xero_fields.REFERENCE_LENGTH + xero_fields.TRACKING_TAG_LENGTH <= xero_fields.INVOICE_NUMBER_LENGTH


def test_the_contact_number_the_mapper_makes_always_fits() -> None:
    assert len(xero_fields.contact_number(2**63 - 1)) <= xero_fields.CONTACT_NUMBER_LENGTH


def test_the_matter_tracking_category_name_is_held_to_xero_s_limit() -> None:
    """MappingContext.matter_tracking.category_name becomes a TrackingCategory's name (the poster's)."""
    schemas = xero_description()["components"]["schemas"]
    assert _limit(schemas["TrackingCategory"]["properties"]["Name"]) == xero_fields.TRACKING_CATEGORY_NAME_LENGTH


def test_the_currency_codes_the_mapper_takes_are_those_xero_lists() -> None:
    """xerolink_common.money.CURRENCY_CODES holds the ISO 4217 codes Xero's CurrencyCode lists: one
    Xero does not know would be refused after the caller was told it is posted."""
    listed = set(xero_description()["components"]["schemas"]["CurrencyCode"]["enum"])
    assert set(CURRENCY_CODES) == listed
