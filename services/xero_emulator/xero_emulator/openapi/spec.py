"""The OpenAPI 3.0 document for what the emulator implements, with Xero's names and shapes.
Response schemas list every field the emulator returns; request schemas only the fields it reads
(and validates), so schema-driven tests exercise real behaviour."""

from __future__ import annotations

from typing import Any

from xero_emulator.openapi.components import PARAMETERS, SCHEMAS
from xero_emulator.openapi.paths import path_items


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "info": {
            "title": "Xero Accounting API (local emulator subset)",
            "version": "2.0.0",
            "description": "The operations of the Xero Accounting API that the local emulator implements.",
        },
        "servers": [{"url": "/api.xro/2.0"}],
        "security": [{"bearer": []}],
        "paths": path_items(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": PARAMETERS,
            "schemas": SCHEMAS,
        },
    }
