"""The tax types a connection names (its two tax-code maps and its tax types for lines without a
tax code) checked against the organisation's tax rates, and the default per country for lines
without a tax code. Pure: no gRPC, no SQL.

Xero's tax types differ by the organisation's country: an Australian organisation has GST types
such as OUTPUT and BASEXCLUDED, a New Zealand or UK one OUTPUT2 and NONE (Xero's "Types and codes"
documentation, Tax Types; the TaxType enum of Xero's OpenAPI lists them all in one list). So the
tax types come from the organisation's TaxRates, read when it is connected; the defaults below only
fill what the caller left empty, and only with a rate the organisation has. docs/regions.md gives
each default with its source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from xerolink_common.reasons import Reason

UNTAXED_FIELDS = ("trust_money", "interest_on_trust", "journal_without_tax_code")

# Organisation CountryCode -> the tax types of (trust money, trust interest, a journal line
# without a tax code). Trust money is not the firm's supply, so it stays out of the tax return.
UNTAXED_DEFAULTS: dict[str, tuple[str, str, str]] = {
    # "BAS Excluded": not reported on the BAS; interest is "GST Free Income".
    "AU": ("BASEXCLUDED", "EXEMPTOUTPUT", "BASEXCLUDED"),
    # "No GST" for all three.
    "NZ": ("NONE", "NONE", "NONE"),
    # "No VAT" (outside the scope of VAT); interest is "Exempt Income" (VAT-exempt finance).
    "GB": ("NONE", "EXEMPTOUTPUT", "NONE"),
    # "Tax Exempt" for all three.
    "US": ("NONE", "NONE", "NONE"),
    "CA": ("NONE", "NONE", "NONE"),
}


# Tax types Xero retired in a country but still takes, booking another in their place:
# CountryCode -> retired -> what Xero books ("Changes to tax codes in Australia", Xero developer
# blog, 2013: NONE and EXEMPTINPUT become EXEMPTEXPENSES on expense accounts, BASEXCLUDED elsewhere).
RETIRED: dict[str, dict[str, str]] = {
    "AU": {
        "NONE": "EXEMPTEXPENSES on expense accounts and BASEXCLUDED elsewhere",
        "EXEMPTINPUT": "EXEMPTEXPENSES on expense accounts and BASEXCLUDED elsewhere",
    },
}


@dataclass(frozen=True)
class Rate:
    tax_type: str
    name: str
    status: str
    # Xero's EffectiveRate as a decimal string ("15.0000"); empty when not read.
    effective_rate: str = ""


@dataclass(frozen=True)
class Problem:
    # Where the connection names the tax type, e.g. "tax_code_map[GST]" or
    # "untaxed_line_tax_types.trust_money".
    setting: str
    tax_type: str
    # A Reason: TAX_TYPE_NOT_IN_ORGANISATION, UNTAXED_TAX_TYPE_NOT_MAPPED or TAX_CODE_NOT_MAPPED.
    problem: str
    description: str


def _active(rate: Rate | None) -> bool:
    return rate is not None and (rate.status or "ACTIVE").upper() == "ACTIVE"


def fill_untaxed(untaxed: Mapping[str, str], country: str, rates: Mapping[str, Rate]) -> dict[str, str]:
    """The connection's tax types for lines without a tax code, each empty one filled with the
    country's default when the organisation has that rate active. A set one is never changed."""
    filled = {name: untaxed.get(name, "") for name in UNTAXED_FIELDS}
    defaults = UNTAXED_DEFAULTS.get(country.upper())
    if defaults is None:
        return filled
    for name, default in zip(UNTAXED_FIELDS, defaults, strict=True):
        if not filled[name] and _active(rates.get(default)):
            filled[name] = default
    return filled


def carry_untaxed(untaxed: Mapping[str, str], old_country: str, new_country: str) -> dict[str, str]:
    """The untaxed tax types a connection keeps when it moves to an organisation of another country:
    those equal to the old country's defaults are cleared, for the new country's to fill (a firm's
    own choice is kept and checked against the new organisation's rates)."""
    kept = {name: untaxed.get(name, "") for name in UNTAXED_FIELDS}
    old, new = old_country.strip().upper(), new_country.strip().upper()
    defaults = UNTAXED_DEFAULTS.get(old)
    if not old or old == new or defaults is None:
        return kept
    for name, default in zip(UNTAXED_FIELDS, defaults, strict=True):
        if kept[name] == default:
            kept[name] = ""
    return kept


@dataclass(frozen=True)
class Changed:
    """A tax type a setting names that means another rate in the organisation the connection moved to."""

    setting: str
    tax_type: str
    before: Rate
    after: Rate

    def message(self) -> str:
        was = (
            f"{self.tax_type} {self.before.name!r} ({_percent(self.before)}) in the previous organisation"
            if self.before.name or self.before.effective_rate
            else f"{self.tax_type} in the previous organisation, whose tax rates were never read"
        )
        return (
            f"{self.setting} was {was}; here {self.tax_type} is {self.after.name!r} ({_percent(self.after)}), so "
            "the setting was cleared and transactions using it are refused until you map it again with RemapTaxTypes"
        )


def _percent(rate: Rate) -> str:
    return f"{Decimal(rate.effective_rate).normalize():f} %" if rate.effective_rate else "rate not read"


def _same_rate(before: Rate, after: Rate) -> bool:
    # The rate decides the money; names differ between countries for the same system rate ("No GST",
    # "No VAT"), so they decide only when a rate was not read.
    if before.effective_rate and after.effective_rate:
        return Decimal(before.effective_rate) == Decimal(after.effective_rate)
    return before.name == after.name


def changed(settings: Mapping[str, str], before: Mapping[str, Rate], after: Mapping[str, Rate]) -> list[Changed]:
    """The settings (setting -> tax type) whose tax type is a rate of the new organisation but not
    the same rate as in the previous one: Xero numbers custom rates TAX001, TAX002, ... per
    organisation, and OUTPUT2 is 15 % GST in New Zealand and 20 % VAT in the United Kingdom. With
    the previous organisation's rates never read (empty `before`), none can be shown the same, so
    every such setting is."""
    found = []
    for setting, tax_type in settings.items():
        new = after.get(tax_type)
        if not tax_type or new is None:
            continue  # not a rate here: a problem of its own (TAX_TYPE_NOT_IN_ORGANISATION)
        old = before.get(tax_type) if before else Rate(tax_type, "", "")
        if old is not None and (not before or not _same_rate(old, new)):
            found.append(Changed(setting, tax_type, old, new))
    return found


def problems(
    sales: Mapping[str, str],
    purchases: Mapping[str, str],
    untaxed: Mapping[str, str],
    rates: Mapping[str, Rate],
    country: str,
) -> list[Problem]:
    """Each tax type for lines without a code that is not set, each map entry without a tax type,
    and, when the rates were read (`rates` not empty), every tax type the connection names that the
    organisation lacks or has not active."""
    found: list[Problem] = []
    active = sorted(t for t, rate in rates.items() if _active(rate))
    choose = f" (its active tax types: {', '.join(active)})" if active else ""
    named = [
        *((f"tax_code_map[{code}]", tax_type) for code, tax_type in sorted(sales.items())),
        *((f"purchase_tax_code_map[{code}]", tax_type) for code, tax_type in sorted(purchases.items())),
    ]
    for setting, tax_type in named:
        if not tax_type:
            found.append(
                Problem(
                    setting,
                    "",
                    Reason.TAX_CODE_NOT_MAPPED,
                    f"{setting} names no tax type, so lines with that code cannot be posted: map it to the "
                    f"organisation's tax type for it{choose}",
                )
            )
    for name in UNTAXED_FIELDS:
        setting = f"untaxed_line_tax_types.{name}"
        tax_type = untaxed.get(name, "")
        if tax_type:
            named.append((setting, tax_type))
            continue
        found.append(
            Problem(
                setting,
                "",
                Reason.UNTAXED_TAX_TYPE_NOT_MAPPED,
                f"{setting} is not set{_no_default(country) if rates else ''}, so those lines cannot be posted: set "
                f"it to the organisation's tax type for them{choose}",
            )
        )
    if not rates:
        return found
    for setting, tax_type in named:
        if not tax_type:
            continue
        rate = rates.get(tax_type)
        retired = RETIRED.get(country.upper(), {}).get(tax_type)
        if rate is None and retired:
            found.append(
                Problem(
                    setting,
                    tax_type,
                    Reason.TAX_TYPE_NOT_IN_ORGANISATION,
                    f"{setting} is {tax_type}, which Xero retired for {country.upper()} organisations and books as "
                    f"{retired}: map it to the one you mean, so the tax return shows what the firm intends",
                )
            )
        elif rate is None:
            found.append(
                Problem(
                    setting,
                    tax_type,
                    Reason.TAX_TYPE_NOT_IN_ORGANISATION,
                    f"{setting} is {tax_type}, which is not a tax rate of the Xero organisation{_country(country)}: "
                    f"map it to one of {', '.join(active) or 'none'}",
                )
            )
        elif not _active(rate):
            found.append(
                Problem(
                    setting,
                    tax_type,
                    Reason.TAX_TYPE_NOT_IN_ORGANISATION,
                    f"{setting} is {tax_type} {rate.name!r}, which is {rate.status.lower()} in Xero: restore the "
                    "rate in Xero or map it to an active one",
                )
            )
    return found


# An Actionstep tax code and a Xero TaxType are short names (Xero's custom rates are TAX001, its
# automatic US sales tax rates GUIDs); anything longer is not one.
MAX_NAME = 64
# A firm has a handful of tax codes; a re-map naming more is not one.
MAX_CHANGES = 200


def remap_problems(changes: Mapping[str, str], rates: Mapping[str, Rate]) -> dict[str, str]:
    """Setting -> why its new tax type cannot be used. `changes` maps a setting as Problem names it
    ("tax_code_map[GST]", "untaxed_line_tax_types.trust_money") to the tax type it is to take. With
    no rates read, only the form is checked."""
    active = sorted(t for t, rate in rates.items() if _active(rate))
    found: dict[str, str] = {}
    for setting, tax_type in changes.items():
        if not tax_type or len(tax_type) > MAX_NAME or not tax_type.isprintable() or " " in tax_type:
            found[setting] = f"a Xero TaxType of the organisation, at most {MAX_NAME} characters"
        elif rates and tax_type not in rates:
            found[setting] = f"{tax_type} is not a tax rate of the organisation; one of {', '.join(active) or 'none'}"
        elif rates and not _active(rates[tax_type]):
            status = rates[tax_type].status.lower()
            found[setting] = f"{tax_type} is {status} in Xero; restore it or choose an active rate"
    return found


def _country(country: str) -> str:
    return f" (country {country})" if country else ""


def _no_default(country: str) -> str:
    if country.upper() in UNTAXED_DEFAULTS:
        return f" and the default for {country.upper()} is not an active tax rate of the organisation"
    return f" and xerolink has no default for the organisation's country{_country(country) or ' (unknown)'}"
