"""What a connection row says: its mapping context and chart, whether it can take posts, and
the organisation facts and chart read from Xero when it connects."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import timestamp_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import PreconditionViolation, failed_precondition
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain import allocation
from xerolink_poster.domain.states import ConnectionState


def context_of(row: ConnectionRow) -> mapper_pb2.MappingContext:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(row.mapping_context)
    return context


def chart_entries(context: mapper_pb2.MappingContext) -> list[allocation.ChartEntry]:
    return [allocation.ChartEntry(a.code, a.name, a.status) for a in context.chart]


def allocation_discrepancies(context: mapper_pb2.MappingContext) -> list[allocation.Discrepancy]:
    return allocation.discrepancies(dict(context.account_allocation), chart_entries(context))


def check_postable(row: ConnectionRow) -> None:
    """Refuses a post, before anything is queued, when the connection is disconnected or its
    allocation names accounts the organisation's chart lacks."""
    if row.state == ConnectionState.DISCONNECTED:
        raise failed_precondition(
            Reason.CONNECTION_DISCONNECTED,
            f"connection {row.connection_id!r} is disconnected; connect the organisation again with "
            "ConnectOrganisation before posting",
            [
                PreconditionViolation(
                    "CONNECTION_STATE", f"connections/{row.connection_id}", ConnectionState.DISCONNECTED
                )
            ],
        )
    broken = allocation_discrepancies(context_of(row))
    if broken:
        codes = ", ".join(f"{d.function}={d.account_code}" for d in broken)
        raise failed_precondition(
            Reason.ACCOUNT_ALLOCATION_BROKEN,
            f"the account allocation names accounts the Xero organisation cannot take ({codes}); re-map them with "
            "RemapAccounts (GetAllocationDiscrepancies lists them) or fix the chart in Xero",
            [PreconditionViolation(d.problem, d.account_code, d.description) for d in broken],
        )


def organisation_facts(row: ConnectionRow) -> dict[str, Any]:
    try:
        facts = json.loads(row.organisation or "{}")
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


def chart_from_accounts(accounts: list[dict[str, Any]]) -> list[mapper_pb2.ChartAccount]:
    """Xero's Accounts as the mapper's chart; accounts without a code cannot be allocated."""
    chart = []
    for account in accounts:
        code = str(account.get("Code") or "")
        if not code:
            continue
        kind = str(account.get("Type") or "")
        chart.append(
            mapper_pb2.ChartAccount(
                code=code,
                name=str(account.get("Name") or ""),
                type=kind,
                status=str(account.get("Status") or "ACTIVE"),
                tax_type=str(account.get("TaxType") or ""),
                enable_payments=kind == "BANK" or bool(account.get("EnablePaymentsToAccount")),
            )
        )
    return chart


def timestamp_of(us: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


def tenant_list(tenants: list[dict[str, Any]]) -> str:
    return ", ".join(f"{t.get('tenantName', '?')} ({t.get('tenantId', '?')})" for t in tenants) or "none"
