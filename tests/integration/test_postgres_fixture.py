from __future__ import annotations

import sqlalchemy


def test_each_test_gets_an_empty_real_postgres_database(postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as conn:
        version = conn.execute(sqlalchemy.text("select version()")).scalar_one()
        tables = conn.execute(
            sqlalchemy.text("select count(*) from information_schema.tables where table_schema='public'")
        ).scalar_one()
    engine.dispose()
    assert "PostgreSQL" in version
    assert tables == 0
