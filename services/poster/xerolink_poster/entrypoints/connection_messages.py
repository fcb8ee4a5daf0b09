"""Connection lifecycle rows and outcomes as xerolink.poster.v1 messages (never with tokens)."""

from __future__ import annotations

from google.protobuf import timestamp_pb2
from xerolink.poster.v1 import connection_pb2

from xerolink_poster.domain.allocation import Discrepancy
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer import connection_facts as lifecycle
from xerolink_poster.service_layer.ports import ConnectionRow

STATES: dict[str, connection_pb2.ConnectionState.ValueType] = {
    ConnectionState.CONNECTED: connection_pb2.CONNECTION_STATE_CONNECTED,
    ConnectionState.NEEDS_RECONNECT: connection_pb2.CONNECTION_STATE_NEEDS_RECONNECT,
    ConnectionState.DISCONNECTED: connection_pb2.CONNECTION_STATE_DISCONNECTED,
}


def _timestamp(us: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


def discrepancy_messages(found: list[Discrepancy]) -> list[connection_pb2.AllocationDiscrepancy]:
    return [
        connection_pb2.AllocationDiscrepancy(
            function=d.function, account_code=d.account_code, problem=d.problem, description=d.description
        )
        for d in found
    ]


def status_message(row: ConnectionRow) -> connection_pb2.ConnectionStatus:
    facts = lifecycle.organisation_facts(row)
    status = connection_pb2.ConnectionStatus(
        state=STATES.get(row.state, connection_pb2.CONNECTION_STATE_UNSPECIFIED),
        warnings=[
            *(
                connection_pb2.ConnectionWarning(code=str(w.get("code", "")), message=str(w.get("message", "")))
                for w in facts.get("warnings") or []
                # Kept by connects of an earlier release; these are derived from the settings below.
                if w.get("code") not in lifecycle.LIVE_TAX_WARNINGS
            ),
            # From the stored context, so a RemapTaxTypes that mends a setting clears its warning.
            *(
                connection_pb2.ConnectionWarning(code=w.code, message=w.message)
                for w in lifecycle.tax_warnings(lifecycle.context_of(row), str(facts.get("country_code") or ""))
            ),
        ],
        allocation_discrepancies=discrepancy_messages(lifecycle.allocation_discrepancies(lifecycle.context_of(row))),
        xero_app=row.xero_app,
        last_error=row.last_error,
    )
    if facts.get("read_us"):
        status.organisation.CopyFrom(
            connection_pb2.OrganisationFacts(
                name=str(facts.get("name", "")),
                organisation_id=str(facts.get("organisation_id", "")),
                demo_company=bool(facts.get("demo_company")),
                organisation_class=str(facts.get("organisation_class", "")),
                base_currency_code=str(facts.get("base_currency_code", "")),
                chart_account_count=int(facts.get("chart_account_count", 0)),
                country_code=str(facts.get("country_code", "")),
                tax_rate_count=int(facts.get("tax_rate_count", 0)),
                read_time=_timestamp(int(facts["read_us"])),
            )
        )
    if row.access_expires_us:
        status.access_token_expire_time.CopyFrom(_timestamp(row.access_expires_us))
    if row.token_update_us:
        status.token_update_time.CopyFrom(_timestamp(row.token_update_us))
    return status
