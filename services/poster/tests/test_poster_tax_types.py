"""A connection's tax types against the organisation's tax rates, and the defaults per country,
as plain Python."""

from __future__ import annotations

import pytest
from xerolink_poster.domain.tax_types import (
    UNTAXED_DEFAULTS,
    UNTAXED_FIELDS,
    Rate,
    carry_untaxed,
    changed,
    fill_untaxed,
    problems,
    remap_problems,
)


def rates(*types: str, status: str = "ACTIVE") -> dict[str, Rate]:
    return {t: Rate(t, f"Rate {t}", status) for t in types}


NZ = rates("OUTPUT2", "INPUT2", "ZERORATED", "NONE", "GSTONIMPORTS")
EMPTY = dict.fromkeys(UNTAXED_FIELDS, "")


@pytest.mark.parametrize("country", sorted(UNTAXED_DEFAULTS))
def test_an_organisation_with_its_countrys_rates_gets_the_countrys_defaults(country: str) -> None:
    defaults = UNTAXED_DEFAULTS[country]
    filled = fill_untaxed(EMPTY, country, rates(*defaults))
    assert filled == dict(zip(UNTAXED_FIELDS, defaults, strict=True))


def test_a_tax_type_the_caller_set_is_never_replaced() -> None:
    filled = fill_untaxed({"trust_money": "TAX004"}, "NZ", NZ)
    assert filled == {"trust_money": "TAX004", "interest_on_trust": "NONE", "journal_without_tax_code": "NONE"}


def test_a_default_the_organisation_lacks_or_has_archived_is_left_empty() -> None:
    assert fill_untaxed(EMPTY, "AU", rates("OUTPUT", "INPUT")) == EMPTY
    archived = {**rates("EXEMPTOUTPUT"), **rates("BASEXCLUDED", status="ARCHIVED")}
    assert fill_untaxed(EMPTY, "AU", archived) == {**EMPTY, "interest_on_trust": "EXEMPTOUTPUT"}


def test_a_country_without_a_default_fills_nothing() -> None:
    assert fill_untaxed(EMPTY, "ZA", rates("NONE", "OUTPUT")) == EMPTY
    assert fill_untaxed(EMPTY, "", NZ) == EMPTY


def test_every_setting_is_checked_and_each_problem_named_by_its_setting() -> None:
    sales = {"GST": "OUTPUT", "FRE": "ZERORATED"}  # OUTPUT is Australia's
    purchases = {"GST": "INPUT2"}
    untaxed = {"trust_money": "BASEXCLUDED", "interest_on_trust": "NONE", "journal_without_tax_code": ""}
    found = problems(sales, purchases, untaxed, NZ, "NZ")
    assert [(p.setting, p.tax_type, p.problem) for p in found] == [
        ("untaxed_line_tax_types.journal_without_tax_code", "", "UNTAXED_TAX_TYPE_NOT_MAPPED"),
        ("tax_code_map[GST]", "OUTPUT", "TAX_TYPE_NOT_IN_ORGANISATION"),
        ("untaxed_line_tax_types.trust_money", "BASEXCLUDED", "TAX_TYPE_NOT_IN_ORGANISATION"),
    ]
    # Each says what to map it to: the organisation's active tax types.
    assert all("GSTONIMPORTS, INPUT2, NONE, OUTPUT2, ZERORATED" in p.description for p in found)


def test_a_rate_that_is_not_active_is_a_problem_saying_so() -> None:
    found = problems(
        {"GST": "OUTPUT2"},
        {},
        dict.fromkeys(UNTAXED_FIELDS, "NONE"),
        {**NZ, **rates("OUTPUT2", status="DELETED")},
        "NZ",
    )
    assert [(p.setting, p.problem) for p in found] == [("tax_code_map[GST]", "TAX_TYPE_NOT_IN_ORGANISATION")]
    assert "deleted in Xero" in found[0].description


def test_without_rates_only_what_is_not_set_is_found() -> None:
    """A connection made with CreateConnection: the tax types cannot be checked, but one left empty
    refuses every transaction that needs it all the same."""
    found = problems({"GST": "WHATEVER", "FRE": ""}, {}, {**EMPTY, "trust_money": "ANY"}, {}, "NZ")
    assert [(p.setting, p.problem) for p in found] == [
        ("tax_code_map[FRE]", "TAX_CODE_NOT_MAPPED"),
        ("untaxed_line_tax_types.interest_on_trust", "UNTAXED_TAX_TYPE_NOT_MAPPED"),
        ("untaxed_line_tax_types.journal_without_tax_code", "UNTAXED_TAX_TYPE_NOT_MAPPED"),
    ]
    assert problems({"GST": "WHATEVER"}, {}, dict.fromkeys(UNTAXED_FIELDS, "ANY"), {}, "NZ") == []


def test_a_remap_names_each_setting_whose_new_tax_type_the_organisation_cannot_take() -> None:
    changes = {
        "tax_code_map[GST]": "OUTPUT",  # Australia's
        "tax_code_map[ZER]": "ZERORATED",
        "purchase_tax_code_map[GST]": "",
        "untaxed_line_tax_types.trust_money": "x" * 65,
    }
    found = remap_problems(changes, {**NZ, **rates("ZERORATED", status="ARCHIVED")})
    assert sorted(found) == [
        "purchase_tax_code_map[GST]",
        "tax_code_map[GST]",
        "tax_code_map[ZER]",
        "untaxed_line_tax_types.trust_money",
    ]
    assert (
        "OUTPUT is not a tax rate of the organisation; one of GSTONIMPORTS, INPUT2, NONE, OUTPUT2"
        in found["tax_code_map[GST]"]
    )
    assert "archived in Xero" in found["tax_code_map[ZER]"]


def test_a_remap_of_active_rates_is_accepted_and_without_rates_only_the_form_is_checked() -> None:
    assert remap_problems({"tax_code_map[GST]": "OUTPUT2", "untaxed_line_tax_types.trust_money": "NONE"}, NZ) == {}
    assert remap_problems({"tax_code_map[GST]": "TAX001"}, {}) == {}


def test_a_move_to_another_country_drops_the_old_countrys_defaults_and_keeps_the_firms_choices() -> None:
    new_zealand = {"trust_money": "NONE", "interest_on_trust": "TAX003", "journal_without_tax_code": "NONE"}
    assert carry_untaxed(new_zealand, "NZ", "GB") == {**new_zealand, "trust_money": "", "journal_without_tax_code": ""}
    assert carry_untaxed(new_zealand, "nz", "NZ") == new_zealand  # the same country: nothing moves
    assert carry_untaxed(new_zealand, "", "GB") == new_zealand  # never read: nothing known to drop


def test_a_tax_type_that_means_another_rate_in_the_new_organisation_is_found() -> None:
    before = {
        "OUTPUT2": Rate("OUTPUT2", "15% GST on Income", "ACTIVE", "15.0000"),
        "NONE": Rate("NONE", "No GST", "ACTIVE", "0"),
        "TAX001": Rate("TAX001", "New York City Sales Tax", "ACTIVE", ""),
    }
    after = {
        "OUTPUT2": Rate("OUTPUT2", "20% (VAT on Income)", "ACTIVE", "20.0000"),
        "NONE": Rate("NONE", "No VAT", "ACTIVE", "0.0000"),
        "TAX001": Rate("TAX001", "Los Angeles Sales Tax", "ACTIVE", "9.5"),
    }
    settings = {
        "tax_code_map[GST]": "OUTPUT2",
        "untaxed_line_tax_types.trust_money": "NONE",
        "tax_code_map[TAX]": "TAX001",
        "tax_code_map[NEW]": "ZERORATEDOUTPUT",
    }
    found = changed(settings, before, after)
    # The rate decides (NONE is 0 % in both, whatever its name); without a rate read, the name does.
    assert [(c.setting, c.tax_type) for c in found] == [
        ("tax_code_map[GST]", "OUTPUT2"),
        ("tax_code_map[TAX]", "TAX001"),
    ]
    assert "(15 %)" in found[0].message() and "(20 %)" in found[0].message() and "RemapTaxTypes" in found[0].message()


def test_australias_retired_no_gst_is_named_with_what_xero_books_instead() -> None:
    au = rates("OUTPUT", "INPUT", "EXEMPTEXPENSES", "BASEXCLUDED", "EXEMPTOUTPUT")
    found = problems({"NTR": "NONE"}, {}, dict.fromkeys(UNTAXED_FIELDS, "BASEXCLUDED"), au, "AU")
    assert [(p.setting, p.problem) for p in found] == [("tax_code_map[NTR]", "TAX_TYPE_NOT_IN_ORGANISATION")]
    assert "retired for AU organisations" in found[0].description
    assert "EXEMPTEXPENSES on expense accounts and BASEXCLUDED elsewhere" in found[0].description
    # Elsewhere NONE is an ordinary rate, and a type with spaces is no TaxType.
    assert problems({"NTR": "NONE"}, {}, dict.fromkeys(UNTAXED_FIELDS, "NONE"), NZ, "NZ") == []
    assert set(remap_problems({"tax_code_map[GST]": "OUTPUT 2"}, {})) == {"tax_code_map[GST]"}


def test_with_the_previous_rates_never_read_every_setting_naming_a_rate_here_waits() -> None:
    after = {
        "TAX001": Rate("TAX001", "GST on Sales", "ACTIVE", "5.0000"),
        "NONE": Rate("NONE", "Tax Exempt", "ACTIVE", "0"),
    }
    settings = {
        "tax_code_map[HST]": "TAX001",
        "untaxed_line_tax_types.trust_money": "NONE",
        "tax_code_map[X]": "TAX009",
    }
    found = changed(settings, {}, after)
    assert [c.setting for c in found] == ["tax_code_map[HST]", "untaxed_line_tax_types.trust_money"]
    assert "whose tax rates were never read" in found[0].message()
