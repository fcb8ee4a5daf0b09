"""Tokens at rest: migration 6 seals the plain-text tokens of an older registry (SQLite and
PostgreSQL), key rotation re-seals them, and a sealed box opens only with its key and row."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text
from xerolink_mapper import samples
from xerolink_poster.adapters import token_vault
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.migrations import current_version, migrate
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.token_vault import Sealed, TokenKeyError, Tokens, TokenVault, new_key_entry
from xerolink_poster.service_layer.connection_lifecycle import reseal_with_active_key
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

OLD = new_key_entry("2026a")
NEW = new_key_entry("2026b")


def test_migration_6_seals_plain_text_tokens_of_an_older_registry(database_url: str) -> None:
    db = open_database(database_url)
    try:
        migrate(db, target=3)
        with db.write.begin() as conn:
            # A registry of the version before: the connection table as step 1 created it then.
            conn.execute(text("DROP TABLE connection"))
            conn.execute(
                text(
                    "CREATE TABLE connection (connection_id VARCHAR(64) PRIMARY KEY, xero_base_url TEXT NOT NULL, "
                    "xero_tenant_id VARCHAR(64) NOT NULL, access_token TEXT NOT NULL, refresh_token TEXT NOT NULL, "
                    f"mapping_context {'BLOB' if db.is_sqlite else 'BYTEA'} NOT NULL, create_us BIGINT NOT NULL)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO connection VALUES ('firm-1', 'https://api.xero.com', 'tenant-1', 'plain-access', "
                    "'plain-refresh', :ctx, 1)"
                ),
                {"ctx": samples.demo_context().SerializeToString()},
            )
        vault = TokenVault.parse(OLD, "test")
        token_vault.install(vault)

        assert migrate(db) >= 6 and current_version(db) >= 6

        with db.read.connect() as conn:
            stored = conn.execute(text("SELECT * FROM connection")).mappings().one()
        assert (stored["access_token"], stored["refresh_token"]) == ("", "")
        assert b"plain-access" not in bytes(stored["token_box"])
        assert stored["state"] == "connected"
        opened = vault.open(Sealed(stored["token_key_id"], bytes(stored["token_box"])), "firm-1")
        assert opened == Tokens("plain-access", "plain-refresh")
    finally:
        token_vault.install(TokenVault.from_environment())
        db.dispose()


def test_key_rotation_reseals_tokens_with_the_new_key(database_url: str) -> None:
    db = open_database(database_url)
    try:
        migrate(db)
        old = TokenVault.parse(OLD, "test")
        sealed = old.seal(Tokens("access", "refresh"), "firm-1")
        with UnitOfWork(db) as uow:
            uow.connections.add_connection(
                ConnectionRow(
                    connection_id="firm-1",
                    xero_base_url="https://api.xero.com",
                    xero_tenant_id="tenant-1",
                    mapping_context=b"",
                    create_us=1,
                    token_key_id=sealed.key_id,
                    token_box=sealed.box,
                )
            )
            uow.commit()
        rotated = TokenVault.parse(f"{NEW}\n{OLD}", "test")  # the new key seals; the old one still opens

        assert reseal_with_active_key(db, rotated) == 1
        assert reseal_with_active_key(db, rotated) == 0

        with UnitOfWork(db, write=False) as uow:
            row = uow.connections.get_connection("firm-1")
        assert row is not None and row.token_key_id == "2026b" and row.token_box is not None
        only_new = TokenVault.parse(NEW, "test")  # the old key can now be retired
        assert only_new.open(Sealed(row.token_key_id, row.token_box), "firm-1") == Tokens("access", "refresh")
    finally:
        db.dispose()


def test_a_sealed_box_opens_only_with_its_key_and_for_its_connection() -> None:
    vault = TokenVault.parse(OLD, "test")
    sealed = vault.seal(Tokens("access", "refresh"), "firm-1")
    assert b"access" not in sealed.box
    with pytest.raises(TokenKeyError, match="do not open"):
        vault.open(sealed, "firm-2")  # copied onto another connection's row
    with pytest.raises(TokenKeyError, match="not configured"):
        TokenVault.parse(NEW, "test").open(sealed, "firm-1")
    tampered = Sealed(sealed.key_id, sealed.box[:-1] + bytes([sealed.box[-1] ^ 1]))
    with pytest.raises(TokenKeyError):
        vault.open(tampered, "firm-1")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("k1:c2hvcnQ=", "AES-256 needs 32"),
        ("k1:c2hvcnQ=,k1:c2hvcnQ=", "AES-256 needs 32"),
        ("k1:***", "not base64"),
        ("", "no key"),
    ],
)
def test_unusable_key_configuration_is_refused_with_the_reason(config: str, problem: str) -> None:
    with pytest.raises(TokenKeyError, match=problem):
        TokenVault.parse(config, "XEROLINK_TOKEN_ENCRYPTION_KEY")


def test_a_bare_url_safe_key_like_the_kubernetes_secret_holds_gets_a_stable_id() -> None:
    bare = base64.urlsafe_b64encode(bytes(range(32))).decode()
    first, second = TokenVault.parse(bare, "env"), TokenVault.parse(bare, "env")
    assert first.active == second.active and first.active.startswith("k")
    assert second.open(first.seal(Tokens("a", "r"), "firm-1"), "firm-1") == Tokens("a", "r")
