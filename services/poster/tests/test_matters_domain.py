"""Matters' tracking options: names, Xero's limits, and what to do with the categories and options
Xero lists."""

from __future__ import annotations

import pytest
from xerolink_poster.domain import matters
from xerolink_poster.domain.matters import (
    CategoryFinding,
    OptionState,
    XeroCategory,
    XeroOption,
    category_name,
    find_category,
    find_option,
    option_name,
    room_for_options,
)


def _category(name: str, status: str = "ACTIVE", options: tuple[XeroOption, ...] = ()) -> XeroCategory:
    return XeroCategory(f"id-{name}-{status}", name, status, options)


def test_an_option_is_named_by_its_matter_id() -> None:
    assert option_name(4711) == "4711"
    with pytest.raises(ValueError):
        option_name(0)


def test_the_category_is_matter_unless_the_context_names_another() -> None:
    assert category_name("") == "Matter"
    assert category_name("  ") == "Matter"
    assert category_name("Files") == "Files"


def test_option_states_are_the_stored_words() -> None:
    assert OptionState("active") is OptionState.ACTIVE
    assert OptionState("archived") is OptionState.ARCHIVED


def test_an_active_category_of_the_exact_name_is_adopted() -> None:
    found = find_category([_category("Region"), _category("Matter")], "Matter")
    assert found.finding is CategoryFinding.ACTIVE
    assert found.category is not None and found.category.category_id == "id-Matter-ACTIVE"


def test_a_category_of_a_near_name_is_not_ours() -> None:
    for near in ("matter", "Matter ", "Matters"):
        assert find_category([_category(near)], "Matter").finding is CategoryFinding.ABSENT


def test_an_archived_category_of_the_name_is_refused_not_adopted() -> None:
    found = find_category([_category("Matter", "ARCHIVED")], "Matter")
    assert found.finding is CategoryFinding.ARCHIVED


def test_a_deleted_category_does_not_count() -> None:
    found = find_category([_category("Matter", "DELETED"), _category("A"), _category("B")], "Matter")
    assert found.finding is CategoryFinding.LIMIT


def test_two_active_categories_leave_no_room_for_a_third() -> None:
    found = find_category([_category("Region"), _category("Department")], "Matter")
    assert found.finding is CategoryFinding.LIMIT
    assert "two active" in found.message


def test_four_categories_in_all_leave_no_room_for_a_fifth() -> None:
    categories = [_category("A"), _category("B", "ARCHIVED"), _category("C", "ARCHIVED"), _category("D", "ARCHIVED")]
    assert find_category(categories, "Matter").finding is CategoryFinding.LIMIT
    assert find_category(categories[:3], "Matter").finding is CategoryFinding.ABSENT


def test_an_option_is_found_by_its_exact_name_only() -> None:
    options = (XeroOption("o1", "12", "ACTIVE"), XeroOption("o2", "123", "ARCHIVED"), XeroOption("o3", "7", "DELETED"))
    category = _category("Matter", options=options)
    assert find_option(category, "123") == XeroOption("o2", "123", "ARCHIVED")
    assert find_option(category, "1") is None
    assert find_option(category, "7") is None


def test_room_for_options_counts_the_active_ones() -> None:
    active = tuple(XeroOption(f"a{i}", str(i), "ACTIVE") for i in range(matters.ACTIVE_OPTION_LIMIT - 2))
    archived = tuple(XeroOption(f"r{i}", f"x{i}", "ARCHIVED") for i in range(5))
    assert room_for_options(_category("Matter", options=active + archived)) == 2
    full = tuple(XeroOption(f"a{i}", str(i), "ACTIVE") for i in range(matters.ACTIVE_OPTION_LIMIT))
    assert room_for_options(_category("Matter", options=full)) == 0


def test_categories_are_read_from_xeros_answer() -> None:
    body = {
        "TrackingCategories": [
            {
                "TrackingCategoryID": "c1",
                "Name": "Matter",
                "Status": "ACTIVE",
                "Options": [{"TrackingOptionID": "o1", "Name": "5", "Status": "ARCHIVED"}, "junk"],
            },
            "junk",
            {"Name": "no id"},
        ]
    }
    assert matters.categories_of(body) == [XeroCategory("c1", "Matter", "ACTIVE", (XeroOption("o1", "5", "ARCHIVED"),))]


def test_a_refusal_that_names_tracking_is_one_of_the_lines_tracking() -> None:
    # The emulator's words for a name that no longer matches the ID, and Xero's for a category
    # name it does not know (quoted in calcinai/xero-php#386).
    assert matters.refused_for_tracking(["Line 1: TrackingOptionID o1 is the option 'Smith v Jones', not '7001'."])
    assert matters.refused_for_tracking(["There is no ACTIVE tracking category with the name ''"])
    assert not matters.refused_for_tracking(["Account code '999' is not a valid code for this document."])
    assert not matters.refused_for_tracking([])


def test_names_changed_in_xero_are_found_by_the_options_id() -> None:
    category = _category(
        "Matter",
        options=(XeroOption("o1", "Smith v Jones", "ACTIVE"), XeroOption("o2", "7002", "ARCHIVED")),
    )
    stored = {"o1": "7001", "o2": "7002", "o3": "7003"}
    # o3 is not in the category any more: it keeps its name (and fails as deleted where used).
    assert matters.renamed_options(category, stored) == {"o1": "Smith v Jones"}
