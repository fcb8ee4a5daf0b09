"""Store what xerolink posted to Xero, the drift found since, webhook events and poll cursors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

`xero_snapshot` holds each linked Xero object as Xero answered when it was posted: what drift
detection compares Xero's current state with and what reconciliation counts as posted. Objects
linked before this revision have none; drift detection reads them from Xero once and records that
state as posted (docs/drift.md). `drift` holds the differences found, `webhook_event` Xero's
webhook events as received (one row per event, however often Xero delivers it), `poll_cursor` the
poller's If-Modified-Since per connection and resource.
New tables only: no row of an existing table changes.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xero_snapshot",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("object_type", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("doc_date", sa.String(length=10), nullable=False),
        sa.Column("xero_updated", sa.String(length=40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "xero_id"),
    )
    op.create_index("ix_snapshot_link", "xero_snapshot", ["link_id"])
    op.create_index("ix_snapshot_date", "xero_snapshot", ["connection_id", "doc_date"])
    op.create_table(
        "drift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("differences", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("detected_us", sa.BigInteger(), nullable=False),
        sa.Column("xero_updated", sa.String(length=40), nullable=False),
        sa.Column("resolved_us", sa.BigInteger(), nullable=False),
        sa.Column("resolution", sa.String(length=32), nullable=False),
        sa.Column("resolved_by", sa.String(length=128), nullable=False),
        sa.Column("resolve_note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_list", "drift", ["connection_id", "state", "id"])
    op.create_index("ix_drift_link", "drift", ["link_id", "state"])
    op.create_index("ix_drift_object", "drift", ["connection_id", "xero_id", "kind", "state"])
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("event_date", sa.String(length=40), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("done_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key", name="uq_webhook_event"),
    )
    op.create_index("ix_webhook_pending", "webhook_event", ["state", "id"])
    op.create_table(
        "poll_cursor",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=32), nullable=False),
        sa.Column("modified_since", sa.String(length=40), nullable=False),
        sa.Column("last_poll_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "resource"),
    )


def downgrade() -> None:
    op.drop_table("poll_cursor")
    op.drop_index("ix_webhook_pending", table_name="webhook_event")
    op.drop_table("webhook_event")
    op.drop_index("ix_drift_object", table_name="drift")
    op.drop_index("ix_drift_link", table_name="drift")
    op.drop_index("ix_drift_list", table_name="drift")
    op.drop_table("drift")
    op.drop_index("ix_snapshot_date", table_name="xero_snapshot")
    op.drop_index("ix_snapshot_link", table_name="xero_snapshot")
    op.drop_table("xero_snapshot")
