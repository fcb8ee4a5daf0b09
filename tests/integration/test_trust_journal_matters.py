"""Revision 0012: a trust journal's paying and receiving matters kept in `link_subject`, on SQLite
and PostgreSQL. Reconciliation gives each of the journal's lines on the trust liability its matter
from them when Xero's lines carry none (tests/attack/test_ledgers_and_reads_second_attacks.py posts
and reconciles one); here, the revision on a registry holding subjects already, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import text
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.migrations import alembic_config, head_revision, migrate
from xerolink_poster.domain import reconciliation as dom

from tests.integration.test_registry_migrations import _differences

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@BOTH
def test_revision_0012_keeps_the_subjects_and_gives_them_no_journal_matters(database_url: str) -> None:
    db = open_database(database_url)
    try:
        migrate(db)
        with db.write.begin() as conn:
            command.downgrade(alembic_config(conn), "0011")
            conn.execute(
                text(
                    "INSERT INTO link_subject (link_id, connection_id, action_id, participant_id) "
                    "VALUES (1, 'firm-1', 7001, 42)"
                )
            )

        assert migrate(db) == head_revision()
        with db.read.connect() as conn:
            rows = conn.execute(
                text("SELECT link_id, action_id, paying_action_id, receiving_action_id FROM link_subject")
            ).all()
        assert [tuple(r) for r in rows] == [(1, 7001, 0, 0)]
        assert _differences(db) == []

        with db.write.begin() as conn:
            command.downgrade(alembic_config(conn), "0011")
        with db.read.connect() as conn:
            columns = {c["name"] for c in db.read.dialect.get_columns(conn, "link_subject")}
        assert "receiving_action_id" not in columns and "action_id" in columns
    finally:
        db.dispose()


def test_a_journal_line_without_an_option_is_its_paying_or_receiving_matters() -> None:
    """A debit on the trust liability (the liability falls) is the paying matter's, a credit the
    receiving matter's; a line of no journal, or of one posted before 0012, has none here."""
    assert dom.line_matter((7001, 7002), Decimal("300.00")) == 7001
    assert dom.line_matter((7001, 7002), Decimal("-300.00")) == 7002
    assert dom.line_matter(None, Decimal("300.00")) == 0
    assert dom.line_matter((7001, 7002), Decimal("0")) == 0
