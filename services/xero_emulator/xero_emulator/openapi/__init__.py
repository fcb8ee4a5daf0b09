"""The OpenAPI 3.0 document the emulator serves at /openapi.json (spec.openapi_document)."""
