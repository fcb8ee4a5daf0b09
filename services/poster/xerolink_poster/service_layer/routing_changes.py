"""A connection's routing (extended profile): read from its row, checked against the connections it
names, and saved together with the ledgers it gives each connection's mapping context."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink_common.errors import FieldViolation, XerolinkError, invalid_argument
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain.routing import Routing
from xerolink_poster.service_layer.connection_facts import context_of
from xerolink_poster.service_layer.connections import CONNECTION_ID, get_connection
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

EXTENDED = mapper_pb2.POLICY_PROFILE_EXTENDED
OFFICE = mapper_pb2.ORGANISATION_LEDGERS_OFFICE
TRUST = mapper_pb2.ORGANISATION_LEDGERS_TRUST
BOTH = mapper_pb2.ORGANISATION_LEDGERS_OFFICE_AND_TRUST


def routing_message(row: ConnectionRow) -> organisations_pb2.ConnectionRouting:
    message = organisations_pb2.ConnectionRouting()
    if row.routing:
        message.ParseFromString(row.routing)
    return message


def routing_of(row: ConnectionRow | None) -> Routing:
    if row is None or not row.routing:
        return Routing()
    message = routing_message(row)
    return Routing(message.trust_connection_id, dict(message.division_connections))


def _trust_connections_of(rows: Iterable[ConnectionRow], besides: str) -> set[str]:
    """The connections other connections than `besides` keep their trust money in."""
    return {t for r in rows if r.connection_id != besides and (t := routing_of(r).trust_connection_id)}


def _division_connections_of(rows: Iterable[ConnectionRow], besides: str) -> set[str]:
    """The connections other connections than `besides` post a division to."""
    return {d for r in rows if r.connection_id != besides for d in routing_of(r).division_connections.values()}


def routing_violations(
    connection: ConnectionRow, proposed: Routing, rows: Mapping[str, ConnectionRow]
) -> list[FieldViolation]:
    """What is wrong with `proposed` as `connection`'s routing, given every connection's current
    one. The rules hold whichever connection is routed first: a trust organisation's connection
    routes nothing and is no division's, a division's connection routes no division, and a
    trust organisation keeps the trust money of its office's division."""
    violations: list[FieldViolation] = []
    cid = connection.connection_id
    trusts = _trust_connections_of(rows.values(), cid)
    divisions = _division_connections_of(rows.values(), cid)
    if not proposed.empty and context_of(connection).profile != EXTENDED:
        violations.append(
            FieldViolation(
                "routing",
                f"connection {cid} uses the actionstep-compatible profile; routing is an option "
                "of the extended profile",
            )
        )
    if not proposed.empty and cid in trusts:
        violations.append(
            FieldViolation(
                "routing", f"connection {cid} is another connection's trust organisation, which routes nothing"
            )
        )
    if proposed.division_connections and cid in divisions:
        violations.append(
            FieldViolation(
                "routing.division_connections",
                f"connection {cid} is another connection's division; a division's connection routes no division",
            )
        )

    def target(field: str, name: str, what: str) -> ConnectionRow | None:
        if not CONNECTION_ID.fullmatch(name):
            violations.append(FieldViolation(field, "a connection id: 1-64 letters, digits, '-' or '_'"))
            return None
        if name == cid:
            violations.append(FieldViolation(field, f"names connection {cid} itself; name {what}"))
            return None
        row = rows.get(name)
        if row is None:
            violations.append(FieldViolation(field, f"no connection {name}: create it first, then route to it"))
            return None
        if context_of(row).profile != EXTENDED:
            violations.append(
                FieldViolation(field, f"connection {name} uses the actionstep-compatible profile; set it to extended")
            )
        return row

    trust = proposed.trust_connection_id
    if trust:
        field = "routing.trust_connection_id"
        row = target(field, trust, "the trust organisation's connection")
        if row is not None:
            if not routing_of(row).empty:
                violations.append(
                    FieldViolation(
                        field, f"connection {trust} routes transactions itself; a trust organisation's routes nothing"
                    )
                )
            if trust in divisions or trust in proposed.division_connections.values():
                violations.append(FieldViolation(field, f"connection {trust} is a division's connection"))
            own, theirs = context_of(connection).linked_division_id, context_of(row).linked_division_id
            if own != theirs:
                violations.append(
                    FieldViolation(
                        field,
                        f"connection {trust} is linked to division {theirs}, and {cid} to division {own}: the trust "
                        "organisation keeps the trust money of its office's division",
                    )
                )
    for division, name in sorted(proposed.division_connections.items()):
        field = f"routing.division_connections[{division}]"
        if division <= 0:
            violations.append(FieldViolation(field, "an Actionstep division id is positive"))
            continue
        row = target(field, name, "the connection of the division's organisation")
        if row is None:
            continue
        linked = context_of(row).linked_division_id
        if linked != division:
            violations.append(
                FieldViolation(field, f"connection {name} is linked to division {linked}, not {division}")
            )
        if routing_of(row).division_connections:
            violations.append(
                FieldViolation(field, f"connection {name} routes divisions itself; a division's connection cannot")
            )
        if name in trusts or name == trust:
            violations.append(FieldViolation(field, f"connection {name} is a trust organisation's connection"))
    return violations


def _with_ledgers(row: ConnectionRow, ledgers: int) -> None:
    context = context_of(row)
    if context.ledgers == ledgers:
        return
    context.ledgers = ledgers  # type: ignore[assignment]
    row.mapping_context = context.SerializeToString()


def update_routing(
    db: Database, connection_id: str, proposed: organisations_pb2.ConnectionRouting, validate_only: bool
) -> tuple[organisations_pb2.ConnectionRouting, list[str]]:
    """Checks and saves `connection_id`'s routing; answers it and the connections whose context
    changed (their cached copies must be forgotten)."""
    get_connection(db, connection_id)  # NOT_FOUND before the routing is judged
    if validate_only:
        with UnitOfWork(db, write=False) as uow:
            everyone = {r.connection_id: r for r in uow.connections.all_connections()}
            _check(connection_id, _routing(proposed), everyone)
        return proposed, []
    changed = run_in_transaction(db, lambda uow: apply_routing(uow, connection_id, proposed))
    return proposed, changed


def _routing(message: organisations_pb2.ConnectionRouting) -> Routing:
    return Routing(message.trust_connection_id, dict(message.division_connections))


def _check(connection_id: str, wanted: Routing, rows: Mapping[str, ConnectionRow]) -> None:
    found = routing_violations(rows[connection_id], wanted, rows)
    if found:
        raise invalid_argument(
            Reason.ROUTING_INVALID,
            f"the routing of connection {connection_id} cannot be saved: nothing changed",
            found,
        )


def apply_routing(uow: UnitOfWork, connection_id: str, proposed: organisations_pb2.ConnectionRouting) -> list[str]:
    """Saves the routing in the caller's transaction, with the ledgers it gives the connections
    (the trust organisation's TRUST, this one's OFFICE; a trust organisation no longer named by
    anyone goes back to OFFICE_AND_TRUST), and joins every connection it names into one firm
    group; answers the connections whose context changed."""
    wanted = _routing(proposed)
    locked: dict[str, ConnectionRow] = {}
    while True:
        everyone = {r.connection_id: r for r in uow.connections.all_connections()}
        rows = everyone | locked
        previous = routing_of(rows.get(connection_id)).trust_connection_id
        named = {n for n in wanted.names() if n in rows}
        groups = {rows[c].firm_group for c in {connection_id, *named} if rows[c].firm_group}
        members = {c for c, r in rows.items() if r.firm_group in groups} | {connection_id, *named}
        involved = (members | ({previous} if previous else set())) & rows.keys()
        if involved <= locked.keys():
            break
        # Locked in id order, so two updates never wait for each other's locks in turn; every row
        # is read again under its lock, and what it says (another pairing joined it to a group
        # meanwhile, another trust organisation) is taken into account before anything is saved.
        for cid in sorted(involved - locked.keys()):
            if (row := uow.connections.lock_connection(cid)) is not None:
                locked[cid] = row
    rows = everyone | locked
    _check(connection_id, wanted, rows)
    row = locked[connection_id]
    row.routing = proposed.SerializeToString() if not wanted.empty else None
    changed = {connection_id}
    trust = wanted.trust_connection_id
    if trust:
        _with_ledgers(row, OFFICE)
        _with_ledgers(locked[trust], TRUST)
        changed.add(trust)
    elif context_of(row).ledgers == OFFICE:
        _with_ledgers(row, BOTH)
    if previous and previous != trust and previous in locked:
        if previous not in _trust_connections_of(rows.values(), connection_id):
            _with_ledgers(locked[previous], BOTH)
        changed.add(previous)
    if not wanted.empty:
        # A group is never split, so a record linked under one of them before a routing change is
        # still found there (RECORD_LINKED_ELSEWHERE) after it.
        group = min(groups) if groups else connection_id
        for cid in members:
            if locked[cid].firm_group != group:
                locked[cid].firm_group = group
                changed.add(cid)
    for cid in sorted(changed):
        uow.connections.save(locked[cid])
    return sorted(changed)


def apply_new_routing(uow: UnitOfWork, connection_id: str, proposed: organisations_pb2.ConnectionRouting) -> None:
    """apply_routing for CreateConnection, whose fields sit under connection.routing."""
    try:
        apply_routing(uow, connection_id, proposed)
    except XerolinkError as err:
        err.field_violations = [FieldViolation(f"connection.{v.field}", v.description) for v in err.field_violations]
        raise
