"""The Accounting API resources under /api.xro/2.0/: routing, batches and Xero's response shapes.
Authentication, limits, idempotency and faults are applied before this by the gateway."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xero_emulator.domain import banking, contacts, documents, field_rules, settlement
from xero_emulator.domain.errors import BadRequest, NotFound, ValidationFailure
from xero_emulator.domain.organisation import ID_FIELD, Organisation, is_guid
from xero_emulator.domain.query import matches, page_of, parse_where
from xero_emulator.jsonio import JsonError, loads
from xero_emulator.messages import Request, Response, envelope, render, validation_exception

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    collection_methods: tuple[str, ...]
    item_methods: tuple[str, ...]
    create: Callable[[Organisation, Obj], Obj] | None = None
    update: Callable[[Organisation, Obj, Obj], Obj] | None = None
    # For POST to the collection: the existing object an element names, if any.
    existing: Callable[[Organisation, Obj], Obj | None] | None = None
    echo: tuple[str, ...] = field(default=())


def _by_id(resource: str) -> Callable[[Organisation, Obj], Obj | None]:
    def find(org: Organisation, element: Obj) -> Obj | None:
        value = element.get(ID_FIELD[resource])
        if isinstance(value, str) and value:
            found = org.objects[resource].get(value.lower())
            if found is None:
                raise ValidationFailure(f"{ID_FIELD[resource]} {value} does not exist in this organisation.")
            return found
        return None

    return find


def _document_existing(kind: documents.DocumentKind) -> Callable[[Organisation, Obj], Obj | None]:
    by_id = _by_id(kind.resource)

    def find(org: Organisation, element: Obj) -> Obj | None:
        found = by_id(org, element)
        number = element.get(kind.number_field)
        if found is None and isinstance(number, str) and number:
            found = documents.find_by_number(org, kind, number, element.get("Type"))
        return found

    return find


def _contact_existing(org: Organisation, element: Obj) -> Obj | None:
    found = _by_id("Contacts")(org, element)
    number = element.get("ContactNumber")
    if found is None and isinstance(number, str) and number:
        found = contacts.find_by_number(org, number)
    return found


def _refuse_payment_update(org: Organisation, payment: Obj, element: Obj) -> Obj:
    return settlement.delete_payment(org, payment, element)


SPECS: dict[str, ResourceSpec] = {
    "Invoices": ResourceSpec(
        "Invoices",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        lambda org, e: documents.create_document(org, documents.INVOICE, e),
        lambda org, d, e: documents.update_document(org, documents.INVOICE, d, e),
        _document_existing(documents.INVOICE),
        ("InvoiceNumber", "Reference"),
    ),
    "CreditNotes": ResourceSpec(
        "CreditNotes",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        lambda org, e: documents.create_document(org, documents.CREDIT_NOTE, e),
        lambda org, d, e: documents.update_document(org, documents.CREDIT_NOTE, d, e),
        _document_existing(documents.CREDIT_NOTE),
        ("CreditNoteNumber", "Reference"),
    ),
    "Payments": ResourceSpec(
        "Payments",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        settlement.create_payment,
        _refuse_payment_update,
        _by_id("Payments"),
        ("Reference",),
    ),
    "BankTransactions": ResourceSpec(
        "BankTransactions",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        banking.create_bank_transaction,
        banking.update_bank_transaction,
        _by_id("BankTransactions"),
        ("Reference",),
    ),
    "BankTransfers": ResourceSpec(
        "BankTransfers", ("GET", "PUT"), ("GET",), banking.create_bank_transfer, None, None, ("Reference",)
    ),
    "ManualJournals": ResourceSpec(
        "ManualJournals",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        banking.create_manual_journal,
        banking.update_manual_journal,
        _by_id("ManualJournals"),
        ("Narration",),
    ),
    "Overpayments": ResourceSpec("Overpayments", ("GET",), ("GET",)),
    "Contacts": ResourceSpec(
        "Contacts",
        ("GET", "PUT", "POST"),
        ("GET", "POST"),
        contacts.create_contact,
        contacts.update_contact,
        _contact_existing,
        ("Name", "ContactNumber"),
    ),
    "Accounts": ResourceSpec("Accounts", ("GET",), ("GET",)),
}
READ_ONLY = {"Organisation": ("GET",), "TaxRates": ("GET",)}
ALLOCATION_SOURCES = ("CreditNotes", "Overpayments")
MAX_PAGE = 100000


class MethodNotAllowed(Exception):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


def allowed_methods(parts: list[str]) -> tuple[str, ...] | None:
    """The methods a path accepts, or None when no such path exists (404)."""
    resource = _canonical(parts[0]) if parts else None
    if resource is None:
        return None
    if len(parts) == 1:
        return READ_ONLY.get(resource) or SPECS[resource].collection_methods
    if resource in READ_ONLY:
        return None
    if len(parts) == 2:
        return SPECS[resource].item_methods
    if resource in ALLOCATION_SOURCES and parts[2].lower() == "allocations":
        return ("PUT",) if len(parts) == 3 else ("DELETE",) if len(parts) == 4 else None
    return None


def _canonical(name: str) -> str | None:
    for known in (*SPECS, *READ_ONLY):
        if known.lower() == name.lower():
            return known
    return None


def handle(org: Organisation, request: Request, parts: list[str], provider: str) -> Response:
    """Serves one authorised request for an organisation; the caller holds org.lock."""
    resource = _canonical(parts[0])
    assert resource is not None
    method = request.method
    if resource == "Organisation":
        return Response.json(200, envelope("Organisations", [org.organisation_object()], provider))
    if resource == "TaxRates":
        items = _filter(request, list(org.tax_rates.values()))
        return Response.json(200, envelope("TaxRates", items, provider))
    spec = SPECS[resource]
    if len(parts) == 1 and method == "GET":
        return Response.json(200, envelope(resource, _list(org, request, resource), provider))
    if len(parts) == 1:
        elements = _elements(request, resource)
        return _write_batch(org, spec, elements, method, _summarize(request), provider)
    if len(parts) == 2 and method == "GET":
        return Response.json(200, envelope(resource, [_one(org, resource, parts[1])], provider))
    if len(parts) == 2:  # POST to an item: update it
        target = _one(org, resource, parts[1])
        elements = _elements(request, resource)
        if len(elements) != 1:
            raise BadRequest(f"POST to a single {resource[:-1]} takes exactly one element.")
        return _write_batch(org, spec, elements, method, _summarize(request), provider, target=target)
    source = _one(org, resource, parts[1])
    if len(parts) == 3:
        return _allocate(org, resource, source, request, provider)
    # Xero answers a deleted allocation with the Allocation itself (IsDeleted true), unwrapped.
    return Response.json(200, settlement.delete_allocation(org, resource, source, parts[3]))


def _one(org: Organisation, resource: str, key: str) -> Obj:
    if resource == "Accounts":
        account = org.accounts.get(key.lower())
        if account is None:
            raise NotFound("Accounts", key)
        return account
    if is_guid(key):
        return org.get(resource, key)
    # Xero also accepts an InvoiceNumber / CreditNoteNumber / ContactNumber in place of the ID.
    number_field = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber", "Contacts": "ContactNumber"}.get(
        resource
    )
    if number_field:
        found = [o for o in org.objects[resource].values() if o.get(number_field) == key]
        if found:
            return found[0]
    raise NotFound(resource, key)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.param(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false.")
    return value.lower() == "true"


def _summarize(request: Request) -> bool:
    return _flag(request, "summarizeErrors", True)


def _elements(request: Request, resource: str) -> list[Obj]:
    if not request.body.strip():
        raise BadRequest("The request body is empty; send JSON.")
    try:
        body = loads(request.body)
    except JsonError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest(f'The request body must be a JSON object such as {{"{resource}": [...]}}.')
    items = body.get(resource, body if resource not in body else None)
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise BadRequest(f'No {resource} were found in the request: send {{"{resource}": [{{...}}]}}.')
    return items


def _write_batch(
    org: Organisation,
    spec: ResourceSpec,
    elements: list[Obj],
    method: str,
    summarize: bool,
    provider: str,
    target: Obj | None = None,
) -> Response:
    """Each element succeeds or fails alone. summarizeErrors=false: 200 with every element marked
    OK or ERROR. Otherwise any failure makes the call a 400 listing the failed elements, while the
    valid ones are still created (Xero's behaviour, which hides their IDs)."""
    results: list[Obj] = []
    failed: list[Obj] = []
    for element in elements:
        try:
            obj = _write_one(org, spec, element, method, target)
        except ValidationFailure as failure:
            echoed = _echo(spec, element)
            flag = {"Invoices": "HasErrors", "CreditNotes": "HasErrors"}.get(spec.name, "HasValidationErrors")
            if spec.name in ("Invoices", "CreditNotes", "Payments", "Contacts"):
                echoed[flag] = True
            echoed["ValidationErrors"] = [{"Message": m} for m in failure.messages]
            if not summarize:
                echoed["StatusAttributeString"] = "ERROR"
            results.append(echoed)
            failed.append(echoed)
            continue
        out = render(obj)
        if not summarize:
            out["StatusAttributeString"] = "OK"
        results.append(out)
    if failed and summarize:
        return validation_exception(failed)
    return Response.json(200, envelope(spec.name, results, provider))


def _write_one(org: Organisation, spec: ResourceSpec, element: Obj, method: str, target: Obj | None) -> Obj:
    existing = target
    if existing is None and spec.existing is not None and method == "POST":
        existing = spec.existing(org, element)
    # Xero reads an element without its readOnly fields and the fields its Type does not keep.
    doc_type = element.get("Type", existing.get("Type") if existing is not None else None)
    element = field_rules.accepted_fields(spec.name, element, doc_type)
    if spec.name != "Contacts":  # contacts check theirs, also when an invoice names a new one
        field_rules.check_lengths(spec.name, element)
    if existing is None and method == "PUT":
        id_field = ID_FIELD.get(spec.name)
        if id_field and element.get(id_field):
            raise ValidationFailure(f"PUT creates new {spec.name}; use POST to update an existing one.")
    if existing is None:
        assert spec.create is not None
        return spec.create(org, element)
    assert spec.update is not None
    snapshot = copy.deepcopy(existing)
    try:
        return spec.update(org, existing, element)
    except ValidationFailure:
        existing.clear()
        existing.update(snapshot)
        raise


def _echo(spec: ResourceSpec, element: Obj) -> Obj:
    """The failed element as Xero returns it: enough to match it to the request."""
    echoed: Obj = {}
    id_field = ID_FIELD.get(spec.name)
    if id_field and isinstance(element.get(id_field), str) and is_guid(element[id_field]):
        echoed[id_field] = element[id_field].lower()
    for field_name in spec.echo:
        if isinstance(element.get(field_name), str):
            echoed[field_name] = element[field_name]
    return echoed


def _allocate(org: Organisation, resource: str, source: Obj, request: Request, provider: str) -> Response:
    elements = _elements(request, "Allocations")
    summarize = _summarize(request)
    results: list[Obj] = []
    failed: list[Obj] = []
    for element in elements:
        try:
            accepted = field_rules.accepted_fields("Allocations", element, None)
            results.append(render(settlement.allocate(org, resource, source, accepted)))
        except ValidationFailure as failure:
            echoed: Obj = {"ValidationErrors": [{"Message": m} for m in failure.messages]}
            if not summarize:
                echoed["StatusAttributeString"] = "ERROR"
            results.append(echoed)
            failed.append(echoed)
    if failed and summarize:
        return validation_exception(failed)
    return Response.json(200, envelope("Allocations", results, provider))


def _list(org: Organisation, request: Request, resource: str) -> list[Obj]:
    items = list(org.accounts.values()) if resource == "Accounts" else list(org.objects[resource].values())
    ids = request.param("IDs")
    if ids is not None:
        wanted = {i.strip().lower() for i in ids.split(",")}
        if not all(is_guid(i) for i in wanted):
            raise BadRequest("IDs must be a comma-separated list of GUIDs.")
        items = [i for i in items if i[ID_FIELD[resource]] in wanted]
    if resource == "Invoices":
        items = _invoice_filters(request, items)
    if resource == "Contacts" and not _flag(request, "includeArchived", False):
        items = [c for c in items if c["ContactStatus"] == "ACTIVE"]
    since = _modified_since(request)
    if since is not None:
        items = [i for i in items if _changed_at(i) >= since]
    items = _filter(request, items)
    page = _page(request)
    if page is None and resource in LINES_ONLY_WHEN_PAGED:
        # An unpaged list is a summary: the same objects without their lines.
        items = [{**i, key: []} for i in items for key in [LINES_ONLY_WHEN_PAGED[resource]]]
    return page_of(items, page)


# Xero's OpenAPI, the `page` parameter of each list: "Up to 100 invoices will be returned in a
# single API call with line items shown for each invoice" (likewise credit notes, bank
# transactions, manual journals, overpayments), and its example answer to GET /BankTransactions
# shows "LineItems": []; Xero's SDKs report unpaged lists without lines (XeroAPI/xero-node#200,
# XeroAPI/xero-ruby#9). Fetched by id, or paged, an object comes whole.
LINES_ONLY_WHEN_PAGED = {
    "Invoices": "LineItems",
    "CreditNotes": "LineItems",
    "BankTransactions": "LineItems",
    "Overpayments": "LineItems",
    "ManualJournals": "JournalLines",
}


def _modified_since(request: Request) -> dt.datetime | None:
    """If-Modified-Since as Xero takes it: an ISO 8601 timestamp (UTC unless it says otherwise)."""
    value = request.header("If-Modified-Since")
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest("If-Modified-Since must be an ISO 8601 timestamp such as 2026-07-01T00:00:00.") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _changed_at(obj: Obj) -> dt.datetime:
    stamp = obj.get("UpdatedDateUTC") or obj.get("CreatedDateUTC")
    if not isinstance(stamp, str):
        return dt.datetime.max.replace(tzinfo=dt.UTC)  # never changed: always listed
    return dt.datetime.fromtimestamp(int(stamp[6:].split("+")[0].split(")")[0]) / 1000, tz=dt.UTC)


def _invoice_filters(request: Request, items: list[Obj]) -> list[Obj]:
    numbers = request.param("InvoiceNumbers")
    if numbers:
        wanted = {n.strip() for n in numbers.split(",")}
        items = [i for i in items if i.get("InvoiceNumber") in wanted]
    contact_ids = request.param("ContactIDs")
    if contact_ids is not None:
        wanted = {c.strip().lower() for c in contact_ids.split(",")}
        if not all(is_guid(c) for c in wanted):
            raise BadRequest("ContactIDs must be a comma-separated list of GUIDs.")
        items = [i for i in items if i["Contact"]["ContactID"] in wanted]
    statuses = request.param("Statuses")
    if statuses:
        wanted = {s.strip().upper() for s in statuses.split(",")}
        items = [i for i in items if i["Status"] in wanted]
    return items


def _filter(request: Request, items: list[Obj]) -> list[Obj]:
    where = request.param("where")
    if not where:
        return items
    clauses = parse_where(where)
    return [i for i in items if matches(i, clauses)]


def _page(request: Request) -> int | None:
    value = request.param("page")
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"page must be a whole number from 1 to {MAX_PAGE}.")
    return int(value)
