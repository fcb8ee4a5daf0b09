"""The OpenAPI 3.0 document for what the emulator implements, with Xero's names and shapes.
Response schemas list every field the emulator returns; request schemas only the fields it reads
(and validates), so schema-driven tests exercise real behaviour."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
UUID: Schema = {"type": "string", "format": "uuid"}
NUM: Schema = {"type": "number", "format": "double"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
MSDATE: Schema = {"type": "string", "x-is-msdate": True}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def obj(props: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


LINE_AMOUNT_TYPES = enum("Exclusive", "Inclusive", "NoTax")
# Xero marks batch elements with these; which of them a schema has follows Xero's description.
VALIDATION = {"ValidationErrors": arr(ref("ValidationError")), "StatusAttributeString": STR}
HAS_ERRORS = {"HasErrors": BOOL}
HAS_VALIDATION_ERRORS = {"HasValidationErrors": BOOL}
INPUT_DATE: Schema = {"type": "string", "format": "date"}

LINE_ITEM_IN = obj(
    {
        "Description": STR,
        "Quantity": NUM,
        "UnitAmount": NUM,
        "AccountCode": STR,
        "AccountID": UUID,
        "TaxType": STR,
        "TaxAmount": NUM,
        "LineAmount": NUM,
        "DiscountRate": NUM,
        "ItemCode": STR,
    }
)
LINE_ITEM = obj({**LINE_ITEM_IN["properties"], "LineItemID": UUID, "Tracking": arr({"type": "object"})})
CONTACT_REF = obj({"ContactID": UUID, "ContactNumber": STR, "Name": STR})
ACCOUNT_REF = obj({"AccountID": UUID, "Code": STR})

CONTACT_IN = obj(
    {
        "ContactID": UUID,
        "ContactNumber": STR,
        "AccountNumber": STR,
        "ContactStatus": enum("ACTIVE", "ARCHIVED"),
        "Name": STR,
        "FirstName": STR,
        "LastName": STR,
        "EmailAddress": STR,
        "TaxNumber": STR,
        "CompanyNumber": STR,
        "IsSupplier": BOOL,
        "IsCustomer": BOOL,
    }
)
CONTACT = obj(
    {
        **CONTACT_IN["properties"],
        "Addresses": arr({"type": "object"}),
        "Phones": arr({"type": "object"}),
        "ContactGroups": arr({"type": "object"}),
        "ContactPersons": arr({"type": "object"}),
        "HasAttachments": BOOL,
        "UpdatedDateUTC": MSDATE,
        **VALIDATION,
        **HAS_VALIDATION_ERRORS,
    }
)

DOC_IN: dict[str, Schema] = {
    "Contact": CONTACT_REF,
    "Date": INPUT_DATE,
    "Status": enum("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED", "VOIDED"),
    "LineAmountTypes": LINE_AMOUNT_TYPES,
    "LineItems": arr(LINE_ITEM_IN),
    "Reference": STR,
    "CurrencyCode": STR,
    "CurrencyRate": NUM,
}
DOC_OUT: dict[str, Schema] = {
    "Contact": ref("Contact"),
    "Date": MSDATE,
    "Status": enum("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "DELETED", "VOIDED"),
    "LineAmountTypes": LINE_AMOUNT_TYPES,
    "LineItems": arr(ref("LineItem")),
    "Reference": STR,
    "SubTotal": NUM,
    "TotalTax": NUM,
    "Total": NUM,
    "CurrencyCode": STR,
    "CurrencyRate": NUM,
    "UpdatedDateUTC": MSDATE,
    "HasAttachments": BOOL,
    **VALIDATION,
}
SETTLED: dict[str, Schema] = {"FullyPaidOnDate": MSDATE, "Payments": arr(ref("Payment")), **HAS_ERRORS}
INVOICE_IN = obj(
    {**DOC_IN, "Type": enum("ACCREC", "ACCPAY"), "InvoiceID": UUID, "InvoiceNumber": STR, "DueDate": INPUT_DATE},
    ["Type", "Contact", "LineItems"],
)
INVOICE = obj(
    {
        **DOC_OUT,
        "Type": enum("ACCREC", "ACCPAY"),
        "InvoiceID": UUID,
        "InvoiceNumber": STR,
        **SETTLED,
        "DueDate": MSDATE,
        "AmountDue": NUM,
        "AmountPaid": NUM,
        "AmountCredited": NUM,
        "CreditNotes": arr(ref("CreditNote")),
        "Overpayments": arr(ref("Overpayment")),
        "Prepayments": arr({"type": "object"}),
    }
)
CREDIT_NOTE_IN = obj(
    {**DOC_IN, "Type": enum("ACCRECCREDIT", "ACCPAYCREDIT"), "CreditNoteID": UUID, "CreditNoteNumber": STR},
    ["Type", "Contact", "LineItems"],
)
CREDIT_NOTE = obj(
    {
        **DOC_OUT,
        "Type": enum("ACCRECCREDIT", "ACCPAYCREDIT"),
        "CreditNoteID": UUID,
        **SETTLED,
        "CreditNoteNumber": STR,
        "RemainingCredit": NUM,
        "AppliedAmount": NUM,
        "Allocations": arr(ref("Allocation")),
    }
)
PAYMENT_IN = obj(
    {
        "PaymentID": UUID,
        "Invoice": obj({"InvoiceID": UUID, "InvoiceNumber": STR}),
        "CreditNote": obj({"CreditNoteID": UUID, "CreditNoteNumber": STR}),
        "Overpayment": obj({"OverpaymentID": UUID}),
        "Account": ACCOUNT_REF,
        "Date": INPUT_DATE,
        "Amount": NUM,
        "CurrencyRate": NUM,
        "Reference": STR,
        "IsReconciled": BOOL,
        "Status": enum("AUTHORISED", "DELETED"),
    }
)
PAYMENT = obj(
    {
        "PaymentID": UUID,
        "Invoice": ref("Invoice"),
        "CreditNote": ref("CreditNote"),
        "Overpayment": ref("Overpayment"),
        "Account": ref("Account"),
        "Date": MSDATE,
        "Amount": NUM,
        "BankAmount": NUM,
        "CurrencyRate": NUM,
        "Reference": STR,
        "IsReconciled": BOOL,
        "Status": enum("AUTHORISED", "DELETED"),
        "PaymentType": enum(
            "ACCRECPAYMENT",
            "ACCPAYPAYMENT",
            "ARCREDITPAYMENT",
            "APCREDITPAYMENT",
            "AROVERPAYMENTPAYMENT",
            "APOVERPAYMENTPAYMENT",
        ),
        "UpdatedDateUTC": MSDATE,
        "HasAccount": BOOL,
        **VALIDATION,
        **HAS_VALIDATION_ERRORS,
    }
)
PAYMENT_DELETE = obj({"Status": enum("DELETED")}, ["Status"])
ALLOCATION_IN = obj({"Invoice": obj({"InvoiceID": UUID}), "Amount": NUM, "Date": INPUT_DATE}, ["Invoice", "Amount"])
ALLOCATION = obj(
    {
        "AllocationID": UUID,
        "Invoice": ref("Invoice"),
        "CreditNote": ref("CreditNote"),
        "Overpayment": ref("Overpayment"),
        "Amount": NUM,
        "Date": MSDATE,
        "IsDeleted": BOOL,
        **VALIDATION,
    }
)
BANK_TRANSACTION_TYPES = enum("RECEIVE", "SPEND", "RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT")
BANK_TRANSACTION_IN = obj(
    {
        "BankTransactionID": UUID,
        "Type": BANK_TRANSACTION_TYPES,
        "Contact": CONTACT_REF,
        "BankAccount": ACCOUNT_REF,
        "Date": INPUT_DATE,
        "LineAmountTypes": LINE_AMOUNT_TYPES,
        "LineItems": arr(LINE_ITEM_IN),
        "Reference": STR,
        "CurrencyCode": STR,
        "CurrencyRate": NUM,
        "IsReconciled": BOOL,
        "Status": enum("AUTHORISED", "DELETED"),
    },
    ["Type", "Contact", "BankAccount", "LineItems"],
)
BANK_TRANSACTION = obj(
    {
        **DOC_OUT,
        "BankTransactionID": UUID,
        "Type": BANK_TRANSACTION_TYPES,
        "BankAccount": ref("Account"),
        "IsReconciled": BOOL,
        "OverpaymentID": UUID,
        "Status": enum("AUTHORISED", "DELETED"),
    }
)
BANK_TRANSFER_IN = obj(
    {"FromBankAccount": ACCOUNT_REF, "ToBankAccount": ACCOUNT_REF, "Amount": NUM, "Date": INPUT_DATE, "Reference": STR},
    ["FromBankAccount", "ToBankAccount", "Amount"],
)
BANK_TRANSFER = obj(
    {
        "BankTransferID": UUID,
        "FromBankAccount": ref("Account"),
        "ToBankAccount": ref("Account"),
        "Amount": NUM,
        "Date": MSDATE,
        "Reference": STR,
        "CurrencyRate": NUM,
        "FromBankTransactionID": UUID,
        "ToBankTransactionID": UUID,
        "FromIsReconciled": BOOL,
        "ToIsReconciled": BOOL,
        "HasAttachments": BOOL,
        "CreatedDateUTC": MSDATE,
        "ValidationErrors": arr(ref("ValidationError")),
    }
)
JOURNAL_LINE_IN = obj(
    {"LineAmount": NUM, "AccountCode": STR, "AccountID": UUID, "Description": STR, "TaxType": STR, "TaxAmount": NUM},
    ["LineAmount"],
)
JOURNAL_LINE = obj({**JOURNAL_LINE_IN["properties"], "IsBlank": BOOL, "Tracking": arr({"type": "object"})})
MANUAL_JOURNAL_IN = obj(
    {
        "ManualJournalID": UUID,
        "Narration": STR,
        "JournalLines": arr(JOURNAL_LINE_IN),
        "Date": INPUT_DATE,
        "LineAmountTypes": LINE_AMOUNT_TYPES,
        "Status": enum("DRAFT", "POSTED", "DELETED", "VOIDED"),
    },
    ["Narration"],
)
MANUAL_JOURNAL = obj(
    {
        "ManualJournalID": UUID,
        "Narration": STR,
        "JournalLines": arr(ref("ManualJournalLine")),
        "Date": MSDATE,
        "LineAmountTypes": LINE_AMOUNT_TYPES,
        "Status": enum("DRAFT", "POSTED", "DELETED", "VOIDED", "ARCHIVED"),
        "ShowOnCashBasisReports": BOOL,
        "HasAttachments": BOOL,
        "UpdatedDateUTC": MSDATE,
        **VALIDATION,
    }
)
OVERPAYMENT = obj(
    {
        **{k: v for k, v in DOC_OUT.items() if k not in VALIDATION},
        "Payments": arr(ref("Payment")),
        "OverpaymentID": UUID,
        "Type": enum("RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT"),
        "Status": enum("AUTHORISED", "PAID", "VOIDED"),
        "RemainingCredit": NUM,
        "AppliedAmount": NUM,
        "Allocations": arr(ref("Allocation")),
    }
)
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
ENVELOPE = {"Id": UUID, "Status": STR, "ProviderName": STR, "DateTimeUTC": MSDATE}
ERROR = obj({"ErrorNumber": INT, "Type": STR, "Message": STR, "Elements": arr(ref("Element"))})
ELEMENT = obj({"ValidationErrors": arr(ref("ValidationError"))})
PROBLEM = obj(
    {
        "Type": {"type": "string", "nullable": True},
        "Title": STR,
        "Status": INT,
        "Detail": STR,
        "Instance": STR,
        "Extensions": {"type": "object"},
    }
)

SCHEMAS: dict[str, Schema] = {
    "LineItem": LINE_ITEM,
    "Contact": CONTACT,
    "Invoice": INVOICE,
    "CreditNote": CREDIT_NOTE,
    "Payment": PAYMENT,
    "Allocation": ALLOCATION,
    "BankTransaction": BANK_TRANSACTION,
    "BankTransfer": BANK_TRANSFER,
    "ManualJournal": MANUAL_JOURNAL,
    "ManualJournalLine": JOURNAL_LINE,
    "Overpayment": OVERPAYMENT,
    "Account": ACCOUNT,
    "TaxRate": TAX_RATE,
    "Organisation": ORGANISATION,
    "Error": ERROR,
    "Element": ELEMENT,
    "ValidationError": obj({"Message": STR}),
    "Problem": PROBLEM,
}
# Envelopes: {"Invoices": [...]} and friends.
PLURALS = {
    "Invoices": "Invoice",
    "CreditNotes": "CreditNote",
    "Payments": "Payment",
    "Allocations": "Allocation",
    "BankTransactions": "BankTransaction",
    "BankTransfers": "BankTransfer",
    "ManualJournals": "ManualJournal",
    "Overpayments": "Overpayment",
    "Contacts": "Contact",
    "Accounts": "Account",
    "TaxRates": "TaxRate",
    "Organisations": "Organisation",
}
for _plural, _single in PLURALS.items():
    SCHEMAS[_plural] = obj({**ENVELOPE, _plural: arr(ref(_single))})

REQUEST_BODIES: dict[str, Schema] = {
    "Invoices": INVOICE_IN,
    "CreditNotes": CREDIT_NOTE_IN,
    "Payments": PAYMENT_IN,
    "Allocations": ALLOCATION_IN,
    "BankTransactions": BANK_TRANSACTION_IN,
    "BankTransfers": BANK_TRANSFER_IN,
    "ManualJournals": MANUAL_JOURNAL_IN,
    "Contacts": CONTACT_IN,
}

RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": description}
    for name, description in (
        ("X-DayLimit-Remaining", "Calls left today for this tenant"),
        ("X-MinLimit-Remaining", "Calls left this minute for this tenant"),
        ("X-AppMinLimit-Remaining", "Calls left this minute for the app across tenants"),
    )
}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(success: str) -> dict[str, Any]:
    problem = {"content": _json(ref("Problem"))}
    return {
        "200": {"description": "Success", "headers": RATE_HEADERS, "content": _json(ref(success))},
        "400": {"description": "Validation exception", "content": _json(ref("Error"))},
        "401": {"description": "Missing or expired access token", **problem},
        "403": {"description": "The tenant is not connected to this app", **problem},
        "404": {"description": "Not found", **problem},
        "429": {"description": "Rate limit exceeded (see Retry-After and X-Rate-Limit-Problem)", **problem},
        "500": {"description": "Server error", **problem},
        "503": {"description": "Service unavailable", **problem},
    }


def _params(*names: str) -> list[dict[str, Any]]:
    out = [{"$ref": "#/components/parameters/xeroTenantId"}]
    out += [{"$ref": f"#/components/parameters/{n}"} for n in names]
    return out


def _path_param(name: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "schema": UUID}


def _wrapped(resource: str) -> Schema:
    return obj({resource: {**arr(REQUEST_BODIES[resource]), "minItems": 1}}, [resource])


def _write(op_id: str, resource: str, body: Schema, *params: str) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "parameters": _params(*params, "idempotencyKey"),
        "requestBody": {"required": True, "content": _json(body)},
        "responses": _responses(resource),
    }


def _read(op_id: str, resource: str, *params: str) -> dict[str, Any]:
    return {"operationId": op_id, "parameters": _params(*params), "responses": _responses(resource)}


# (resource, item name, ID parameter, list query parameters, collection writes, item write) where
# the parameters are those Xero's description declares for the operation and the emulator implements.
COLLECTIONS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...], bool], ...] = (
    (
        "Invoices",
        "Invoice",
        "InvoiceID",
        ("where", "IDs", "InvoiceNumbers", "ContactIDs", "Statuses", "page"),
        ("put", "post"),
        True,
    ),
    ("CreditNotes", "CreditNote", "CreditNoteID", ("where", "page"), ("put", "post"), True),
    ("Payments", "Payment", "PaymentID", ("where", "page"), ("put", "post"), True),
    ("BankTransactions", "BankTransaction", "BankTransactionID", ("where", "page"), ("put", "post"), True),
    ("BankTransfers", "BankTransfer", "BankTransferID", ("where",), ("put",), False),
    ("ManualJournals", "ManualJournal", "ManualJournalID", ("where", "page"), ("put", "post"), True),
    ("Overpayments", "Overpayment", "OverpaymentID", ("where", "page"), (), False),
    ("Contacts", "Contact", "ContactID", ("where", "IDs", "page", "includeArchived"), ("put", "post"), True),
    ("Accounts", "Account", "AccountID", ("where",), (), False),
)


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource, single, id_name, list_params, writes, item_write in COLLECTIONS:
        collection: dict[str, Any] = {"get": _read(f"get{resource}", resource, *list_params, "ifModifiedSince")}
        if "put" in writes:
            batched = ("summarizeErrors",) if resource != "BankTransfers" else ()
            collection["put"] = _write(f"create{resource}", resource, _wrapped(resource), *batched)
        if "post" in writes:
            if resource == "Payments":  # Xero's POST /Payments takes one payment, unwrapped
                collection["post"] = _write("createPayment", resource, REQUEST_BODIES[resource])
            else:
                collection["post"] = _write(
                    f"updateOrCreate{resource}", resource, _wrapped(resource), "summarizeErrors"
                )
        paths[f"/{resource}"] = collection
        item: dict[str, Any] = {"parameters": [_path_param(id_name)], "get": _read(f"get{single}", resource)}
        if item_write:
            body = PAYMENT_DELETE if resource == "Payments" else _wrapped(resource)
            item["post"] = _write(f"update{single}" if resource != "Payments" else "deletePayment", resource, body)
        paths[f"/{resource}/{{{id_name}}}"] = item
    for source, id_name in (("CreditNotes", "CreditNoteID"), ("Overpayments", "OverpaymentID")):
        single = source[:-1]
        paths[f"/{source}/{{{id_name}}}/Allocations"] = {
            "parameters": [_path_param(id_name)],
            "put": _write(f"create{single}Allocation", "Allocations", _wrapped("Allocations"), "summarizeErrors"),
        }
        paths[f"/{source}/{{{id_name}}}/Allocations/{{AllocationID}}"] = {
            "parameters": [_path_param(id_name), _path_param("AllocationID")],
            "delete": _read(f"delete{single}Allocations", "Allocation"),
        }
    paths["/TaxRates"] = {"get": _read("getTaxRates", "TaxRates", "where")}
    paths["/Organisation"] = {"get": _read("getOrganisations", "Organisations")}
    return paths


PARAMETERS = {
    "xeroTenantId": {
        "in": "header",
        "name": "xero-tenant-id",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    },
    "summarizeErrors": {"in": "query", "name": "summarizeErrors", "schema": {"type": "boolean", "default": True}},
    "idempotencyKey": {
        "in": "header",
        "name": "Idempotency-Key",
        "description": "Replays the first result of a request for a few minutes; 128 characters at most.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "where": {
        "in": "query",
        "name": "where",
        "schema": {"type": "string"},
        "description": 'Field=="value" clauses joined with AND',
    },
    "page": {"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
    "IDs": {"in": "query", "name": "IDs", "style": "form", "explode": False, "schema": arr(UUID)},
    "InvoiceNumbers": {"in": "query", "name": "InvoiceNumbers", "style": "form", "explode": False, "schema": arr(STR)},
    "ContactIDs": {"in": "query", "name": "ContactIDs", "style": "form", "explode": False, "schema": arr(UUID)},
    "Statuses": {"in": "query", "name": "Statuses", "style": "form", "explode": False, "schema": arr(STR)},
    "ifModifiedSince": {
        "in": "header",
        "name": "If-Modified-Since",
        "description": "Only objects created or changed since this timestamp",
        "schema": {"type": "string", "format": "date-time"},
    },
    "includeArchived": {"in": "query", "name": "includeArchived", "schema": {"type": "boolean", "default": False}},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "info": {
            "title": "Xero Accounting API (local emulator subset)",
            "version": "2.0.0",
            "description": "The operations of the Xero Accounting API that the local emulator implements.",
        },
        "servers": [{"url": "/api.xro/2.0"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": PARAMETERS,
            "schemas": SCHEMAS,
        },
    }
