"""Connections: for now a registry row holding the Xero tenant, its credentials and the mapping
context (the OAuth lifecycle, encrypted tokens and chart checks come later)."""

from __future__ import annotations

import re

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import ErrorCode, FieldViolation, XerolinkError, invalid_argument, not_found

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def create_connection(
    db: Database,
    connection_id: str,
    xero_base_url: str,
    xero_tenant_id: str,
    access_token: str,
    refresh_token: str,
    context: mapper_pb2.MappingContext,
) -> ConnectionRow:
    violations = []
    if not _ID.match(connection_id):
        violations.append(
            FieldViolation("connection.connection_id", "1-64 letters, digits, '-' or '_' (e.g. 'firm-42')")
        )
    if not xero_base_url.startswith(("http://", "https://")):
        violations.append(FieldViolation("connection.xero_base_url", "an http(s) URL such as https://api.xero.com"))
    if not xero_tenant_id or len(xero_tenant_id) > 64:
        violations.append(FieldViolation("connection.xero_tenant_id", "required: the Xero tenant id (xero-tenant-id)"))
    if not access_token:
        violations.append(FieldViolation("connection.access_token", "required: a Xero access token"))
    if context.linked_division_id <= 0:
        violations.append(
            FieldViolation("connection.mapping_context.linked_division_id", "required: the linked Actionstep division")
        )
    if not context.HasField("connected_at"):
        violations.append(
            FieldViolation("connection.mapping_context.connected_at", "required: when the integration was connected")
        )
    if violations:
        raise invalid_argument(
            "INVALID_CONNECTION", "the connection cannot be created; fix the fields listed", violations
        )
    row = ConnectionRow(
        connection_id=connection_id,
        xero_base_url=xero_base_url.rstrip("/"),
        xero_tenant_id=xero_tenant_id.lower(),
        access_token=access_token,
        refresh_token=refresh_token,
        mapping_context=context.SerializeToString(),
        create_us=now_us(),
    )

    def work(uow: UnitOfWork) -> ConnectionRow:
        if uow.registry.get_connection(connection_id) is not None:
            raise XerolinkError(
                ErrorCode.ALREADY_EXISTS,
                "CONNECTION_EXISTS",
                f"connection {connection_id!r} already exists; use it, or choose another connection_id",
            )
        uow.registry.add_connection(row)
        return row

    return run_in_transaction(db, work)


def get_connection(db: Database, connection_id: str) -> ConnectionRow:
    with UnitOfWork(db, write=False) as uow:
        row = uow.registry.get_connection(connection_id)
    if row is None:
        raise not_found("CONNECTION_NOT_FOUND", f"no connection {connection_id!r}; create it with CreateConnection")
    return row
