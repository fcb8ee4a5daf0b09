"""Reports by matter: one Xero tracking category per connection ("Matter" unless the context names
another) with one option per matter.

A matter's option is created under the matter's Actionstep action id as its name; the matter is
its identity. Once found or created it is known by its TrackingOptionID (kept in the registry),
whatever it is renamed to in Xero later. These are the rules that decide what to do with the
categories and options Xero lists; the calls are made by the dispatcher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

DEFAULT_CATEGORY_NAME = "Matter"
# TrackingCategory.Name, TrackingOption.Name and LineItemTracking.Name: "max length = 100" (Xero's
# OpenAPI description). The tracking categories page's PUT section still says 50 for an option's
# name; an action id is at most 19 digits, within either.
NAME_MAX = 100
# "A Xero organisation can have a maximum of two ACTIVE tracking categories and four tracking
# categories total (ACTIVE and ARCHIVED)." (developer.xero.com/documentation/api/tracking-categories,
# PUT TrackingCategories).
ACTIVE_CATEGORY_LIMIT = 2
CATEGORY_LIMIT = 4
# Options per category: no source from Xero was found. 100 active options per category (archived
# ones not counted) is what third-party guides say; it is an assumption, and Xero's own refusal of
# a create beyond its real limit still fails the postings that need it, with Xero's message.
ACTIVE_OPTION_LIMIT = 100

ACTIVE = "ACTIVE"
ARCHIVED = "ARCHIVED"


class OptionState(StrEnum):
    """A matter option's state in the registry; the values are stored."""

    ACTIVE = "active"  # ACTIVE in Xero: lines of the matter carry it
    ARCHIVED = "archived"  # archived by CloseMatter; made ACTIVE again before a later line uses it


class Origin(StrEnum):
    """How a category or option link came to be; the values are stored."""

    CREATED = "created"
    FOUND = "found"  # already in Xero under its name (an answer lost, or the firm made it first)


@dataclass(frozen=True)
class XeroOption:
    option_id: str
    name: str
    status: str


@dataclass(frozen=True)
class XeroCategory:
    category_id: str
    name: str
    status: str
    options: tuple[XeroOption, ...] = ()


@dataclass(frozen=True)
class LineTracking:
    """What a tracked line carries: the matter's option in the connection's category."""

    category_id: str
    category_name: str
    option_id: str
    option_name: str


class CategoryFinding(Enum):
    ACTIVE = "active"  # adopt it
    ARCHIVED = "archived"  # refuse: the firm archived it in Xero
    ABSENT = "absent"  # create it
    LIMIT = "limit"  # refuse: Xero would not take another category


@dataclass(frozen=True)
class CategoryLookup:
    finding: CategoryFinding
    category: XeroCategory | None = None
    message: str = ""


def option_name(action_id: int) -> str:
    """The name a matter's option is created and looked for under: the action id as text."""
    if action_id <= 0:
        raise ValueError(f"a matter's action id is positive, not {action_id}")
    return str(action_id)


def category_name(configured: str) -> str:
    """The connection's category name: MatterTracking.category_name, or "Matter" when empty."""
    return configured.strip() or DEFAULT_CATEGORY_NAME


def find_category(categories: Sequence[XeroCategory], name: str) -> CategoryLookup:
    """What to do about the connection's category among every category Xero lists (archived
    included): matched by the exact name only."""
    live = [c for c in categories if c.status in (ACTIVE, ARCHIVED)]
    named = [c for c in live if c.name == name]
    active = [c for c in named if c.status == ACTIVE]
    if active:
        return CategoryLookup(CategoryFinding.ACTIVE, active[0])
    if named:
        return CategoryLookup(
            CategoryFinding.ARCHIVED,
            named[0],
            f"the Xero tracking category {name!r} is archived: restore it in Xero (Settings > Tracking "
            "categories), or name another category in the connection's matter_tracking.category_name; then "
            "post again",
        )
    active_count = sum(1 for c in live if c.status == ACTIVE)
    if active_count >= ACTIVE_CATEGORY_LIMIT or len(live) >= CATEGORY_LIMIT:
        return CategoryLookup(
            CategoryFinding.LIMIT,
            None,
            f"Xero allows at most two active tracking categories and four in all; the organisation has "
            f"{active_count} active and {len(live)} in all, so the category {name!r} for matters cannot be "
            "created: archive or delete one in Xero, or name an existing active category in the "
            "connection's matter_tracking.category_name; then post again",
        )
    return CategoryLookup(CategoryFinding.ABSENT)


def find_option(category: XeroCategory, name: str) -> XeroOption | None:
    """The category's option of exactly this name, active or archived (never a deleted one)."""
    for option in category.options:
        if option.name == name and option.status in (ACTIVE, ARCHIVED):
            return option
    return None


def room_for_options(category: XeroCategory) -> int:
    """How many more options can be made active in the category (ACTIVE_OPTION_LIMIT)."""
    active = sum(1 for o in category.options if o.status == ACTIVE)
    return max(ACTIVE_OPTION_LIMIT - active, 0)


def refused_for_tracking(messages: Sequence[str]) -> bool:
    """Whether Xero refused an element over its lines' tracking: a message that names tracking.
    Xero documents no wording for a category or option name that no longer matches its ID; its
    refusal of tracking without a known category name reads "There is no ACTIVE tracking category
    with the name ''" (quoted in calcinai/xero-php#386), and the emulator's refusal of a stale name
    names the TrackingOptionID or TrackingCategoryID. A refusal for anything else names no
    tracking, and one that does but is not about names is refused again after the re-read."""
    return any("tracking" in message.lower() for message in messages)


def renamed_options(category: XeroCategory, stored: Mapping[str, str]) -> dict[str, str]:
    """The options of `stored` (TrackingOptionID: the name the registry holds) whose name in
    Xero's category is now another: the option is still the matter's, found by its ID."""
    return {
        o.option_id: o.name
        for o in category.options
        if o.option_id in stored and o.name and stored[o.option_id] != o.name
    }


def option_limit_message(category: str) -> str:
    return (
        f"the Xero tracking category {category!r} holds {ACTIVE_OPTION_LIMIT} active options, as many as it "
        "can: close matters that are finished (CloseMatter, or `xerolink matters close`) to archive their "
        "options, then post again"
    )


def _text(value: Any) -> str:
    return str(value) if isinstance(value, str | int) else ""


def categories_of(body: dict[str, Any]) -> list[XeroCategory]:
    """The categories (and their options) of an answer of GET or PUT TrackingCategories."""
    out: list[XeroCategory] = []
    for item in body.get("TrackingCategories") or []:
        if not isinstance(item, dict) or not item.get("TrackingCategoryID"):
            continue
        options = tuple(
            XeroOption(_text(o.get("TrackingOptionID")), _text(o.get("Name")), _text(o.get("Status")).upper())
            for o in item.get("Options") or []
            if isinstance(o, dict) and o.get("TrackingOptionID")
        )
        out.append(
            XeroCategory(
                _text(item["TrackingCategoryID"]), _text(item.get("Name")), _text(item.get("Status")).upper(), options
            )
        )
    return out


def options_of(body: dict[str, Any]) -> list[XeroOption]:
    """The options of an answer of PUT or POST .../Options (TrackingOptions)."""
    return [
        XeroOption(_text(o.get("TrackingOptionID")), _text(o.get("Name")), _text(o.get("Status")).upper())
        for o in body.get("Options") or []
        if isinstance(o, dict) and o.get("TrackingOptionID")
    ]
