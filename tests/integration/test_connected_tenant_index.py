"""Revision 0011: one connected connection per Xero organisation, held by the registry itself
(`ux_connection_connected_tenant`), on SQLite and PostgreSQL.

`require_tenant_free` reads the tenant's other connections; two transactions that overlap each
find the other absent. The index makes the later commit fail, and its retry is refused
TENANT_ALREADY_CONNECTED (tests/attack/test_connection_tokens_attacks.py races two
CreateConnection calls). Here: the revision's data step on a registry that already holds two
connected connections to one organisation, its downgrade, and the index itself."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from alembic import command
from google.rpc import error_details_pb2
from sqlalchemy import text
from sqlmodel import Session
from xerolink.poster.v1 import connection_pb2
from xerolink_poster.adapters.database import Database, DuplicateKey, open_database
from xerolink_poster.adapters.migrations import alembic_config, current_revision, head_revision, migrate
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain.states import ConnectionState

from tests.fixtures.poster import EmulatorFactory
from tests.integration.connection_helpers import connect_request, details_of, new_code, posters, write_apps
from tests.integration.connection_helpers import stub as lifecycle_stub
from tests.integration.test_registry_migrations import _differences

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
TENANT = "6f1e0c5a-0000-4000-8000-000000000001"


def _connection(connection_id: str, tenant_id: str, create_us: int, state: str) -> ConnectionRow:
    return ConnectionRow(
        connection_id=connection_id,
        xero_base_url="https://api.xero.com",
        xero_tenant_id=tenant_id,
        mapping_context=b"",
        create_us=create_us,
        state=state,
    )


def _add(db: Database, *rows: ConnectionRow) -> None:
    with Session(db.write) as session:
        session.add_all(rows)
        session.commit()


def _states(db: Database) -> dict[str, tuple[str, str]]:
    with db.read.connect() as conn:
        found = conn.execute(text("SELECT connection_id, state, last_error FROM connection")).all()
    return {str(c): (str(s), str(e)) for c, s, e in found}


@BOTH
def test_the_oldest_of_two_connected_connections_to_one_organisation_stays_connected(database_url: str) -> None:
    db = open_database(database_url)
    try:
        migrate(db)
        with db.write.begin() as conn:
            command.downgrade(alembic_config(conn), "0010")
        _add(
            db,
            _connection("firm-b", TENANT, 2, ConnectionState.CONNECTED),
            _connection("firm-a", TENANT, 1, ConnectionState.CONNECTED),
            _connection("firm-old", TENANT, 0, ConnectionState.DISCONNECTED),
            _connection("firm-other", "6f1e0c5a-0000-4000-8000-000000000002", 3, ConnectionState.CONNECTED),
        )

        assert migrate(db) == head_revision() and current_revision(db) == head_revision()

        states = _states(db)
        assert {c: s for c, (s, _) in states.items()} == {
            "firm-a": "connected",
            "firm-b": "needs_reconnect",
            "firm-old": "disconnected",
            "firm-other": "connected",
        }
        assert "'firm-a'" in states["firm-b"][1] and "DisconnectConnection" in states["firm-b"][1]
        assert _differences(db) == []
    finally:
        db.dispose()


@BOTH
def test_a_second_connected_connection_to_one_organisation_is_refused_by_the_registry(database_url: str) -> None:
    """Not connected (disconnected, needing a reconnect) or without a tenant, any number may
    share it: only a connected one posts."""
    db = open_database(database_url)
    try:
        migrate(db)
        _add(
            db,
            _connection("firm-a", TENANT, 1, ConnectionState.CONNECTED),
            _connection("firm-b", TENANT, 2, ConnectionState.DISCONNECTED),
            _connection("firm-c", TENANT, 3, ConnectionState.NEEDS_RECONNECT),
            _connection("fixed-1", "", 4, ConnectionState.CONNECTED),
            _connection("fixed-2", "", 5, ConnectionState.CONNECTED),
        )
        with pytest.raises(DuplicateKey):
            _add(db, _connection("firm-d", TENANT, 6, ConnectionState.CONNECTED))
        with pytest.raises(DuplicateKey), db.write.begin() as conn:
            conn.execute(text("UPDATE connection SET state = 'connected' WHERE connection_id = 'firm-c'"))
        assert _states(db)["firm-c"][0] == "needs_reconnect"
    finally:
        db.dispose()


@BOTH
def test_revision_0011_downgrades_and_upgrades_again(database_url: str) -> None:
    db = open_database(database_url)
    try:
        migrate(db)
        _add(db, _connection("firm-a", TENANT, 1, ConnectionState.CONNECTED))
        with db.write.begin() as conn:
            command.downgrade(alembic_config(conn), "0010")
        _add(db, _connection("firm-b", TENANT, 2, ConnectionState.CONNECTED))  # the index is gone

        assert migrate(db) == head_revision()
        assert {c: s for c, (s, _) in _states(db).items()} == {"firm-a": "connected", "firm-b": "needs_reconnect"}
        assert _differences(db) == []
    finally:
        db.dispose()


def test_refreshing_a_connection_marked_for_sharing_an_organisation_says_so(
    emulator_factory: EmulatorFactory, mapper_target: str, tmp_path: Path
) -> None:
    """A connection 0011 marked needs_reconnect because another connected connection holds its
    organisation: an operator's RefreshConnection exchanges its tokens, but storing them would
    connect it again beside the other. Refused TENANT_ALREADY_CONNECTED, naming the other, not an
    internal error; it stays needs_reconnect and the other stays connected."""
    emulator = emulator_factory(access_token_minutes=30.0)
    first = emulator.create_organisation("Harper Legal")
    second = emulator.create_organisation("Quinn Legal", client_id=first["client_id"])
    with posters(f"sqlite:///{tmp_path / 'registry.db'}", mapper_target) as make:
        app = make(write_apps(tmp_path / "apps.json", first, emulator))
        poster = lifecycle_stub(app)
        for cid, org in (("firm-1", first), ("firm-2", second)):
            request = connect_request(cid, new_code(emulator, first), emulator, xero_tenant_id=org["tenant_id"])
            poster.ConnectOrganisation(request)
        # As revision 0011 leaves a second connected connection to one organisation.
        with app.db.write.begin() as conn:
            demote = "UPDATE connection SET xero_tenant_id = :t, state = 'needs_reconnect' WHERE connection_id = :c"
            conn.execute(text(demote), {"t": first["tenant_id"], "c": "firm-2"})

        with pytest.raises(grpc.RpcError) as refused:
            poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-2"))

        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value.details()
        [info] = details_of(refused.value, error_details_pb2.ErrorInfo)
        assert info.reason == "TENANT_ALREADY_CONNECTED" and "firm-1" in (refused.value.details() or "")
        assert {c: s for c, (s, _) in _states(app.db).items()} == {"firm-1": "connected", "firm-2": "needs_reconnect"}
