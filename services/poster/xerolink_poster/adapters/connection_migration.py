"""Migration 6: the connection lifecycle's columns, and the plain-text tokens of older registries
sealed with the configured token key (the plain columns are emptied in the same transaction)."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, inspect, text

from xerolink_poster.adapters import token_vault

log = logging.getLogger(__name__)

# name -> column type and default, for registries created before these columns existed.
_COLUMNS = {
    "token_key_id": "VARCHAR(32) NOT NULL DEFAULT ''",
    "token_box": "{blob}",
    "token_version": "BIGINT NOT NULL DEFAULT 0",
    "access_expires_us": "BIGINT NOT NULL DEFAULT 0",
    "token_update_us": "BIGINT NOT NULL DEFAULT 0",
    "refresh_holder": "VARCHAR(128) NOT NULL DEFAULT ''",
    "refresh_until_us": "BIGINT NOT NULL DEFAULT 0",
    "state": "VARCHAR(16) NOT NULL DEFAULT 'connected'",
    "xero_app": "VARCHAR(64) NOT NULL DEFAULT ''",
    "xero_connection_id": "VARCHAR(64) NOT NULL DEFAULT ''",
    "organisation": "TEXT NOT NULL DEFAULT '{}'",
    "last_error": "TEXT NOT NULL DEFAULT ''",
}


def connection_lifecycle(conn: Connection) -> None:
    # A registry created by this version's step 1 already has the columns (create_all uses the
    # current table definitions); one created by an older version gets them here.
    present = {c["name"] for c in inspect(conn).get_columns("connection")}
    blob = "BLOB" if conn.dialect.name == "sqlite" else "BYTEA"
    for name, ddl in _COLUMNS.items():
        if name not in present:
            conn.execute(text(f"ALTER TABLE connection ADD COLUMN {name} {ddl.replace('{blob}', blob)}"))
    seal_plain_tokens(conn)


def seal_plain_tokens(conn: Connection) -> int:
    """Encrypts every row still holding plain-text tokens; returns how many."""
    rows = conn.execute(
        text("SELECT connection_id, access_token, refresh_token FROM connection WHERE access_token <> ''")
    ).all()
    if not rows:
        return 0
    vault = token_vault.installed()
    for connection_id, access, refresh in rows:
        sealed = vault.seal(token_vault.Tokens(access, refresh or ""), connection_id)
        conn.execute(
            text(
                "UPDATE connection SET token_key_id = :k, token_box = :b, access_token = '', refresh_token = '', "
                "token_version = token_version + 1 WHERE connection_id = :c"
            ),
            {"k": sealed.key_id, "b": sealed.box, "c": connection_id},
        )
    log.info("sealed the plain-text tokens of %d connections with key %s", len(rows), vault.active)
    return len(rows)
