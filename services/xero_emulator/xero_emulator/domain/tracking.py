"""Tracking categories and their options, and the Tracking array of a line.

Sources (see docs/emulator.md, "Tracking"; the research is in the poster team's notes):
- developer.xero.com/documentation/api/tracking-categories: "A Xero organisation can have a maximum
  of two ACTIVE tracking categories and four tracking categories total (ACTIVE and ARCHIVED)";
  the API can "Rename tracking categories and options, Update the status of tracking categories
  and options, Delete unused tracking categories and options".
- Xero's OpenAPI: category and option names "max length = 100"; "Any LineItem can have a maximum
  of 2 <TrackingCategory> elements" (JournalLine likewise); a line's tracking element carries
  TrackingCategoryID, TrackingOptionID, Name and Option.
- calcinai/xero-php#920 quotes Xero's "For each specified tracking option the name must be unique."
Not sourced from Xero (emulator assumptions, listed under "Known differences"): 100 ACTIVE options
per category, case-insensitive uniqueness, archived options refused on new lines, one option per
category on a line, and the wording of the other messages."""

from __future__ import annotations

from functools import partial
from typing import Any

from xero_emulator.domain.errors import Errors, NotFound, ValidationFailure
from xero_emulator.domain.organisation import Organisation, is_guid, new_id

MAX_ACTIVE_CATEGORIES = 2
MAX_CATEGORIES = 4  # ACTIVE and ARCHIVED together
MAX_ACTIVE_OPTIONS = 100
MAX_NAME = 100
MAX_PER_LINE = 2
STATUSES = ("ACTIVE", "ARCHIVED")

Obj = dict[str, Any]


def categories(org: Organisation) -> dict[str, Obj]:
    return org.tracking_categories


def _live(org: Organisation) -> list[Obj]:
    return [c for c in categories(org).values() if c["Status"] != "DELETED"]


def _name(element: Obj, field: str, what: str, *, required: bool) -> str | None:
    value = element.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailure(f"{what} name must be specified.")
    if len(value) > MAX_NAME:
        raise ValidationFailure(f"{what} name must not be more than {MAX_NAME} characters long.")
    return value.strip()


def _status(element: Obj, current: str | None) -> str | None:
    value = element.get("Status", current)
    if value not in STATUSES:
        raise ValidationFailure("Status must be ACTIVE or ARCHIVED.")
    return str(value)


def listing(org: Organisation, include_archived: bool) -> list[Obj]:
    """Categories with their options as GET /TrackingCategories returns them: ACTIVE only unless
    includeArchived (then ARCHIVED categories and options too); DELETED never."""
    shown = ("ACTIVE", "ARCHIVED") if include_archived else ("ACTIVE",)
    return [
        {**c, "Options": [o for o in c["Options"] if o["Status"] in shown]}
        for c in categories(org).values()
        if c["Status"] in shown
    ]


def view(category: Obj) -> Obj:
    """One category fetched by ID: its ACTIVE and ARCHIVED options."""
    return {**category, "Options": [o for o in category["Options"] if o["Status"] != "DELETED"]}


def find_category(org: Organisation, key: str) -> Obj:
    found = categories(org).get(key.lower()) if is_guid(key) else None
    if found is None:
        raise NotFound("TrackingCategories", key)
    return found


def find_option(category: Obj, key: str) -> Obj:
    found: Obj | None = next(
        (o for o in category["Options"] if is_guid(key) and o["TrackingOptionID"] == key.lower()), None
    )
    if found is None or found["Status"] == "DELETED":
        raise NotFound("TrackingOptions", key)
    return found


def _check_category_limits(org: Organisation, category: Obj | None, status: str) -> None:
    others = [c for c in _live(org) if c is not category]
    if status == "ACTIVE" and sum(c["Status"] == "ACTIVE" for c in others) >= MAX_ACTIVE_CATEGORIES:
        raise ValidationFailure(
            "A Xero organisation can have a maximum of two ACTIVE tracking categories. Archive or delete one first."
        )
    if category is None and len(others) >= MAX_CATEGORIES:
        raise ValidationFailure(
            "A Xero organisation can have a maximum of four tracking categories total (ACTIVE and ARCHIVED)."
        )


def _check_category_name(org: Organisation, category: Obj | None, name: str) -> None:
    if any(c is not category and c["Name"].lower() == name.lower() for c in _live(org)):
        raise ValidationFailure(f"The tracking category name {name} is already in use; it must be unique.")


def create_category(org: Organisation, element: Obj) -> Obj:
    errors = Errors()
    name = errors.check(lambda: _name(element, "Name", "The tracking category", required=True))
    status = errors.check(lambda: _status(element, "ACTIVE"))
    if name is not None:
        errors.check(lambda: _check_category_name(org, None, name))
    if status is not None:
        errors.check(lambda: _check_category_limits(org, None, status))
    errors.raise_any()
    category: Obj = {"TrackingCategoryID": new_id(), "Name": name, "Status": status, "Options": []}
    categories(org)[category["TrackingCategoryID"]] = category
    return category


def update_category(org: Organisation, category: Obj, element: Obj) -> Obj:
    if category["Status"] == "DELETED":
        raise ValidationFailure("This tracking category has been deleted and cannot be changed.")
    errors = Errors()
    name = errors.check(lambda: _name(element, "Name", "The tracking category", required=False))
    status = errors.check(lambda: _status(element, category["Status"]))
    if name is not None:
        errors.check(lambda: _check_category_name(org, category, name))
    if status is not None and status != category["Status"]:
        errors.check(lambda: _check_category_limits(org, category, status))
    errors.raise_any()
    if name is not None:
        category["Name"] = name
    category["Status"] = status
    return category


def _in_use(org: Organisation, option_ids: set[str]) -> bool:
    for resource, field in (
        ("Invoices", "LineItems"),
        ("CreditNotes", "LineItems"),
        ("BankTransactions", "LineItems"),
        ("ManualJournals", "JournalLines"),
    ):
        for obj in org.objects[resource].values():
            for line in obj.get(field) or []:
                if any(t["TrackingOptionID"] in option_ids for t in line.get("Tracking") or []):
                    return True
    return False


def delete_category(org: Organisation, category: Obj) -> Obj:
    if category["Status"] == "DELETED":
        raise NotFound("TrackingCategories", category["TrackingCategoryID"])
    if _in_use(org, {o["TrackingOptionID"] for o in category["Options"]}):
        raise ValidationFailure(
            "This tracking category is used on transactions and cannot be deleted; archive it instead."
        )
    category["Status"] = "DELETED"
    for option in category["Options"]:
        option["Status"] = "DELETED"
    return category


def _check_option_name(category: Obj, option: Obj | None, name: str) -> None:
    if any(
        o is not option and o["Status"] != "DELETED" and o["Name"].lower() == name.lower() for o in category["Options"]
    ):
        raise ValidationFailure("For each specified tracking option the name must be unique.")


def _active_options(category: Obj) -> int:
    return sum(o["Status"] == "ACTIVE" for o in category["Options"])


def _too_many_options() -> ValidationFailure:
    return ValidationFailure(f"A tracking category can have a maximum of {MAX_ACTIVE_OPTIONS} ACTIVE options.")


def create_options(org: Organisation, category: Obj, elements: list[Obj]) -> list[Obj]:
    """All or nothing: every element is checked (against the others too) before any is added."""
    if category["Status"] == "DELETED":
        raise NotFound("TrackingCategories", category["TrackingCategoryID"])
    errors = Errors()
    pending: list[Obj] = []
    for element in elements:
        name = errors.check(partial(_name, element, "Name", "The tracking option", required=True))
        status = errors.check(partial(_status, element, "ACTIVE"))
        if name is None or status is None:
            continue
        try:
            _check_option_name({"Options": category["Options"] + pending}, None, name)
        except ValidationFailure as failure:
            errors.messages.extend(m for m in failure.messages if m not in errors.messages)
            continue
        pending.append({"TrackingOptionID": new_id(), "Name": name, "Status": status})
    if _active_options(category) + sum(o["Status"] == "ACTIVE" for o in pending) > MAX_ACTIVE_OPTIONS:
        errors.messages.append(str(_too_many_options()))
    errors.raise_any()
    category["Options"].extend(pending)
    return pending


def update_option(org: Organisation, category: Obj, option: Obj, element: Obj) -> Obj:
    errors = Errors()
    name = errors.check(lambda: _name(element, "Name", "The tracking option", required=False))
    status = errors.check(lambda: _status(element, option["Status"]))
    if name is not None:
        errors.check(lambda: _check_option_name(category, option, name))
    if status == "ACTIVE" and option["Status"] != "ACTIVE" and _active_options(category) >= MAX_ACTIVE_OPTIONS:
        errors.messages.append(str(_too_many_options()))
    errors.raise_any()
    if name is not None:
        option["Name"] = name
    option["Status"] = status
    return option


def delete_option(org: Organisation, category: Obj, option: Obj) -> Obj:
    if _in_use(org, {option["TrackingOptionID"]}):
        raise ValidationFailure(
            "This tracking option is used on transactions and cannot be deleted; archive it instead."
        )
    option["Status"] = "DELETED"
    return option


# -- a line's Tracking -----------------------------------------------------------------------------


def line_tracking(org: Organisation, raw: Any, label: str = "Line") -> list[Obj]:
    """The Tracking array of a line as Xero returns it (Name, Option and both IDs). Each element
    names its category by TrackingCategoryID or Name and its option by TrackingOptionID or Option;
    both must be ACTIVE."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ValidationFailure(f"{label}: Tracking must be an array of tracking category elements.")
    if len(raw) > MAX_PER_LINE:
        raise ValidationFailure(f"{label}: a line can have a maximum of 2 tracking categories.")
    errors = Errors()
    out: list[Obj] = []
    for element in raw:
        resolved = errors.check(partial(_resolve, org, element, label))
        if resolved is None:
            continue
        if any(t["TrackingCategoryID"] == resolved["TrackingCategoryID"] for t in out):
            errors.add(f"{label}: a line can have only one option of tracking category '{resolved['Name']}'.")
            continue
        out.append(resolved)
    errors.raise_any()
    return out


def _text(element: Obj, field: str, label: str) -> str | None:
    value = element.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailure(f"{label}: Tracking {field} must be a string.")
    if len(value) > MAX_NAME:
        raise ValidationFailure(f"{label}: Tracking {field} must not be more than {MAX_NAME} characters long.")
    return value


def _resolve(org: Organisation, element: Obj, label: str) -> Obj:
    category_id = _text(element, "TrackingCategoryID", label)
    option_id = _text(element, "TrackingOptionID", label)
    name = _text(element, "Name", label)
    option_name = _text(element, "Option", label)
    if category_id is not None:
        category = categories(org).get(category_id.lower())
        if category is None or category["Status"] == "DELETED":
            raise ValidationFailure(f"{label}: the TrackingCategoryID {category_id} does not exist.")
        if name is not None and name.strip().lower() != category["Name"].lower():
            raise ValidationFailure(
                f"{label}: TrackingCategoryID {category_id} is tracking category '{category['Name']}', not '{name}'."
            )
    elif name is not None:
        category = next(
            (c for c in _live(org) if c["Status"] == "ACTIVE" and c["Name"].lower() == name.strip().lower()), None
        )
        if category is None:
            raise ValidationFailure(f"{label}: There is no ACTIVE tracking category with the name '{name}'.")
    else:
        raise ValidationFailure(f"{label}: each Tracking element needs a TrackingCategoryID or a Name.")
    if category["Status"] != "ACTIVE":
        raise ValidationFailure(f"{label}: the tracking category '{category['Name']}' is {category['Status']}.")
    live_options = [o for o in category["Options"] if o["Status"] != "DELETED"]
    if option_id is not None:
        option = next((o for o in live_options if o["TrackingOptionID"] == option_id.lower()), None)
        if option is None:
            raise ValidationFailure(
                f"{label}: the TrackingOptionID {option_id} is not an option of tracking category '{category['Name']}'."
            )
        if option_name is not None and option_name.strip().lower() != option["Name"].lower():
            raise ValidationFailure(
                f"{label}: TrackingOptionID {option_id} is the option '{option['Name']}', not '{option_name}'."
            )
    elif option_name is not None:
        option = next((o for o in live_options if o["Name"].lower() == option_name.strip().lower()), None)
        if option is None or option["Status"] != "ACTIVE":
            raise ValidationFailure(
                f"{label}: There is no ACTIVE tracking option with the name '{option_name}' "
                f"in tracking category '{category['Name']}'."
            )
    else:
        raise ValidationFailure(f"{label}: each Tracking element needs a TrackingOptionID or an Option.")
    if option["Status"] != "ACTIVE":
        raise ValidationFailure(
            f"{label}: the tracking option '{option['Name']}' of '{category['Name']}' is {option['Status']} "
            "and cannot be used on new transactions."
        )
    return {
        "Name": category["Name"],
        "Option": option["Name"],
        "TrackingCategoryID": category["TrackingCategoryID"],
        "TrackingOptionID": option["TrackingOptionID"],
    }
