"""A link's last error as stored (JSON) and as an ItemError-shaped dict."""

from __future__ import annotations

import json
from typing import Any

from xerolink_common.errors import ErrorCode


def error_json(code: ErrorCode, reason: str, message: str, violations: list[tuple[str, str]] | None = None) -> str:
    return json.dumps(
        {
            "code": code.value,
            "reason": reason,
            "message": message,
            "field_violations": [{"field": f, "description": d} for f, d in (violations or [])],
        }
    )


def parse_error(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None
