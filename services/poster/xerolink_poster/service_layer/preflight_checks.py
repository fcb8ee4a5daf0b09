"""RunPreflight: the connection's stored Actionstep facts (its mapping context), its state and its
division routing, and the division ids the caller read from Actionstep, through the preflight
rules. Reads only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import FieldViolation, PreconditionViolation, failed_precondition, invalid_argument
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain import preflight
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer.connection_facts import (
    allocation_discrepancies,
    check_postable,
    organisation_facts,
    tax_problems,
)
from xerolink_poster.service_layer.connections import get_connection
from xerolink_poster.service_layer.posting_values import mapping_context
from xerolink_poster.service_layer.routing_changes import routing_of
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

_METHODS = {
    mapper_pb2.ACCOUNTING_METHOD_ACCRUAL: preflight.Method.ACCRUAL,
    mapper_pb2.ACCOUNTING_METHOD_CASH: preflight.Method.CASH,
}


def facts_of(
    connection: ConnectionRow,
    division_ids: Sequence[int] | None,
    routed: Mapping[int, preflight.RoutedDivision] | None = None,
) -> preflight.Facts:
    """`routed`: the divisions the connection posts under other connections (routed_divisions)."""
    context = mapping_context(connection)
    country = str(organisation_facts(connection).get("country_code") or "")
    # UNSPECIFIED is the compatible profile, as the mapper reads it.
    extended = context.profile == mapper_pb2.POLICY_PROFILE_EXTENDED
    return preflight.Facts(
        profile=preflight.Profile.EXTENDED if extended else preflight.Profile.COMPATIBLE,
        accounting_method=_METHODS.get(context.accounting_method, preflight.Method.UNSPECIFIED),
        multi_currency_database=context.multi_currency_database,
        general_retainers_configured=context.general_retainers_configured,
        linked_division_id=context.linked_division_id,
        division_ids=tuple(division_ids) if division_ids is not None else None,
        allocation_discrepancies=tuple(allocation_discrepancies(context)) if len(context.chart) else None,
        tax_problems=tuple(tax_problems(context, country)),
        tax_rates_read=len(context.tax_rates) > 0,
        country_code=country,
        connection_state=connection.state,
        routed_divisions=dict(routed or {}),
    )


def routed_divisions(db: Database, connection: ConnectionRow) -> dict[int, preflight.RoutedDivision]:
    """The divisions the connection routes to their own organisations' connections
    (division_connections), with each such connection's state: a transaction of one of them is
    posted there, not refused OTHER_DIVISION."""
    routes = routing_of(connection).division_connections
    if not routes:
        return {}
    with UnitOfWork(db, write=False) as uow:
        rows = {cid: uow.connections.get_connection(cid) for cid in set(routes.values())}
    return {
        division: preflight.RoutedDivision(cid, row.state)
        for division, cid in routes.items()
        if (row := rows[cid]) is not None
    }


# An Actionstep organisation has a handful of divisions; far more is not a divisions list.
MAX_DIVISIONS = 1000


def _check_divisions(division_ids: Sequence[int]) -> None:
    violations = [
        FieldViolation(f"division_ids[{i}]", "an Actionstep division id: positive")
        for i, division_id in enumerate(division_ids[:MAX_DIVISIONS])
        if division_id <= 0
    ]
    if len(division_ids) > MAX_DIVISIONS:
        violations.append(
            FieldViolation("division_ids", f"{len(division_ids)} ids; at most {MAX_DIVISIONS} (the organisation's)")
        )
    if violations:
        raise invalid_argument(
            Reason.INVALID_DIVISIONS,
            "division_ids must be the ids of the Actionstep organisation's divisions (its divisions resource)",
            violations,
        )


def run_preflight(
    db: Database, connection_id: str, division_ids: Sequence[int] | None
) -> tuple[preflight.Facts, list[preflight.Check]]:
    _check_divisions(division_ids or ())
    connection = get_connection(db, connection_id)
    facts = facts_of(connection, division_ids, routed_divisions(db, connection))
    return facts, preflight.run(facts)


def require_preflight(db: Database, connection_id: str) -> None:
    """FAILED_PRECONDITION naming every failed check: each would make every transaction refused
    (or, for a connection to be connected again, never reach Xero), so a bulk operation would
    record nothing but refusals. A disconnected connection is refused as a post to it is
    (CONNECTION_DISCONNECTED, saying to connect it again)."""
    connection = get_connection(db, connection_id)
    if connection.state == ConnectionState.DISCONNECTED:
        check_postable(connection)
    _, checks = run_preflight(db, connection_id, None)
    failed = preflight.failed(checks)
    if failed:
        names = ", ".join(c.check for c in failed)
        raise failed_precondition(
            Reason.PREFLIGHT_FAILED,
            f"the connection fails preflight ({names}); fix each check as it says, update the connection, "
            "and run RunPreflight until it is ready",
            [PreconditionViolation(c.check, f"connections/{connection_id}", c.message) for c in failed],
        )
