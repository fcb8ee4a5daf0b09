"""Create the registry as main's migration runner left it at schema version 10.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

The baseline: every table, index and constraint written out, so it creates the same schema
whatever the table classes later become. A registry the old runner brought to version 10 is
stamped here instead of running it (adapters/migrations.py). Frozen: never edit it; change the
schema in a new revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_call_bucket",
        sa.Column("bucket_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket_us"),
    )
    op.create_table(
        "backfill",
        sa.Column("backfill_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("bills", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("backfill_id"),
    )
    op.create_index("ix_backfill_request", "backfill", ["connection_id", "request_id"], unique=False)

    op.create_table(
        "backfill_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backfill_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("bill_index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("posting_id", sa.String(length=40), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backfill_item_backfill_id", "backfill_item", ["backfill_id"], unique=False)

    op.create_table(
        "connection",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("xero_base_url", sa.Text(), nullable=False),
        sa.Column("xero_tenant_id", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("mapping_context", sa.LargeBinary(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("token_key_id", sa.String(length=32), nullable=False),
        sa.Column("token_box", sa.LargeBinary(), nullable=True),
        sa.Column("token_version", sa.BigInteger(), nullable=False),
        sa.Column("access_expires_us", sa.BigInteger(), nullable=False),
        sa.Column("token_update_us", sa.BigInteger(), nullable=False),
        sa.Column("refresh_holder", sa.String(length=128), nullable=False),
        sa.Column("refresh_until_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("xero_app", sa.String(length=64), nullable=False),
        sa.Column("xero_connection_id", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.Text(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id"),
    )
    op.create_index("ix_connection_xero_tenant_id", "connection", ["xero_tenant_id"], unique=False)

    op.create_table(
        "contact_link",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("contact_number", sa.String(length=64), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "participant_id"),
    )
    op.create_table(
        "correction",
        sa.Column("correction_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("intent", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("xero_status", sa.String(length=32), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("runner", sa.String(length=160), nullable=False),
        sa.Column("runner_until_us", sa.BigInteger(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("correction_id"),
        sa.UniqueConstraint("connection_id", "kind", "record_id", "generation", name="uq_correction_record"),
    )
    op.create_table(
        "correction_step",
        sa.Column("correction_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("action", sa.Integer(), nullable=False),
        sa.Column("actor", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("xero_type", sa.Integer(), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=False),
        sa.Column("parent_xero_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("correction_id", "position"),
    )
    op.create_index("ix_correction_step_order", "correction_step", ["correction_id", "position"], unique=False)

    op.create_table(
        "dependency_wait",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dependency_wait_outbox_id", "dependency_wait", ["outbox_id"], unique=False)
    op.create_index("ix_wait_record", "dependency_wait", ["connection_id", "kind", "record_id"], unique=False)

    op.create_table(
        "link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("link_group", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("xero_objects", sa.Text(), nullable=False),
        sa.Column("waiting_on", sa.Text(), nullable=False),
        sa.Column("outcome_unknown", sa.Boolean(), nullable=False),
        sa.Column("posting_id", sa.String(length=40), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connection_id", "kind", "record_id", name="uq_link_record"),
    )
    op.create_index("ix_link_list", "link", ["connection_id", "link_group", "state", "id"], unique=False)

    op.create_table(
        "link_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_link_audit_link_id", "link_audit", ["link_id"], unique=False)

    op.create_table(
        "link_dependency",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dependency_record", "link_dependency", ["connection_id", "kind", "record_id"], unique=False)
    op.create_index("ix_link_dependency_link_id", "link_dependency", ["link_id"], unique=False)

    op.create_table(
        "link_subject",
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=False),
        sa.Column("participant_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("link_id"),
    )
    op.create_index("ix_subject_action", "link_subject", ["connection_id", "action_id"], unique=False)
    op.create_index("ix_subject_participant", "link_subject", ["connection_id", "participant_id"], unique=False)

    op.create_table(
        "orphaned_xero_object",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("object_type", sa.Integer(), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=False),
        sa.Column("local_ref", sa.Text(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("orphaned_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_orphan_list", "orphaned_xero_object", ["connection_id", "id"], unique=False)
    op.create_index("ix_orphan_record", "orphaned_xero_object", ["connection_id", "kind", "record_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("posting_id", sa.String(length=40), nullable=False),
        sa.Column("operations", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("available_us", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("lease_until_us", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("trace_context", sa.String(length=128), nullable=False),
        sa.Column("alone", sa.Boolean(), nullable=False),
        sa.Column("lookup_hint", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Main's migrations 2 and 8 made these two; OutboxRow does not declare them (see
    # adapters/schema_comparison.py).
    op.create_index("ix_outbox_posting", "outbox", ["posting_id"], unique=False)
    op.create_index("ix_outbox_done", "outbox", ["state", "create_us"], unique=False)
    op.create_index("ix_outbox_claim", "outbox", ["tenant_id", "state", "available_us", "id"], unique=False)
    op.create_index("ix_outbox_link_id", "outbox", ["link_id"], unique=False)

    op.create_table(
        "posting",
        sa.Column("posting_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("posting_id"),
    )
    op.create_index("ix_posting_link_id", "posting", ["link_id"], unique=False)
    op.create_index("ix_posting_list", "posting", ["connection_id", "create_us"], unique=False)
    op.create_index("ix_posting_request", "posting", ["connection_id", "request_id"], unique=False)

    op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("applied_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "tenant_lease",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("minute_log", sa.Text(), nullable=False),
        sa.Column("day_calls", sa.Integer(), nullable=False),
        sa.Column("day_started_us", sa.BigInteger(), nullable=False),
        sa.Column("blocked_until_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    # Indexes go with their tables.
    for table in [
        "tenant_lease",
        "schema_version",
        "posting",
        "outbox",
        "orphaned_xero_object",
        "link_subject",
        "link_dependency",
        "link_audit",
        "link",
        "dependency_wait",
        "correction_step",
        "correction",
        "contact_link",
        "connection",
        "backfill_item",
        "backfill",
        "app_call_bucket",
    ]:
        op.drop_table(table)
