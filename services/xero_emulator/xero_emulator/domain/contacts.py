"""Contacts: names are unique among active contacts; ContactNumber is the stable key a
practice system sets."""

from __future__ import annotations

from typing import Any

from xero_emulator.domain.errors import Errors
from xero_emulator.domain.field_rules import check_lengths
from xero_emulator.domain.organisation import Organisation, new_id, now_utc
from xero_emulator.jsonio import ms_datetime

_TEXT_FIELDS = (
    "ContactNumber",
    "AccountNumber",
    "FirstName",
    "LastName",
    "EmailAddress",
    "TaxNumber",
    "CompanyNumber",
)


def create_contact(org: Organisation, element: dict[str, Any]) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "ContactID": new_id(),
        "ContactStatus": "ACTIVE",
        "Name": "",
        "IsSupplier": False,
        "IsCustomer": False,
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasAttachments": False,
        "HasValidationErrors": False,
    }
    _apply(org, contact, element)
    contact["UpdatedDateUTC"] = ms_datetime(now_utc())
    return org.put("Contacts", contact)


def update_contact(org: Organisation, contact: dict[str, Any], element: dict[str, Any]) -> dict[str, Any]:
    _apply(org, contact, element)
    org.touch("Contacts", contact)
    return contact


def find_by_number(org: Organisation, number: str) -> dict[str, Any] | None:
    return next((c for c in org.objects["Contacts"].values() if c.get("ContactNumber") == number), None)


def _apply(org: Organisation, contact: dict[str, Any], element: dict[str, Any]) -> None:
    errors = Errors()
    name = element.get("Name", contact["Name"])
    errors.check(lambda: check_lengths("Contacts", element))
    if not isinstance(name, str) or not name.strip():
        errors.add("The contact name must be specified.")
    elif len(name) <= 255:  # a longer name is reported by check_lengths
        clash = next(
            (
                c
                for c in org.objects["Contacts"].values()
                if c is not contact and c["ContactStatus"] == "ACTIVE" and c["Name"].lower() == name.strip().lower()
            ),
            None,
        )
        if clash is not None:
            errors.add(
                f"The contact name {name.strip()} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )
    for field in _TEXT_FIELDS:
        if field in element and element[field] is not None and not isinstance(element[field], str):
            errors.add(f"{field} must be a string.")
    status = element.get("ContactStatus", contact["ContactStatus"])
    if status not in ("ACTIVE", "ARCHIVED"):
        errors.add("ContactStatus must be ACTIVE or ARCHIVED.")
    for flag in ("IsSupplier", "IsCustomer"):
        if flag in element and not isinstance(element[flag], bool):
            errors.add(f"{flag} must be true or false.")
    errors.raise_any()
    contact["Name"] = str(name).strip()
    contact["ContactStatus"] = status
    for field in _TEXT_FIELDS:
        if isinstance(element.get(field), str):
            contact[field] = element[field]
    for flag in ("IsSupplier", "IsCustomer"):
        if flag in element:
            contact[flag] = element[flag]
