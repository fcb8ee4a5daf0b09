"""Consumer-driven contract files: what a consumer sends and which response fields it reads.

A pact file is JSON:
  {"consumer": "poster", "provider": "mapper", "rpc": "MapTransaction",
   "description": "...", "request": {... protobuf JSON of the request ...},
   "expect": [{"path": "decision.supported", "equals": true},
              {"path": "operations[0].invoice.line_items[*].account_code", "present": true},
              {"path": "decision.reason_code", "matches": "^[A-Z_]+$"}]}

Paths use proto field names; `[n]` indexes a list and `[*]` checks every element (a list that is
empty fails a `[*]` expectation, so "every line has a code" cannot pass vacuously). Only the
fields a consumer really reads belong in its pact: a provider may change anything else."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

PACTS = Path(__file__).resolve().parent / "pacts"
_TOKEN = re.compile(r"([a-zA-Z0-9_]+)|\[(\*|\d+)\]")


@dataclass(frozen=True)
class Pact:
    path: Path
    consumer: str
    provider: str
    rpc: str
    description: str
    request: dict[str, Any]
    expect: list[dict[str, Any]]
    # Expectations on the error the call must fail with (code, reason, message, field_violations...).
    expect_error: list[dict[str, Any]]
    # Transactions posted (and settled) before the request, for pacts about existing links.
    given: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"


def load_pacts(folder: str) -> list[Pact]:
    pacts = []
    for path in sorted((PACTS / folder).glob("*.json")):
        raw = json.loads(path.read_text())
        pacts.append(
            Pact(
                path,
                raw["consumer"],
                raw["provider"],
                raw["rpc"],
                raw["description"],
                raw["request"],
                raw.get("expect", []),
                raw.get("expect_error", []),
                raw.get("given", []),
            )
        )
        if not pacts[-1].expect and not pacts[-1].expect_error:
            raise AssertionError(f"{path}: a pact needs expect or expect_error")
    if not pacts:
        raise AssertionError(f"no pact files in {PACTS / folder}")
    return pacts


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _resolve(value: Any, tokens: list[tuple[str, str]], trail: str) -> list[tuple[str, Any]]:
    if not tokens:
        return [(trail, value)]
    (name, index), rest = tokens[0], tokens[1:]
    if name:
        if not isinstance(value, dict) or name not in value:
            raise KeyError(f"{trail}.{name}".lstrip("."))
        return _resolve(value[name], rest, f"{trail}.{name}".lstrip("."))
    if not isinstance(value, list):
        raise KeyError(f"{trail} is not a list")
    if index == "*":
        if not value:
            raise KeyError(f"{trail} is empty")
        found: list[tuple[str, Any]] = []
        for i, item in enumerate(value):
            found.extend(_resolve(item, rest, f"{trail}[{i}]"))
        return found
    i = int(index)
    if i >= len(value):
        raise KeyError(f"{trail}[{i}] does not exist (length {len(value)})")
    return _resolve(value[i], rest, f"{trail}[{i}]")


def check(response: dict[str, Any], expectations: list[dict[str, Any]]) -> list[str]:
    """Every broken expectation, as a sentence; an empty list means the pact holds."""
    problems = []
    for exp in expectations:
        path = exp["path"]
        try:
            values = _resolve(response, [(m.group(1) or "", m.group(2) or "") for m in _TOKEN.finditer(path)], "")
        except KeyError as missing:
            problems.append(f"{path}: missing ({missing.args[0]})")
            continue
        for where, value in values:
            if "equals" in exp and value != exp["equals"]:
                problems.append(f"{where}: expected {exp['equals']!r}, got {value!r}")
            if "matches" in exp and not re.fullmatch(exp["matches"], str(value)):
                problems.append(f"{where}: {value!r} does not match {exp['matches']!r}")
            if exp.get("present") and value in ("", None, [], {}):
                problems.append(f"{where}: expected a value, got {value!r}")
    return problems
