"""Index webhook events by object and participants' contacts by Xero contact.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Closing the events a read of one Xero object answers looked for the object's pending events
along `ix_webhook_pending (state, id)`, reading every pending event of every organisation:
processing a backlog of N events read N^2 rows. `ix_webhook_object` (tenant_id, category,
resource_id, state) finds one object's events. Finding the participant already linked to a Xero
contact searched the connection's contact links by connection alone; `ix_contact_link_contact`
(connection_id, contact_id) finds it. Index changes only: no table is copied, no row touched.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_object", "webhook_event", ["tenant_id", "category", "resource_id", "state"], unique=False
    )
    op.create_index("ix_contact_link_contact", "contact_link", ["connection_id", "contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_contact_link_contact", table_name="contact_link")
    op.drop_index("ix_webhook_object", table_name="webhook_event")
