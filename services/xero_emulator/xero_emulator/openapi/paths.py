"""The operations of each path: what the emulator serves, with the parameters Xero declares and
its responses."""

from __future__ import annotations

from typing import Any

from xero_emulator.openapi.components import REQUEST_BODIES
from xero_emulator.openapi.document_schemas import PAYMENT_DELETE
from xero_emulator.openapi.schema_parts import UUID, Schema, arr, obj, ref

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
        ("where", "order", "IDs", "InvoiceNumbers", "ContactIDs", "Statuses", "page"),
        ("put", "post"),
        True,
    ),
    ("CreditNotes", "CreditNote", "CreditNoteID", ("where", "order", "page"), ("put", "post"), True),
    ("Payments", "Payment", "PaymentID", ("where", "order", "page"), ("put", "post"), True),
    ("BankTransactions", "BankTransaction", "BankTransactionID", ("where", "order", "page"), ("put", "post"), True),
    ("BankTransfers", "BankTransfer", "BankTransferID", ("where", "order"), ("put",), False),
    ("ManualJournals", "ManualJournal", "ManualJournalID", ("where", "order", "page"), ("put", "post"), True),
    ("Overpayments", "Overpayment", "OverpaymentID", ("where", "page"), (), False),
    ("Contacts", "Contact", "ContactID", ("where", "IDs", "page", "includeArchived"), ("put", "post"), True),
    ("Accounts", "Account", "AccountID", ("where",), (), False),
)


def path_items() -> dict[str, Any]:
    """Every path the emulator serves, with its operations."""
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
    paths.update(_tracking_paths())
    paths["/Reports/ProfitAndLoss"] = {
        "get": _read(
            "getReportProfitAndLoss",
            "Reports",
            "fromDate",
            "toDate",
            "trackingCategoryID",
            "trackingOptionID",
            "trackingCategoryID2",
            "trackingOptionID2",
        )
    }
    # Xero's getReportTrialBalance: date and paymentsOnly.
    paths["/Reports/TrialBalance"] = {"get": _read("getReportTrialBalance", "Reports", "date", "paymentsOnly")}
    paths["/TaxRates"] = {"get": _read("getTaxRates", "TaxRates", "where")}
    paths["/Organisation"] = {"get": _read("getOrganisations", "Organisations")}
    return paths


def _tracking_paths() -> dict[str, Any]:
    """Xero's bodies here are the TrackingCategory / TrackingOption alone, not wrapped in a list."""
    category = [_path_param("TrackingCategoryID")]
    option = [*category, _path_param("TrackingOptionID")]
    return {
        "/TrackingCategories": {
            "get": _read("getTrackingCategories", "TrackingCategories", "where", "order", "includeArchived"),
            "put": _write("createTrackingCategory", "TrackingCategories", REQUEST_BODIES["TrackingCategories"]),
        },
        "/TrackingCategories/{TrackingCategoryID}": {
            "parameters": category,
            "get": _read("getTrackingCategory", "TrackingCategories"),
            "post": _write("updateTrackingCategory", "TrackingCategories", REQUEST_BODIES["TrackingCategories"]),
            "delete": _read("deleteTrackingCategory", "TrackingCategories"),
        },
        "/TrackingCategories/{TrackingCategoryID}/Options": {
            "parameters": category,
            "put": _write("createTrackingOptions", "Options", REQUEST_BODIES["Options"]),
        },
        "/TrackingCategories/{TrackingCategoryID}/Options/{TrackingOptionID}": {
            "parameters": option,
            "post": _write("updateTrackingOptions", "Options", REQUEST_BODIES["Options"]),
            "delete": _read("deleteTrackingOptions", "Options"),
        },
    }
