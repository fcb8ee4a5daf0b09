"""Keep a trust journal's two matters.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

A trust journal moves money from one matter's trust to another's. With reports by matter each of
its lines carries its matter as a tracking option; without them (the default profile) Xero's
lines name no matter, and the registry held one matter a record (the header's), so reconciliation
put both lines on it, where they cancelled, and the matters' trust balances left the journal out.
`link_subject.paying_action_id` and `receiving_action_id` keep the journal's matters as posted
(0 for every other record, and for journals last posted before this revision).

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("link_subject") as batch:
        batch.add_column(sa.Column("paying_action_id", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("receiving_action_id", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("link_subject") as batch:
        batch.drop_column("receiving_action_id")
        batch.drop_column("paying_action_id")
