"""Reading Actionstep transactions from JSON, NDJSON or a JSON array (protobuf JSON mapping)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import IO, Any

from google.protobuf import json_format
from xerolink.actionstep.v1 import transaction_pb2


class TransactionFileError(ValueError):
    """A transaction could not be read; the message names the line and the field."""


def parse_transactions(stream: IO[str], source: str = "<stdin>") -> Iterator[transaction_pb2.Transaction]:
    text = stream.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TransactionFileError(f"{source}: not valid JSON: {exc}") from exc
        for index, item in enumerate(items):
            yield _parse(item, f"{source}[{index}]")
        return
    if stripped.startswith("{"):
        # One object, perhaps spread over several lines; NDJSON reads as one object then extra data.
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as exc:
            if not exc.msg.startswith("Extra data"):
                raise TransactionFileError(f"{source}:{exc.lineno}: not valid JSON: {exc}") from exc
        else:
            first_line = text[: len(text) - len(stripped)].count("\n") + 1
            yield _parse(whole, f"{source}:{first_line}")
            return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TransactionFileError(f"{source}:{number}: not valid JSON: {exc}") from exc
        yield _parse(item, f"{source}:{number}")


def _parse(item: Any, where: str) -> transaction_pb2.Transaction:
    try:
        return json_format.ParseDict(item, transaction_pb2.Transaction())
    except json_format.ParseError as exc:
        raise TransactionFileError(f"{where}: {exc}") from exc


def demo_transactions() -> list[transaction_pb2.Transaction]:
    """A week of a small law firm: bills, receipts, credit notes, trust and supplier work, and
    some transactions Actionstep's integration does not post."""
    sample = resources.files("xerolink_cli") / "samples" / "demo_firm.ndjson"
    with sample.open("r", encoding="utf-8") as stream:
        return list(parse_transactions(stream, "demo_firm.ndjson"))
