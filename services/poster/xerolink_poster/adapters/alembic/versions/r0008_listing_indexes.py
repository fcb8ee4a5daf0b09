"""Index the listings in the order they page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

ListLinks pages a connection's links in id order, but no index held them in that order: SQLite
read every link of the connection and sorted them for each page, so listing a firm's links read
them as many times as there were pages. ListDrift without a state filter did the same with the
connection's drift, and ListPostings sorted the postings of equal `create_us` by id.
`ix_link_page` (connection_id, id), `ix_drift_page` (connection_id, id) and `ix_posting_list`
with `posting_id` after `create_us` give each page in index order. Index changes only: no table
is copied, no row touched.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_link_page", "link", ["connection_id", "id"], unique=False)
    op.create_index("ix_drift_page", "drift", ["connection_id", "id"], unique=False)
    op.drop_index("ix_posting_list", table_name="posting")
    op.create_index("ix_posting_list", "posting", ["connection_id", "create_us", "posting_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_posting_list", table_name="posting")
    op.create_index("ix_posting_list", "posting", ["connection_id", "create_us"], unique=False)
    op.drop_index("ix_drift_page", table_name="drift")
    op.drop_index("ix_link_page", table_name="link")
