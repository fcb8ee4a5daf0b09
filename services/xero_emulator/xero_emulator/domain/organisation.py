"""One emulated Xero organisation (a tenant): its settings and every object it holds."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

from xero_emulator.domain.chart import account_object, tax_rate_object
from xero_emulator.domain.errors import NotFound, ValidationFailure
from xero_emulator.domain.regions import region_for
from xero_emulator.jsonio import ms_date, ms_datetime, parse_date

# Collections keyed by Xero's resource name, each mapping the object's ID to its JSON-shaped dict.
RESOURCES = (
    "Contacts",
    "Invoices",
    "CreditNotes",
    "Payments",
    "BankTransactions",
    "BankTransfers",
    "ManualJournals",
    "Overpayments",
)
ID_FIELD = {
    "Contacts": "ContactID",
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
    "Payments": "PaymentID",
    "BankTransactions": "BankTransactionID",
    "BankTransfers": "BankTransferID",
    "ManualJournals": "ManualJournalID",
    "Overpayments": "OverpaymentID",
    "Accounts": "AccountID",
}


# Told of every object created (True) or changed (False): the resource, the object, created.
ChangeListener = Callable[[str, dict[str, Any], bool], None]


def new_id() -> str:
    return str(uuid.uuid4())


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


class Organisation:
    """Mutations take `lock`; the HTTP layer holds it for a whole request so a batch is atomic
    with respect to other callers, as each Xero call is."""

    def __init__(
        self,
        name: str,
        region: str = "AU",
        *,
        is_demo: bool = False,
        org_class: str | None = None,
        without_accounts: tuple[str, ...] = (),
    ) -> None:
        self.region = region_for(region)  # ValueError for a region the emulator does not hold
        self.tenant_id = new_id()
        self.organisation_id = new_id()
        self.name = name
        self.is_demo = is_demo
        self.org_class = org_class or ("DEMO" if is_demo else "PREMIUM")
        self.base_currency = self.region.base_currency
        # Currencies added to the organisation (Xero refuses documents in any other).
        self.currencies = self.region.currencies
        self.country_code = self.region.country_code
        self.period_lock_date: dt.date | None = None
        self.end_of_year_lock_date: dt.date | None = None
        self.created = now_utc()
        self.lock = threading.RLock()
        self.accounts: dict[str, dict[str, Any]] = {}
        for seed in self.region.accounts:
            if seed.code in without_accounts:
                continue  # a chart set up differently (e.g. a replacement organisation)
            account = account_object(seed, self.base_currency, self.region.bank_number.format(code=seed.code))
            self.accounts[account["AccountID"]] = account
        self.tax_rates: dict[str, dict[str, Any]] = {
            t.tax_type: tax_rate_object(t, self.region.tax_name) for t in self.region.tax_rates
        }
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in RESOURCES}
        # Tracking categories by TrackingCategoryID, each with its Options (domain/tracking.py).
        self.tracking_categories: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = {}
        # Who hears of changes (the emulator's webhooks); the domain only reports them.
        self.on_change: ChangeListener | None = None

    # -- organisation -----------------------------------------------------------------------
    def organisation_object(self) -> dict[str, Any]:
        org: dict[str, Any] = {
            "OrganisationID": self.organisation_id,
            "APIKey": "",
            "Name": self.name,
            "LegalName": self.name,
            "PaysTax": True,
            "Version": self.region.version,
            "OrganisationType": "COMPANY",
            "BaseCurrency": self.base_currency,
            "CountryCode": self.country_code,
            "IsDemoCompany": self.is_demo,
            "OrganisationStatus": "ACTIVE",
            "TaxNumber": self.region.tax_number,
            "FinancialYearEndDay": self.region.financial_year_end[0],
            "FinancialYearEndMonth": self.region.financial_year_end[1],
            "SalesTaxBasis": self.region.sales_tax_basis,
            "SalesTaxPeriod": self.region.sales_tax_period,
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": ms_datetime(self.created),
            "OrganisationEntityType": "COMPANY",
            "Timezone": self.region.timezone,
            "ShortCode": "!" + self.tenant_id[:5],
            "Class": self.org_class,
            "Edition": "BUSINESS",
            "LineOfBusiness": "Legal services",
        }
        if self.period_lock_date:
            org["PeriodLockDate"] = ms_date(self.period_lock_date)
        if self.end_of_year_lock_date:
            org["EndOfYearLockDate"] = ms_date(self.end_of_year_lock_date)
        return org

    def effective_lock_date(self) -> dt.date | None:
        dates = [d for d in (self.period_lock_date, self.end_of_year_lock_date) if d]
        return max(dates) if dates else None

    def check_lock_date(self, day: dt.date) -> None:
        lock = self.effective_lock_date()
        if lock is not None and day <= lock:
            raise ValidationFailure(
                f"The document date cannot be on or before the organisation's lock date of {lock:%d %b %Y}. "
                "Change the date or ask the adviser to move the lock date."
            )

    # -- look-ups ---------------------------------------------------------------------------
    def next_number(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}-{self.counters[prefix]:04d}"

    def get(self, resource: str, object_id: str) -> dict[str, Any]:
        found = self.objects[resource].get(object_id.lower()) if isinstance(object_id, str) else None
        if found is None:
            raise NotFound(resource, str(object_id))
        return found

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Stores a new object (its creator has stamped it) and reports its creation."""
        self.objects[resource][obj[ID_FIELD[resource]]] = obj
        if self.on_change is not None:
            self.on_change(resource, obj, True)
        return obj

    def touch(self, resource: str, obj: dict[str, Any]) -> None:
        """Marks a stored object changed: a fresh UpdatedDateUTC ("UTC timestamp of last update",
        Xero's OpenAPI, which If-Modified-Since compares) and a report of the change."""
        obj["UpdatedDateUTC"] = ms_datetime(now_utc())
        if self.on_change is not None:
            self.on_change(resource, obj, False)

    def account_by_code(self, code: str) -> dict[str, Any] | None:
        return next((a for a in self.accounts.values() if a["Code"] == code), None)

    def resolve_account(self, ref: Any, what: str) -> dict[str, Any]:
        """An account reference is {"AccountID": ...} or {"Code": ...}, as Xero accepts."""
        if not isinstance(ref, dict):
            raise ValidationFailure(f"{what} must be specified as an object with AccountID or Code.")
        account: dict[str, Any] | None = None
        if isinstance(ref.get("AccountID"), str) and ref["AccountID"]:
            account = self.accounts.get(ref["AccountID"].lower())
        elif isinstance(ref.get("Code"), str) and ref["Code"]:
            account = self.account_by_code(ref["Code"])
        if account is None:
            raise ValidationFailure(f"{what} could not be found. Use an AccountID or Code from GET /Accounts.")
        if account["Status"] != "ACTIVE":
            raise ValidationFailure(f"The account {account['Code']} has been archived and cannot be used.")
        return account

    def resolve_contact(self, ref: Any) -> dict[str, Any]:
        """By ContactID, else ContactNumber, else Name (Xero creates a contact for a new name)."""
        if not isinstance(ref, dict):
            raise ValidationFailure("A Contact must be specified for this type of transaction")
        contacts = self.objects["Contacts"]
        contact_id = ref.get("ContactID")
        if isinstance(contact_id, str) and contact_id:
            found = contacts.get(contact_id.lower())
            if found is None:
                raise ValidationFailure(f"The contact with ContactID {contact_id} could not be found.")
            return found
        number = ref.get("ContactNumber")
        if isinstance(number, str) and number:
            match = next((c for c in contacts.values() if c.get("ContactNumber") == number), None)
            if match is not None:
                return match
        name = ref.get("Name")
        if isinstance(name, str) and name.strip():
            match = next((c for c in contacts.values() if c["Name"].lower() == name.strip().lower()), None)
            if match is not None:
                return match
            # Xero creates a contact for a name it does not know; contacts imports this module.
            from xero_emulator.domain.contacts import create_contact

            return create_contact(self, {"Name": name.strip(), "ContactNumber": number} if number else {"Name": name})
        raise ValidationFailure("A Contact must be specified for this type of transaction")

    @staticmethod
    def parse_date_field(element: dict[str, Any], field: str, *, required: bool = True) -> dt.date | None:
        value = element.get(field)
        if value is None or value == "":
            if required:
                raise ValidationFailure(f"{field} is required.")
            return None
        try:
            return parse_date(value)
        except ValueError as exc:
            raise ValidationFailure(f"{field}: {exc}") from exc


def contact_summary(contact: dict[str, Any]) -> dict[str, Any]:
    return {"ContactID": contact["ContactID"], "Name": contact["Name"], "ContactNumber": contact.get("ContactNumber")}


def account_summary(account: dict[str, Any]) -> dict[str, Any]:
    return {"AccountID": account["AccountID"], "Code": account["Code"], "Name": account["Name"]}
