"""Brings the registry's schema to the newest Alembic revision at start-up (adapters/alembic/).

Everything runs in one transaction that holds the migration lock: on PostgreSQL a
transaction-level advisory lock serialises posters starting together, on SQLite BEGIN IMMEDIATE
does, and both roll DDL back with the transaction, so a failed upgrade leaves the old schema.

A registry made before Alembic has a schema_version table with one row per step of the old
runner and no alembic_version table. One at the old runner's last step (10) holds exactly the
baseline revision's schema, so it is stamped there and upgraded like any other."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from xerolink_poster.adapters.database import Database

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x5845524F  # any constant shared by every poster
SCRIPT_LOCATION = Path(__file__).with_name("alembic")
# The revision that holds the schema the old runner's last step left.
BASELINE_REVISION = "0001"
LAST_LEGACY_VERSION = 10


class LegacyRegistryError(RuntimeError):
    """A registry from before Alembic that the old runner had not finished upgrading."""


def alembic_config(connection: Connection) -> Config:
    """Configuration for Alembic's commands, run on `connection` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    assert head is not None, "adapters/alembic/versions holds no revision"
    return head


def current_revision(db: Database) -> str | None:
    with db.read.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _legacy_version(conn: Connection) -> int | None:
    """The old runner's last applied step, or None when it never ran here."""
    dialect = conn.dialect
    if dialect.has_table(conn, "alembic_version") or not dialect.has_table(conn, "schema_version"):
        return None
    # The baseline revision creates schema_version too (tables.py still declares it), but empty.
    version: int | None = conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
    return version


def _adopt_legacy_registry(conn: Connection, config: Config) -> None:
    version = _legacy_version(conn)
    if version is None:
        return
    if version != LAST_LEGACY_VERSION:
        raise LegacyRegistryError(
            f"the registry is at schema version {version} of the migration runner before Alembic; start a "
            f"poster release from before the move to Alembic once, to bring it to version {LAST_LEGACY_VERSION}"
        )
    log.info("registry at legacy schema version %d: stamping revision %s", version, BASELINE_REVISION)
    command.stamp(config, BASELINE_REVISION)


def migrate(db: Database, target: str = "head") -> str:
    """Upgrades the registry to the head revision (or `target`, for tests of one revision);
    returns it. Running it again changes nothing."""
    with db.write.begin() as conn:
        if not db.is_sqlite:
            # Whatever lock time the URL or the role sets: another poster's migration, or a DDL
            # lock behind running transactions, may take longer, and the start waits for it. Nor
            # the session's idle timeout (PostgresTimeouts): Alembic's Python between statements
            # is idle time to PostgreSQL, and a slow start must not end its own migration.
            conn.execute(text("SET LOCAL lock_timeout = 0"))
            conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        config = alembic_config(conn)
        _adopt_legacy_registry(conn, config)
        command.upgrade(config, target)
    return head_revision() if target == "head" else target
