"""The Xero regions Actionstep serves (AU, NZ, UK, US, CA): each one's organisation facts, default
tax rates and law-firm chart. An organisation takes everything tax- and currency-related from its
region.

Sources, cited per region below:
- TYPES: Xero's developer documentation, "Types and Codes", Tax Types and Report Tax Types
  (https://developer.xero.com/documentation/api/accounting/types#tax-types): each version's default
  tax types, their rates and names.
- OPENAPI: Xero's OpenAPI description, xero_accounting.yaml (XeroAPI/Xero-OpenAPI, kept outside this
  project): components.schemas.TaxType (the tax type enum), TaxRate.ReportTaxType (the report tax
  type enum), Organisation.Version, CountryCode, CurrencyCode and TimeZone, and the example answer
  of getTaxRates (a New Zealand organisation's rates with their CanApplyTo* flags).
- DEFAULTS: a third-party table of the CanApplyTo* flags of Xero's default rates per version
  ("Xero Default Tax Rate", support.tradegecko.com/hc/en-us/articles/202544653), used where Xero
  states none; the copy consulted shows Australia's table only as far as EXEMPTEXPENSES.
CanApplyTo* flags that no source states are marked "assumed" where they are set."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from xero_emulator.domain.chart import (
    CLASS_FLAG,
    TAX_ROLES,
    SeedAccount,
    SeedTaxRate,
    law_firm_chart,
)

# Account classes a rate may be used with (TaxRate.CanApplyTo*).
ALL = frozenset(CLASS_FLAG)
NOT_REVENUE = ALL - {"REVENUE"}
NOT_EXPENSES = ALL - {"EXPENSE"}
LIABILITIES = frozenset({"LIABILITY"})
REVENUE_AND_LIABILITIES = frozenset({"REVENUE", "LIABILITY"})
# The emulator's original Australian seed: sales rates on revenue, liability and equity accounts.
AU_SALES = frozenset({"REVENUE", "LIABILITY", "EQUITY"})

# Currencies an organisation has besides its base currency (the emulator's original set).
OTHER_CURRENCIES = ("AUD", "NZD", "USD", "GBP", "EUR")


@dataclass(frozen=True)
class Region:
    key: str
    country: str
    country_code: str  # OPENAPI CountryCode
    version: str  # OPENAPI Organisation.Version
    base_currency: str
    timezone: str  # OPENAPI TimeZone
    financial_year_end: tuple[int, int]  # (day, month)
    tax_name: str
    tax_number: str
    sales_tax_basis: str  # TYPES "Sales Tax Basis" of the version (accrual: Actionstep requires it)
    sales_tax_period: str  # TYPES "Sales Tax Periods" of the version
    no_tax_type: str  # a line with no tax type on it or on its account; overpayment lines
    tax_rates: tuple[SeedTaxRate, ...]
    accounts: tuple[SeedAccount, ...]
    bank_number: str  # an illustrative account number, "{code}" the account's code
    # Retired tax types Xero still takes, mapped to (type on expense accounts, type elsewhere).
    retired_tax_types: tuple[tuple[str, str, str], ...] = ()

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset({self.base_currency, *OTHER_CURRENCIES})

    def replacement(self, tax_type: str, account_class: str) -> str:
        """The tax type Xero books for `tax_type` on an account of this class."""
        for retired, on_expenses, elsewhere in self.retired_tax_types:
            if tax_type == retired:
                return on_expenses if account_class == "EXPENSE" else elsewhere
        return tax_type


def _rate(
    tax_type: str,
    name: str,
    rate: str,
    report: str,
    applies_to: frozenset[str],
    components: tuple[tuple[str, str], ...] = (),
) -> SeedTaxRate:
    return SeedTaxRate(tax_type, name, Decimal(rate), report, applies_to, tuple((n, Decimal(r)) for n, r in components))


def _chart(names: dict[str, str], **tax_types: str) -> tuple[SeedAccount, ...]:
    assert set(tax_types) == set(TAX_ROLES), tax_types
    return law_firm_chart(names, tax_types)


# Australia. TYPES, Australia: OUTPUT "GST on Income" and INPUT "GST on Expenses" 10; EXEMPTEXPENSES,
# EXEMPTOUTPUT, BASEXCLUDED, GSTONIMPORTS 0. Xero Central "Tax rates" (help.xero.com/au/
# Settings_TaxRates) adds the advanced rates: GST on Capital 10 (CAPEXINPUT); GST Free Capital
# (EXEMPTCAPITAL), GST Free Exports (EXEMPTEXPORT), Input Taxed (INPUTTAXED), GST on Capital Imports
# (GSTONCAPIMPORTS) 0, with the tax type of each name from an earlier edition of TYPES. OPENAPI
# TaxType enumerates each. Report tax types: TYPES "Report Tax Types", Australia. NONE is not
# Australian: Xero retired "No GST" (NONE) and "GST Exempt" (EXEMPTINPUT) on 25 March 2013 and maps
# them to EXEMPTEXPENSES on expense accounts and BASEXCLUDED elsewhere ("Changes to tax codes in
# Australia", developer.xero.com/changes-to-tax-codes-in-australia). Flags: the original seed's for
# OUTPUT, INPUT, EXEMPTOUTPUT, EXEMPTEXPENSES, BASEXCLUDED; EXEMPTCAPITAL not on revenue (DEFAULTS);
# GSTONIMPORTS and GSTONCAPIMPORTS on liabilities only, as New Zealand's GSTONIMPORTS (OPENAPI
# example) - assumed; CAPEXINPUT as INPUT, EXEMPTEXPORT as EXEMPTOUTPUT, INPUTTAXED on every class
# (input-taxed sales and purchases) - assumed.
AU = Region(
    key="AU",
    country="Australia",
    country_code="AU",
    version="AU",
    base_currency="AUD",
    timezone="AUSEASTERNSTANDARDTIME",
    financial_year_end=(30, 6),
    tax_name="GST",
    tax_number="12345678901",  # an ABN: 11 digits
    sales_tax_basis="ACCRUALS",
    sales_tax_period="QUARTERLY1",
    no_tax_type="BASEXCLUDED",
    tax_rates=(
        _rate("OUTPUT", "GST on Income", "10", "OUTPUT", AU_SALES),
        _rate("INPUT", "GST on Expenses", "10", "INPUT", NOT_REVENUE),
        _rate("CAPEXINPUT", "GST on Capital", "10", "CAPITALEXINPUT", NOT_REVENUE),
        _rate("EXEMPTOUTPUT", "GST Free Income", "0", "EXEMPTOUTPUT", AU_SALES),
        _rate("EXEMPTEXPORT", "GST Free Exports", "0", "EXEMPTEXPORT", AU_SALES),
        _rate("EXEMPTEXPENSES", "GST Free Expenses", "0", "EXEMPTEXPENSES", NOT_REVENUE),
        _rate("EXEMPTCAPITAL", "GST Free Capital", "0", "EXEMPTCAPITAL", NOT_REVENUE),
        _rate("INPUTTAXED", "Input Taxed", "0", "INPUTTAXED", ALL),
        _rate("BASEXCLUDED", "BAS Excluded", "0", "BASEXCLUDED", ALL),
        _rate("GSTONIMPORTS", "GST on Imports", "0", "GSTONIMPORTS", LIABILITIES),
        _rate("GSTONCAPIMPORTS", "GST on Capital Imports", "0", "GSTONCAPITALIMPORTS", LIABILITIES),
    ),
    accounts=_chart({}, sales="OUTPUT", interest="EXEMPTOUTPUT", purchases="INPUT", untaxed="BASEXCLUDED"),
    bank_number="0620000000{code}",
    retired_tax_types=(("NONE", "EXEMPTEXPENSES", "BASEXCLUDED"), ("EXEMPTINPUT", "BASEXCLUDED", "BASEXCLUDED")),
)

# New Zealand. TYPES, New Zealand (INPUT2, OUTPUT2 15; NONE, ZERORATED, GSTONIMPORTS 0). Names,
# report tax types and flags: OPENAPI, the example answer of getTaxRates ("15% GST on Income" ...).
# Interest is an exempt supply, booked with NONE ("No GST").
NZ = Region(
    key="NZ",
    country="New Zealand",
    country_code="NZ",
    version="NZ",
    base_currency="NZD",
    timezone="NEWZEALANDSTANDARDTIME",
    financial_year_end=(31, 3),
    tax_name="GST",
    tax_number="123-456-789",  # a GST (IRD) number, as OPENAPI's example Organisation shows one
    sales_tax_basis="INVOICE",
    sales_tax_period="TWOMONTHS",
    no_tax_type="NONE",
    tax_rates=(
        _rate("OUTPUT2", "15% GST on Income", "15", "OUTPUT", NOT_EXPENSES),
        _rate("INPUT2", "15% GST on Expenses", "15", "INPUT", NOT_REVENUE),
        _rate("ZERORATED", "Zero Rated", "0", "OUTPUT", REVENUE_AND_LIABILITIES),
        _rate("NONE", "No GST", "0", "NONE", ALL),
        _rate("GSTONIMPORTS", "GST on Imports", "0", "GSTONIMPORTS", LIABILITIES),
    ),
    accounts=_chart(
        {"092": "Trust Deposit Account"}, sales="OUTPUT2", interest="NONE", purchases="INPUT2", untaxed="NONE"
    ),
    bank_number="01-0102-0000{code}-00",
)

# United Kingdom. TYPES, United Kingdom: OUTPUT2/INPUT2 20, RROUTPUT/RRINPUT 5, SROUTPUT/SRINPUT 15
# (the 2009 rate, still listed), ZERORATEDOUTPUT, ZERORATEDINPUT, EXEMPTOUTPUT, EXEMPTINPUT,
# ECZROUTPUT, ECZROUTPUTSERVICES, ECZRINPUT, NONE, GSTONIMPORTS 0. Not seeded: the system-defined
# CAPEX* rates (the flat rate scheme's, on asset accounts only) and ECACQUISITIONS/REVERSECHARGES,
# whose 20% VAT Xero reclaims in the same return (Xero Central lists them at 0%): the emulator has no
# such offsetting entry. Report tax types: TYPES "Report Tax Types", UK. Flags: INPUT2 not on
# revenue, OUTPUT2 not on expenses (Zynk's export of a UK organisation's TaxRates, docs.zynk.com
# "Exporting Tax Rates from Xero"); assumed: the other sales and purchase rates alike, NONE on every
# class and GSTONIMPORTS on liabilities only, as in New Zealand.
UK = Region(
    key="UK",
    country="United Kingdom",
    country_code="GB",
    version="UK",
    base_currency="GBP",
    timezone="GMTSTANDARDTIME",
    financial_year_end=(31, 3),
    tax_name="VAT",
    tax_number="GB123456789",  # a VAT registration number: GB and 9 digits
    sales_tax_basis="ACCRUAL",
    sales_tax_period="QUARTERLY",
    no_tax_type="NONE",
    tax_rates=(
        _rate("OUTPUT2", "20% (VAT on Income)", "20", "OUTPUT", NOT_EXPENSES),
        _rate("INPUT2", "20% (VAT on Expenses)", "20", "INPUT", NOT_REVENUE),
        _rate("RROUTPUT", "5% (VAT on Income)", "5", "OUTPUT", NOT_EXPENSES),
        _rate("RRINPUT", "5% (VAT on Expenses)", "5", "INPUT", NOT_REVENUE),
        _rate("SROUTPUT", "15% (VAT on Income)", "15", "OUTPUT", NOT_EXPENSES),
        _rate("SRINPUT", "15% (VAT on Expenses)", "15", "INPUT", NOT_REVENUE),
        _rate("ZERORATEDOUTPUT", "Zero Rated Income", "0", "OUTPUT", NOT_EXPENSES),
        _rate("ZERORATEDINPUT", "Zero Rated Expenses", "0", "INPUT", NOT_REVENUE),
        _rate("EXEMPTOUTPUT", "Exempt Income", "0", "EXEMPTOUTPUT", NOT_EXPENSES),
        _rate("EXEMPTINPUT", "Exempt Expenses", "0", "EXEMPTINPUT", NOT_REVENUE),
        _rate("ECZROUTPUT", "Zero Rated EC Goods Income", "0", "ECOUTPUT", NOT_EXPENSES),
        _rate("ECZROUTPUTSERVICES", "Zero Rated EC Services", "0", "ECOUTPUTSERVICES", NOT_EXPENSES),
        _rate("ECZRINPUT", "Zero Rated EC Expenses", "0", "ECINPUT", NOT_REVENUE),
        _rate("NONE", "No VAT", "0", "NONE", ALL),
        _rate("GSTONIMPORTS", "VAT on Imports", "0", "GSTONIMPORTS", LIABILITIES),
    ),
    accounts=_chart(
        {
            "090": "Office Current Account",
            "091": "Client Account",
            "092": "Designated Client Deposit Account",
            "094": "Office Deposit Account",
            "820": "VAT",
            "850": "Client Money Liability",
            "855": "Client to Office Transfers",
            "860": "Client Money Paid by Firm",
            "880": "Money on Account",
        },
        sales="OUTPUT2",
        interest="EXEMPTOUTPUT",
        purchases="INPUT2",
        untaxed="NONE",
    ),
    bank_number="20-00-00 00000{code}",
)

# The default rates of Xero's US and global editions, all 0% (TYPES, United States and Global;
# DEFAULTS): the United States and Canada each add their own sales tax rates to them.
_GLOBAL_DEFAULTS = (
    _rate("OUTPUT", "Tax on Sales", "0", "OUTPUT", ALL),
    _rate("INPUT", "Tax on Purchases", "0", "INPUT", ALL),
    _rate("NONE", "Tax Exempt", "0", "NONE", ALL),
    _rate("GSTONIMPORTS", "Sales Tax on Imports", "0", "GSTONIMPORTS", LIABILITIES),
)

# United States. TYPES, United States: INPUT "Tax on Purchases", OUTPUT "Tax on Sales", NONE "Tax
# Exempt", GSTONIMPORTS "Sales Tax on Imports", all 0% (Xero Central, US "Default tax rates": "all
# set to 0% by default"); a rate a user adds is TAX001, TAX002, ... (TYPES). TAX001 is seeded as New
# York City's combined sales tax, 8.875% = New York State 4% + New York City 4.5% + Metropolitan
# Commuter Transportation District 0.375% (NY Department of Taxation and Finance, Publication 718).
# Legal services are generally not subject to sales tax, so Legal Fees keep OUTPUT (0%). Report tax
# types: TYPES says US organisations report USSALESTAX/AVALARA only for Xero's automatic sales tax
# rates (GUID tax types); OPENAPI's example custom rate (TAX002) answers INPUT, so these answer
# OUTPUT/INPUT/NONE/GSTONIMPORTS. Flags: OUTPUT, INPUT and NONE on every class, GSTONIMPORTS on
# liabilities only (DEFAULTS, United States); assumed: TAX001 not on expenses, as OPENAPI's example
# custom purchases rate is not on revenue.
US = Region(
    key="US",
    country="United States",
    country_code="US",
    version="US",
    base_currency="USD",
    timezone="EASTERNSTANDARDTIME",
    financial_year_end=(31, 12),
    tax_name="Sales Tax",
    tax_number="12-3456789",  # an EIN
    sales_tax_basis="ACCRUALS",
    sales_tax_period="3MONTHLY",
    no_tax_type="NONE",
    tax_rates=(
        *_GLOBAL_DEFAULTS,
        _rate(
            "TAX001",
            "New York City Sales Tax",
            "8.875",
            "OUTPUT",
            NOT_EXPENSES,
            (("NY State Tax", "4.000"), ("New York City Tax", "4.500"), ("MCTD Surcharge", "0.375")),
        ),
        # The same tax paid on purchases, a rate a firm adds to record it (not on revenue).
        _rate(
            "TAX002",
            "New York City Sales Tax on Purchases",
            "8.875",
            "INPUT",
            NOT_REVENUE,
            (("NY State Tax", "4.000"), ("New York City Tax", "4.500"), ("MCTD Surcharge", "0.375")),
        ),
    ),
    accounts=_chart(
        {
            "090": "Operating Account",
            "091": "IOLTA Trust Account",
            "092": "Client Escrow Account",
            "094": "Operating Savings Account",
            "210": "Client Costs Recovered",
            "310": "Client Costs Advanced",
            "820": "Sales Tax Payable",
            "850": "Client Trust Liability",
            "880": "Unearned Retainers",
        },
        sales="OUTPUT",
        interest="NONE",
        purchases="INPUT",
        untaxed="NONE",
    ),
    bank_number="021000021 00000{code}",
)

# Canada, on Xero's global edition (Version GLOBAL: OPENAPI's Version enum has no CA). TYPES,
# Global: INPUT "Tax on Purchases", OUTPUT "Tax on Sales", NONE "Tax Exempt", GSTONIMPORTS "Sales Tax
# on Imports", all 0%. Xero Central, "Account for sales tax in Xero for Canadian organisations": a
# Canadian organisation adds its own rates for sales and for purchases, one component for GST-only
# and HST provinces, and a zero-rated sales rate; seeded as TAX001..TAX005 for an Ontario firm. Rates:
# GST 5%, Ontario HST 13% (Canada Revenue Agency, "GST/HST calculator (and rates)"). Interest is an
# exempt financial service, booked with NONE. Flags of the four defaults: DEFAULTS, Global; report
# tax types, and the flags of the custom rates (sales not on expenses, purchases not on revenue), as
# in the United States.
CA = Region(
    key="CA",
    country="Canada",
    country_code="CA",
    version="GLOBAL",
    base_currency="CAD",
    timezone="EASTERNSTANDARDTIME",
    financial_year_end=(31, 12),
    tax_name="GST/HST",
    tax_number="123456789RT0001",  # a business number with its GST/HST program account
    sales_tax_basis="ACCRUALS",
    sales_tax_period="3MONTHLY",
    no_tax_type="NONE",
    tax_rates=(
        *_GLOBAL_DEFAULTS,
        _rate("TAX001", "HST on Sales (ON)", "13", "OUTPUT", NOT_EXPENSES, (("HST", "13"),)),
        _rate("TAX002", "HST on Purchases (ON)", "13", "INPUT", NOT_REVENUE, (("HST", "13"),)),
        _rate("TAX003", "GST on Sales", "5", "OUTPUT", NOT_EXPENSES, (("GST", "5"),)),
        _rate("TAX004", "GST on Purchases", "5", "INPUT", NOT_REVENUE, (("GST", "5"),)),
        _rate("TAX005", "Zero Rated Sales", "0", "OUTPUT", NOT_EXPENSES, (("GST/HST", "0"),)),
    ),
    accounts=_chart(
        {
            "090": "General Account",
            "091": "Mixed Trust Account",
            "092": "Separate Interest-Bearing Trust Account",
            "094": "General Savings Account",
            "820": "GST/HST Payable",
        },
        sales="TAX001",
        interest="NONE",
        purchases="TAX002",
        untaxed="NONE",
    ),
    bank_number="00102-004 0000{code}",
)

REGIONS = {region.key: region for region in (AU, NZ, UK, US, CA)}


def region_for(key: str) -> Region:
    region = REGIONS.get(key.upper()) if isinstance(key, str) else None
    if region is None:
        raise ValueError(f"region must be one of {', '.join(REGIONS)} (not {key!r})")
    return region
