"""Which query parameters Xero's OpenAPI description declares for an operation, and which of those a
request sent are not declared there.

    from tests.contract.xero_parameters import undeclared_parameters, undeclared_requests

    undeclared_parameters("PUT", "/BankTransfers", {"summarizeErrors": "false"})  # ["summarizeErrors"]
    undeclared_parameters("PUT", "/api.xro/2.0/Invoices", [("summarizeErrors", "false")])  # []
    undeclared_requests(emulator.state.requests.entries(tenant_id))  # every request of a run

`path` may carry the /api.xro/2.0 prefix; it is matched against the description's path templates
(/CreditNotes/{CreditNoteID}/Allocations), literal segments case-insensitively. `params` is a mapping,
pairs or bare names; names compare case-insensitively, as Xero reads them. A method and path the
description has no operation for raise UnknownOperation: a call Xero does not offer is a bigger
problem than its parameters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from tests.contract.xero_description import xero_description

API_PREFIX = "/api.xro/2.0"


class UnknownOperation(LookupError):
    """Xero's description has no operation for this method and path."""


class RecordedRequest(Protocol):
    """What the emulator's request log (xero_emulator.request_log.ReceivedRequest) holds."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def params(self) -> tuple[tuple[str, str], ...]: ...


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    resolved: dict[str, Any] = target
    return resolved


def _segments(path: str) -> list[str]:
    path = path.split("?", 1)[0]
    if path.lower().startswith(API_PREFIX.lower()):
        path = path[len(API_PREFIX) :]
    return [part for part in path.split("/") if part]


def _literal_matches(template: str, segments: list[str]) -> int | None:
    """How many literal segments of `template` match, or None when the path does not fit it."""
    parts = _segments(template)
    if len(parts) != len(segments):
        return None
    literal = 0
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{") and part.endswith("}"):
            continue
        if part.lower() != segment.lower():
            return None
        literal += 1
    return literal


def declared_parameters(method: str, path: str) -> set[str]:
    """Query parameter names (lower-case) Xero declares for the operation matching method and path.
    The most specific template wins (most literal segments), as a router would choose."""
    document = xero_description()
    segments = _segments(path)
    best: tuple[int, str] | None = None
    for template, item in document["paths"].items():
        if method.lower() not in item:
            continue
        literal = _literal_matches(template, segments)
        if literal is not None and (best is None or literal > best[0]):
            best = (literal, template)
    if best is None:
        raise UnknownOperation(f"Xero's description has no operation {method.upper()} {path}")
    item = document["paths"][best[1]]
    declared: set[str] = set()
    for raw in [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]:
        parameter = _resolve(document, raw)
        if parameter.get("in") == "query":
            declared.add(str(parameter["name"]).lower())
    return declared


def undeclared_parameters(
    method: str, path: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] | Iterable[str]
) -> list[str]:
    """The query parameter names sent that Xero does not declare for this operation, each once, in
    the order sent; [] when all are declared."""
    declared = declared_parameters(method, path)
    names: list[str] = []
    for entry in params.keys() if isinstance(params, Mapping) else params:
        name = entry if isinstance(entry, str) else str(entry[0])
        if name.lower() not in declared and name not in names:
            names.append(name)
    return names


def undeclared_requests(requests: Iterable[RecordedRequest]) -> list[str]:
    """One line per recorded request that sent an undeclared parameter or that Xero does not
    offer at all, e.g. "PUT /api.xro/2.0/BankTransfers: summarizeErrors"; [] when all is well."""
    problems: list[str] = []
    for request in requests:
        try:
            extra = undeclared_parameters(request.method, request.path, request.params)
        except UnknownOperation as exc:
            problems.append(str(exc))
            continue
        if extra:
            problems.append(f"{request.method} {request.path}: {', '.join(extra)}")
    return problems
