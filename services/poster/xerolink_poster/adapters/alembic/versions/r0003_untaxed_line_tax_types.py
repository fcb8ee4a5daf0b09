"""Give existing connections the tax types they have always posted lines without a tax code with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Until now the mapper wrote Australian tax types into every trust line (BASEXCLUDED), trust
interest line (EXEMPTOUTPUT) and journal line without a tax code (BASEXCLUDED). They now come
from the connection's stored MappingContext, field 13 `untaxed_line_tax_types`, and the mapper
refuses a transaction that needs one the context lacks. This writes those three values into every
stored context that has no field 13, so each connection posts exactly as before; a connection to an
organisation of another country is corrected by setting its own (docs/regions.md).

The values are written out and the context is edited on the wire (a length-delimited field 13
appended), without the application's generated classes, so the revision means the same thing
forever. The upgrade touches only `connection.mapping_context`.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from google.protobuf import empty_pb2, message
from google.protobuf.unknown_fields import UnknownFieldSet

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UNTAXED_FIELD = 13
# UntaxedLineTaxTypes: 1 trust_money, 2 interest_on_trust, 3 journal_without_tax_code.
_VALUES = ((1, "BASEXCLUDED"), (2, "EXEMPTOUTPUT"), (3, "BASEXCLUDED"))


def _length_delimited(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128  # a one-byte length
    return bytes(((number << 3) | 2, len(payload))) + payload


def _untaxed() -> bytes:
    inner = b"".join(_length_delimited(number, value.encode()) for number, value in _VALUES)
    return _length_delimited(_UNTAXED_FIELD, inner)


def _needs_field(data: bytes, number: int) -> bool:
    """True when `data` is a well-formed message without field `number`. A context that does not
    parse is left as it is: the poster reports it, and adding to it would not mend it."""
    parsed = empty_pb2.Empty()  # every field of the context is unknown to it
    try:
        parsed.ParseFromString(data)
    except message.DecodeError:
        return False
    fields = UnknownFieldSet(parsed)
    return all(fields[i].field_number != number for i in range(len(fields)))


def upgrade() -> None:
    connection = op.get_bind()
    table = sa.table("connection", sa.column("connection_id", sa.String), sa.column("mapping_context", sa.LargeBinary))
    rows = connection.execute(sa.select(table.c.connection_id, table.c.mapping_context)).all()
    for connection_id, context in rows:
        data = bytes(context or b"")
        if not _needs_field(data, _UNTAXED_FIELD):
            continue
        connection.execute(
            table.update().where(table.c.connection_id == connection_id).values(mapping_context=data + _untaxed())
        )


def downgrade() -> None:
    # The field stays: a release before it ignores an unknown field, and keeps it.
    pass
