"""Index the Xero objects each link holds, by Xero id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Finding the link that holds a Xero object (every webhook event of an object without a snapshot,
most of them made in Xero by someone else; drift checks of links made before snapshots; the
look-up after a lost answer; ListLinks by Xero id) matched the JSON text of every link of the
connection, a read that grew with the firm's links. `link_object` (connection_id, xero_id,
link_id) names each object a link holds, its id in lower case. The rows are filled here from
every link's `xero_objects`, in batches by link id; no existing row changes. From then on a
trigger on `link` writes the row whenever a link is stored or its `xero_objects` set, in the same
statement: whatever writes the column (this release, a replica of the previous one still running
during a rolling upgrade, a hand edit) keeps the index whole. Both the fill and the trigger index
an object whose `xero_id` is text of 1 to 64 characters (a Xero GUID is 36); anything else
names no object.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 2000
# Ids are lower-cased in ASCII only, as SQLite's lower() does: the length stays what was checked.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# The objects of NEW, as the fill takes them: each element of a JSON array (json_each also walks
# an object's members, whose keys are text) that is an object whose xero_id is text of 1 to 64
# characters, lower-cased in ASCII only (Xero's ids are GUIDs; SQLite's lower() does no more).
# The column is parsed once (json_each): a value that is not JSON fails the write, as on
# PostgreSQL. ON CONFLICT DO NOTHING, not INSERT OR IGNORE: SQLite runs a trigger's statements
# under the conflict policy of the statement that fired it, which would override OR IGNORE.
_SQLITE_INDEX = """
    INSERT INTO link_object (connection_id, xero_id, link_id)
    SELECT NEW.connection_id, lower(x), NEW.id
    FROM (
        SELECT json_extract(e.value, '$.xero_id') AS x FROM json_each(NEW.xero_objects) AS e
        WHERE e.type = 'object' AND typeof(e.key) = 'integer'
    )
    WHERE typeof(x) = 'text' AND length(x) BETWEEN 1 AND 64
    ON CONFLICT DO NOTHING;
"""
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER tr_link_objects_insert AFTER INSERT ON link WHEN NEW.xero_objects <> '[]' "
    f"BEGIN {_SQLITE_INDEX} END",
    f"CREATE TRIGGER tr_link_objects_update AFTER UPDATE OF xero_objects ON link WHEN NEW.xero_objects <> '[]' "
    f"BEGIN {_SQLITE_INDEX} END",
]
_POSTGRES_FUNCTION = """
CREATE FUNCTION link_objects_index() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    objects json := NEW.xero_objects::json;
BEGIN
    IF json_typeof(objects) = 'array' THEN
        INSERT INTO link_object (connection_id, xero_id, link_id)
        SELECT NEW.connection_id,
               translate(e ->> 'xero_id', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
               NEW.id
        FROM json_array_elements(objects) AS e
        WHERE json_typeof(e) = 'object' AND json_typeof(e -> 'xero_id') = 'string'
          AND length(e ->> 'xero_id') BETWEEN 1 AND 64
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""
_POSTGRES_TRIGGER = """
CREATE TRIGGER tr_link_objects AFTER INSERT OR UPDATE OF xero_objects ON link
FOR EACH ROW WHEN (NEW.xero_objects <> '[]') EXECUTE FUNCTION link_objects_index()
"""


def upgrade() -> None:
    op.create_table(
        "link_object",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "xero_id", "link_id"),
    )
    link = sa.table(
        "link", sa.column("id", sa.Integer), sa.column("connection_id", sa.String), sa.column("xero_objects", sa.Text)
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)
    after = 0
    while True:
        rows = bind.execute(
            sa.select(link.c.id, link.c.connection_id, link.c.xero_objects)
            .where(link.c.id > after, link.c.xero_objects != "[]")
            .order_by(link.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        found = {
            (connection_id, item["xero_id"].translate(_ASCII_LOWER), link_id)
            for link_id, connection_id, objects in rows
            for item in _objects(objects)
            if isinstance(item, dict) and isinstance(item.get("xero_id"), str) and 1 <= len(item["xero_id"]) <= 64
        }
        if found:
            # A row the trigger wrote meanwhile (a poster writing during the upgrade) is kept.
            bind.execute(
                sa.text(
                    "INSERT INTO link_object (connection_id, xero_id, link_id) "
                    "VALUES (:connection_id, :xero_id, :link_id) ON CONFLICT DO NOTHING"
                ),
                [{"connection_id": c, "xero_id": x, "link_id": i} for c, x, i in sorted(found)],
            )
        after = rows[-1][0]


def _objects(text: str | None) -> list[object]:
    """A link's objects as stored; a value that is not a JSON list (written by hand) names none."""
    try:
        parsed = json.loads(text or "[]")
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER tr_link_objects_update")
        op.execute("DROP TRIGGER tr_link_objects_insert")
    else:
        op.execute("DROP TRIGGER tr_link_objects ON link")
        op.execute("DROP FUNCTION link_objects_index()")
    op.drop_table("link_object")
