"""The regions a firm's month can be generated for: the currency its books are kept in, its
standard rate of tax on sales and purchases, and the firm's Actionstep tax codes for taxed and
untaxed lines (the firm's own names; the connection maps them to Xero tax types)."""

from __future__ import annotations

from dataclasses import dataclass

# Rates are integer millionths (parts per million): 100_000 is 10 %. Xero keeps a tax rate to four
# decimals of a percent, which this holds exactly, so 8.875 % is 88_750 with no rounding.
MILLION = 1_000_000


@dataclass(frozen=True)
class FirmRegion:
    key: str
    currency: str
    tax_name: str
    rate_ppm: int
    taxed_code: str
    untaxed_code: str
    # The Xero tax types the firm's connection maps its two codes to, (taxed, untaxed), on each
    # side: tax types of that country's Xero organisation (docs/regions.md).
    sales_tax_types: tuple[str, str] = ("", "")
    purchase_tax_types: tuple[str, str] = ("", "")
    # The connection's untaxed_line_tax_types: (trust money, interest on trust, a journal line
    # without a tax code), as ConnectOrganisation fills them for the country's organisation.
    untaxed_tax_types: tuple[str, str, str] = ("", "", "")

    def untaxed(self) -> dict[str, str]:
        names = ("trust_money", "interest_on_trust", "journal_without_tax_code")
        return dict(zip(names, self.untaxed_tax_types, strict=True))

    def tax_maps(self) -> tuple[dict[str, str], dict[str, str]]:
        """The connection's tax_code_map and purchase_tax_code_map for the firm's codes."""
        codes = (self.taxed_code, self.untaxed_code)
        return dict(zip(codes, self.sales_tax_types, strict=True)), dict(
            zip(codes, self.purchase_tax_types, strict=True)
        )

    def tax_on(self, cents: int) -> int:
        """The tax on `cents` at the standard rate, rounded half up to the cent."""
        return (cents * self.rate_ppm + MILLION // 2) // MILLION

    def without_tax(self, cents: int) -> int:
        """The part of a tax-inclusive `cents` before tax, rounded down to the cent."""
        return cents * MILLION // (MILLION + self.rate_ppm)

    def code(self, taxed: bool) -> str:
        return self.taxed_code if taxed else self.untaxed_code


AU = FirmRegion(
    "AU",
    "AUD",
    "GST",
    100_000,
    "GST",
    "FRE",
    ("OUTPUT", "EXEMPTOUTPUT"),
    ("INPUT", "EXEMPTEXPENSES"),
    ("BASEXCLUDED", "EXEMPTOUTPUT", "BASEXCLUDED"),
)
# New Zealand's Zero Rated applies to sales only; untaxed purchases are No GST.
NZ = FirmRegion("NZ", "NZD", "GST", 150_000, "GST", "ZER", ("OUTPUT2", "ZERORATED"), ("INPUT2", "NONE"), ("NONE",) * 3)
UK = FirmRegion(
    "UK",
    "GBP",
    "VAT",
    200_000,
    "VAT",
    "ZER",
    ("OUTPUT2", "ZERORATEDOUTPUT"),
    ("INPUT2", "ZERORATEDINPUT"),
    ("NONE", "EXEMPTOUTPUT", "NONE"),
)
# A state and city sales tax: New York City's combined rate, custom rates in Xero for sales (TAX001)
# and for the same tax paid on purchases (TAX002): Xero refuses a bank transaction whose tax is not
# its rate's, so a 0% rate cannot carry it.
US = FirmRegion("US", "USD", "Sales tax", 88_750, "TAX", "EXM", ("TAX001", "NONE"), ("TAX002", "NONE"), ("NONE",) * 3)
# Ontario's harmonised sales tax, custom rates in Xero's global edition.
CA = FirmRegion("CA", "CAD", "HST", 130_000, "HST", "EXM", ("TAX001", "NONE"), ("TAX002", "NONE"), ("NONE",) * 3)
REGIONS = {region.key: region for region in (AU, NZ, UK, US, CA)}


def region_named(key: str) -> FirmRegion:
    try:
        return REGIONS[key]
    except KeyError:
        raise ValueError(f"unknown region {key!r}; one of {', '.join(REGIONS)}") from None
