"""JSON for Xero without floats: amounts are written from Decimal exactly and read back as
Decimal."""

from __future__ import annotations

import json
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

# The bytes must stay what json.dumps wrote (ASCII, no spaces): an Idempotency-Key is derived
# from them, and a changed body under an old key would be a different request to Xero.
_LITERALS = {True: "true", False: "false", None: "null"}


def dumps(value: Any) -> bytes:
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode()


def _write(value: Any, out: list[str]) -> None:
    # The most frequent types first: a batch's body has thousands of strings and dicts.
    if isinstance(value, str):
        out.append(encode_basestring_ascii(value))
    elif isinstance(value, dict):
        out.append("{")
        separator = ""
        for key, item in value.items():
            out.append(separator + encode_basestring_ascii(str(key)) + ":")
            separator = ","
            _write(item, out)
        out.append("}")
    elif isinstance(value, Decimal):
        out.append(format(value, "f"))
    elif value is None or isinstance(value, bool):
        out.append(_LITERALS[value])
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, float):
        raise TypeError("amounts are never floats")
    else:
        out.append(json.dumps(value))


def loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), parse_float=Decimal)
