"""Tokens at rest (SQLite and PostgreSQL): key rotation re-seals them, and a sealed box opens only
with its key and row."""

from __future__ import annotations

import base64

import pytest
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.token_vault import Sealed, TokenKeyError, Tokens, TokenVault, new_key_entry
from xerolink_poster.service_layer.connection_lifecycle import reseal_with_active_key
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

OLD = new_key_entry("2026a")
NEW = new_key_entry("2026b")


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
