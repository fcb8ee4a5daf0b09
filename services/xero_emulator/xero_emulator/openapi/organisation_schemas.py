"""The schemas of what an organisation reads only: its accounts, tax rates and itself."""

from __future__ import annotations

from xero_emulator.openapi.schema_parts import BOOL, INT, MSDATE, NUM, STR, UUID, arr, enum, obj

ACCOUNT = obj(
    {
        "AccountID": UUID,
        "Code": STR,
        "Name": STR,
        "Status": enum("ACTIVE", "ARCHIVED", "DELETED"),
        "Type": STR,
        "TaxType": STR,
        "Class": enum("ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE"),
        "EnablePaymentsToAccount": BOOL,
        "ShowInExpenseClaims": BOOL,
        "BankAccountNumber": STR,
        "BankAccountType": STR,
        "CurrencyCode": STR,
        "SystemAccount": STR,
        "ReportingCode": STR,
        "HasAttachments": BOOL,
        "AddToWatchlist": BOOL,
    }
)
TAX_RATE = obj(
    {
        "Name": STR,
        "TaxType": STR,
        "Status": STR,
        "ReportTaxType": STR,
        "CanApplyToAssets": BOOL,
        "CanApplyToEquity": BOOL,
        "CanApplyToExpenses": BOOL,
        "CanApplyToLiabilities": BOOL,
        "CanApplyToRevenue": BOOL,
        "DisplayTaxRate": NUM,
        "EffectiveRate": NUM,
        "TaxComponents": arr(obj({"Name": STR, "Rate": NUM, "IsCompound": BOOL, "IsNonRecoverable": BOOL})),
    }
)
ORGANISATION = obj(
    {
        "OrganisationID": UUID,
        "APIKey": STR,
        "Name": STR,
        "LegalName": STR,
        "PaysTax": BOOL,
        "Version": STR,
        "OrganisationType": STR,
        "BaseCurrency": STR,
        "CountryCode": STR,
        "IsDemoCompany": BOOL,
        "OrganisationStatus": STR,
        "TaxNumber": STR,
        "FinancialYearEndDay": INT,
        "FinancialYearEndMonth": INT,
        "SalesTaxBasis": STR,
        "SalesTaxPeriod": STR,
        "DefaultSalesTax": STR,
        "DefaultPurchasesTax": STR,
        "PeriodLockDate": MSDATE,
        "EndOfYearLockDate": MSDATE,
        "CreatedDateUTC": MSDATE,
        "OrganisationEntityType": STR,
        "Timezone": STR,
        "ShortCode": STR,
        "Class": STR,
        "Edition": STR,
        "LineOfBusiness": STR,
    }
)
