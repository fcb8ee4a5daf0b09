"""Field rules derived from Xero's OpenAPI description for the objects xerolink writes: readOnly
fields, maxLength, and descriptions that restrict a field to some Types ("ACCREC only - additional
reference number", "Only supported for SPEND and RECEIVE transactions."). Nothing here is a copy
of a rule: each is read from the schema, so a new rule in a new description is checked too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from xero_emulator.openapi.spec import openapi_document

from tests.contract.xero_description import xero_description

# The resources xerolink writes (services/poster/xerolink_poster/adapters/xero_payloads.py), each
# with the Xero schema of its elements and the emulator path its PUT goes to.
WRITTEN: dict[str, tuple[str, str]] = {
    "Invoices": ("Invoice", "/Invoices"),
    "CreditNotes": ("CreditNote", "/CreditNotes"),
    "Payments": ("Payment", "/Payments"),
    "Allocations": ("Allocation", "/CreditNotes/{CreditNoteID}/Allocations"),
    "BankTransactions": ("BankTransaction", "/BankTransactions"),
    "BankTransfers": ("BankTransfer", "/BankTransfers"),
    "ManualJournals": ("ManualJournal", "/ManualJournals"),
    "Contacts": ("Contact", "/Contacts"),
}
_ONLY = re.compile(r"\bonly\b", re.IGNORECASE)
_TYPE_TOKEN = re.compile(r"\b[A-Z][A-Z-]*[A-Z]\b")


@dataclass(frozen=True)
class Rule:
    kind: str  # "readOnly", "maxLength" or "typeOnly"
    resource: str
    path: tuple[str, ...]  # ("Reference",) or ("LineItems", "DiscountRate")
    schema: dict[str, Any]  # the property's schema in Xero's description
    max_length: int = 0
    types: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        detail = f"={self.max_length}" if self.max_length else f"={sorted(self.types)}" if self.types else ""
        return f"{self.resource}.{'[].'.join(self.path)} {self.kind}{detail}"


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node.get("$ref"), str):
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _type_enum(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    prop = _resolve(document, schema.get("properties", {}).get("Type", {}))
    return {str(value) for value in prop.get("enum", [])}


def _rules_of(
    document: dict[str, Any], resource: str, schema: dict[str, Any], prefix: tuple[str, ...], types: set[str]
) -> list[Rule]:
    rules: list[Rule] = []
    for field, raw in schema.get("properties", {}).items():
        prop = (
            raw if "$ref" not in raw else {**_resolve(document, raw), **{k: v for k, v in raw.items() if k != "$ref"}}
        )
        path = (*prefix, field)
        if prop.get("readOnly"):
            rules.append(Rule("readOnly", resource, path, prop))
        if isinstance(prop.get("maxLength"), int):
            rules.append(Rule("maxLength", resource, path, prop, max_length=prop["maxLength"]))
        description = str(raw.get("description") or prop.get("description") or "")
        # The Types named in the sentence that says "only" (not those a later sentence excludes).
        sentences = [s for s in re.split(r"(?<=[.;])\s+", description) if _ONLY.search(s)]
        named = {token for s in sentences for token in _TYPE_TOKEN.findall(s) if token in types}
        if named and named != types:
            rules.append(Rule("typeOnly", resource, path, prop, types=frozenset(named)))
        # Line items live in the element: their rules are the document's ("only supported on ACCREC").
        items = raw.get("items") if raw.get("type") == "array" else None
        if not prefix and isinstance(items, dict) and "$ref" in items and not prop.get("readOnly"):
            rules += _rules_of(document, resource, _resolve(document, items), path, types)
    return rules


def derive_rules() -> list[Rule]:
    document = xero_description()
    schemas = document["components"]["schemas"]
    rules: list[Rule] = []
    for resource, (schema_name, _path) in WRITTEN.items():
        schema = schemas[schema_name]
        rules += _rules_of(document, resource, schema, (), _type_enum(document, schema))
    return rules


def emulator_input(resource: str) -> dict[str, Any]:
    """The element schema the emulator's own document says its PUT reads: the fields a client such
    as xerolink can send it (the emulator's document is itself checked against Xero's)."""
    document = openapi_document()
    body = document["paths"][WRITTEN[resource][1]]["put"]["requestBody"]["content"]["application/json"]["schema"]
    wrapped = _resolve(document, body)["properties"][resource]["items"]
    return _resolve(document, wrapped)


def emulator_reads(resource: str, path: tuple[str, ...]) -> bool:
    document = openapi_document()
    schema = emulator_input(resource)
    for part in path[:-1]:
        schema = _resolve(document, schema.get("properties", {}).get(part, {}))
        schema = _resolve(document, schema.get("items", schema))
    return path[-1] in schema.get("properties", {})


def emulator_types(resource: str) -> list[str]:
    return [str(t) for t in emulator_input(resource).get("properties", {}).get("Type", {}).get("enum", [])]
