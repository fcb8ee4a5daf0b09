"""Writes: the elements of a request body, each created, updated or allocated on its own, and
Xero's answer for the batch (summarizeErrors decides whether one failure fails the call)."""

from __future__ import annotations

import copy

from xero_emulator.domain import field_rules, settlement
from xero_emulator.domain.amounts import UNIT_PLACES
from xero_emulator.domain.errors import BadRequest, ValidationFailure
from xero_emulator.domain.organisation import ID_FIELD, Organisation, is_guid
from xero_emulator.jsonio import JsonError, loads
from xero_emulator.messages import Request, Response, envelope, render, validation_exception
from xero_emulator.xero_api.params import summarize_errors
from xero_emulator.xero_api.resources import Obj, ResourceSpec


def request_elements(request: Request, resource: str) -> list[Obj]:
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


def write_batch(
    org: Organisation,
    spec: ResourceSpec,
    elements: list[Obj],
    method: str,
    summarize: bool,
    provider: str,
    target: Obj | None = None,
    unit_places: int = 2,
) -> Response:
    """Each element succeeds or fails alone. summarizeErrors=false: 200 with every element marked
    OK or ERROR. Otherwise any failure makes the call a 400 listing the failed elements, while the
    valid ones are still created (Xero's behaviour, which hides their IDs)."""
    results: list[Obj] = []
    failed: list[Obj] = []
    places = UNIT_PLACES.set(unit_places)
    try:
        _write_each(org, spec, elements, method, summarize, target, results, failed)
    finally:
        UNIT_PLACES.reset(places)
    if failed and summarize:
        return validation_exception(failed)
    return Response.json(200, envelope(spec.name, results, provider))


def _write_each(
    org: Organisation,
    spec: ResourceSpec,
    elements: list[Obj],
    method: str,
    summarize: bool,
    target: Obj | None,
    results: list[Obj],
    failed: list[Obj],
) -> None:
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


def allocate(org: Organisation, resource: str, source: Obj, request: Request, provider: str) -> Response:
    elements = request_elements(request, "Allocations")
    summarize = summarize_errors(request)
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
