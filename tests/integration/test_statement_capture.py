"""The statement capture the registry's tests count and plan with (tests/fixtures/statements.py)
hears every engine it is given, on both registries: a test that counts what a transaction sends,
or checks the plan of everything it sent, must not pass because it heard nothing."""

from __future__ import annotations

from sqlalchemy import text
from xerolink_poster.adapters.database import Database

from tests.fixtures.statements import statements_sent


def test_the_capture_hears_the_write_and_the_read_engine_in_either_order(database: Database) -> None:
    for engines in ((database.write, database.read), (database.read, database.write)):
        with statements_sent(*engines) as sent:
            with database.write.begin() as conn:
                conn.execute(text("SELECT 1 AS written"))
            with database.read.connect() as conn:
                conn.execute(text("SELECT 2 AS read"))
        heard = [sql for sql, _ in sent if sql.startswith("SELECT")]
        assert heard == ["SELECT 1 AS written", "SELECT 2 AS read"], (engines, heard)
