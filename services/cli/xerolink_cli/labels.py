"""Short names of enum values for tables: TRANSACTION_KIND_CLIENT_BILL -> client bill."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper


def enum_label(enum: _EnumTypeWrapper[Any], value: int) -> str:
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    return enum.Name(value).removeprefix(prefix).replace("_", " ").lower()
