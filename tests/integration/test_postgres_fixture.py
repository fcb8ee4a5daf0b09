"""Each test's PostgreSQL database: a copy of the registry migrated to head, fresh and of its own;
or empty for a migration's own test."""

from __future__ import annotations

import pytest
import sqlalchemy
from xerolink_poster.adapters.migrations import head_revision

_SEEN: set[str] = set()


def _read(url: str, query: str) -> object:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(query)).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("n", [1, 2])
def test_each_test_gets_a_fresh_registry_at_the_head_revision_of_its_own(postgres_url: str, n: int) -> None:
    assert "PostgreSQL" in str(_read(postgres_url, "select version()"))
    assert _read(postgres_url, "select version_num from alembic_version") == head_revision()
    assert _read(postgres_url, "select count(*) from outbox") == 0
    assert _read(postgres_url, "select count(*) from link") == 0
    assert postgres_url not in _SEEN, "two tests were given one database"
    _SEEN.add(postgres_url)


@pytest.mark.empty_registry
def test_a_migration_s_own_test_gets_an_empty_database(postgres_url: str) -> None:
    tables = _read(postgres_url, "select count(*) from information_schema.tables where table_schema='public'")
    assert tables == 0
