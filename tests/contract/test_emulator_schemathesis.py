"""Schemathesis against the running emulator, driven by the OpenAPI document it serves: every
implemented operation, with generated valid and invalid input, must answer with a declared status,
content type and body shape, never a server error, and must reject invalid input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi import checks
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.openapi.spec import openapi_document

UNLIMITED = EmulatorConfig(minute_limit=10**9, day_limit=10**9, app_minute_limit=10**9, concurrent_limit=1000)


@pytest.fixture(scope="module")
def emulator_for_contract() -> Iterator[tuple[EmulatorServer, dict[str, Any]]]:
    server = EmulatorServer(UNLIMITED).start()
    try:
        yield server, server.create_organisation("Contract Test Firm")
    finally:
        server.stop()


# Loaded at collection time from the same function the server answers /openapi.json with; the first
# test proves the served document is exactly this one.
schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.phases.update(phases=["examples", "fuzzing"])
# The coverage phase (boundary values, each parameter made invalid in turn, undeclared methods) is
# the slow one, so it runs on the operations that change data, where mistakes cost the most.
coverage_schema = schemathesis.openapi.from_dict(openapi_document()).include(method=["PUT", "POST", "DELETE"])
coverage_schema.config.phases.update(phases=["coverage"])


def test_the_served_document_is_the_one_under_test(
    emulator_for_contract: tuple[EmulatorServer, dict[str, Any]],
) -> None:
    server, _ = emulator_for_contract
    served = httpx.get(f"{server.base_url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(openapi_document()))


def _call(case: Any, server: EmulatorServer, org: dict[str, Any]) -> None:
    headers = dict(case.headers or {})
    if not case.meta.is_negative_at(ParameterLocation.HEADER):
        # A valid call must reach the organisation; negative header cases keep what was generated.
        headers["xero-tenant-id"] = org["tenant_id"]
    case.headers = headers
    # Xero refuses schema-valid requests that break its business rules (an unknown account code, a
    # contact that does not exist) with a 400 ValidationException, and so does the emulator: the
    # "schema-valid data must be accepted" check does not apply to this API.
    excluded = [checks.positive_data_acceptance]
    if str((case.query or {}).get("summarizeErrors")).lower() == "false":
        # With summarizeErrors=false Xero answers 200 and marks bad elements ERROR in the body,
        # so an invalid element is not rejected with a 4xx by design.
        excluded.append(checks.negative_data_rejection)
    case.call_and_validate(
        base_url=server.api_url,
        headers={"Authorization": f"Bearer {org['access_token']}"},
        excluded_checks=excluded,
    )


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_emulator_conforms_to_its_openapi_document(
    case: Any, emulator_for_contract: tuple[EmulatorServer, dict[str, Any]]
) -> None:
    _call(case, *emulator_for_contract)


@coverage_schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_emulator_write_operations_under_coverage_cases(
    case: Any, emulator_for_contract: tuple[EmulatorServer, dict[str, Any]]
) -> None:
    _call(case, *emulator_for_contract)
