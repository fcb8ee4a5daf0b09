"""Keep one connected connection per Xero organisation.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

One Xero organisation has one live connection (connections.require_tenant_free): a record's tag
and a participant's contact number name records of one connection, so two connections posting to
one organisation share contacts (one firm's bill on another's client) and take each other's
objects for their own after a lost answer. The check was a read: two CreateConnection (or
ConnectOrganisation) transactions that overlapped each found the other absent and both committed.
`ux_connection_connected_tenant` makes the second one fail, and its retry is then refused
TENANT_ALREADY_CONNECTED.

A registry that already holds two connected connections on one tenant keeps the oldest connected;
the others are marked needs_reconnect, saying why: their work waits, visible and not counted as
an attempt, until one of them is disconnected (DisconnectConnection) and the other connected.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_WHERE = "state = 'connected' AND xero_tenant_id != ''"


def upgrade() -> None:
    bind = op.get_bind()
    oldest_first = " ORDER BY create_us, connection_id"
    connected = bind.execute(
        sa.text("SELECT connection_id, xero_tenant_id FROM connection WHERE " + _WHERE + oldest_first)
    ).all()
    kept: dict[str, str] = {}
    for connection_id, tenant_id in connected:
        if tenant_id not in kept:
            kept[tenant_id] = connection_id
            continue
        bind.execute(
            sa.text("UPDATE connection SET state = 'needs_reconnect', last_error = :why WHERE connection_id = :id"),
            {
                "id": connection_id,
                "why": f"connection {kept[tenant_id]!r} is connected to the same Xero organisation; one organisation "
                "has one live connection: disconnect one of them (DisconnectConnection), then connect the other "
                "(ConnectOrganisation). Its work waits meanwhile",
            },
        )
    op.create_index(
        "ux_connection_connected_tenant",
        "connection",
        ["xero_tenant_id"],
        unique=True,
        sqlite_where=sa.text(_WHERE),
        postgresql_where=sa.text(_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ux_connection_connected_tenant", table_name="connection")
