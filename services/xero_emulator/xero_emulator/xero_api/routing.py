"""Routing under /api.xro/2.0/: which methods a path accepts, and serving one authorised request."""

from __future__ import annotations

from xero_emulator.domain import settlement
from xero_emulator.domain.errors import BadRequest, NotFound
from xero_emulator.domain.organisation import Organisation, is_guid
from xero_emulator.messages import Request, Response, envelope
from xero_emulator.xero_api import tracking_api
from xero_emulator.xero_api.batches import allocate, request_elements, write_batch
from xero_emulator.xero_api.lists import filter_where, list_objects
from xero_emulator.xero_api.params import summarize_errors, unit_places
from xero_emulator.xero_api.resources import ALLOCATION_SOURCES, READ_ONLY, SPECS, Obj


class MethodNotAllowed(Exception):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


def allowed_methods(parts: list[str]) -> tuple[str, ...] | None:
    """The methods a path accepts, or None when no such path exists (404)."""
    if tracking_api.handles(parts):
        return tracking_api.allowed_methods(parts)
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
    if tracking_api.handles(parts):
        return tracking_api.handle(org, request, parts, provider)
    resource = _canonical(parts[0])
    assert resource is not None
    method = request.method
    if resource == "Organisation":
        return Response.json(200, envelope("Organisations", [org.organisation_object()], provider))
    if resource == "TaxRates":
        items = filter_where(request, list(org.tax_rates.values()))
        return Response.json(200, envelope("TaxRates", items, provider))
    spec = SPECS[resource]
    if len(parts) == 1 and method == "GET":
        return Response.json(200, envelope(resource, list_objects(org, request, resource), provider))
    if len(parts) == 1:
        elements = request_elements(request, resource)
        return write_batch(
            org, spec, elements, method, summarize_errors(request), provider, unit_places=unit_places(request)
        )
    if len(parts) == 2 and method == "GET":
        return Response.json(200, envelope(resource, [_one(org, resource, parts[1])], provider))
    if len(parts) == 2:  # POST to an item: update it
        target = _one(org, resource, parts[1])
        elements = request_elements(request, resource)
        if len(elements) != 1:
            raise BadRequest(f"POST to a single {resource[:-1]} takes exactly one element.")
        return write_batch(
            org, spec, elements, method, summarize_errors(request), provider, target, unit_places=unit_places(request)
        )
    source = _one(org, resource, parts[1])
    if len(parts) == 3:
        return allocate(org, resource, source, request, provider)
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
