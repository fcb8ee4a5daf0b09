"""Index the outbox for claims and for finding the tenants with ready work.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

`ix_outbox_claim` (tenant_id, state, available_us, id) made a claim sort every ready entry of the
tenant to take the first 50, and finding the tenants with ready work read every ready entry.
`ix_outbox_ready` (state, tenant_id, available_us, id) gives a tenant's ready entries in the order
a claim takes them, and lets the dispatcher hop from tenant to tenant. Index changes only: no
table is copied, no row touched.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_outbox_claim", table_name="outbox")
    op.create_index("ix_outbox_ready", "outbox", ["state", "tenant_id", "available_us", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_ready", table_name="outbox")
    op.create_index("ix_outbox_claim", "outbox", ["tenant_id", "state", "available_us", "id"], unique=False)
