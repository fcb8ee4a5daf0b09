"""The connection lifecycle through a real poster on loopback and the emulator over real HTTP, on
SQLite and PostgreSQL: OAuth2 connect, organisation facts, tokens sealed at rest, refresh by
exactly one worker (with a lost answer recovered), disconnect, and the account allocation kept
across a replacement organisation with its discrepancies reported, re-mapped and enforced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlmodel import Session, select
from xero_emulator import EmulatorServer
from xero_emulator.domain.chart import SeedAccount, account_object
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.entrypoints import bootstrap

from tests.fixtures.poster import EmulatorFactory, wait_for, wait_settled, xero_objects
from tests.integration.connection_helpers import (
    PosterMaker,
    TokenCalls,
    connect_request,
    details_of,
    new_code,
    posters,
    refresh_all,
    status_of,
    stub,
    write_apps,
)


@pytest.fixture
def lifecycle_poster(database_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    """Posters on the SQLite file and, in a second run, on the real PostgreSQL server."""
    with posters(database_url, mapper_target) as make:
        yield make


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> EmulatorServer:
    """Xero's own token lifetimes: 30-minute access tokens (expires_in 1800)."""
    return emulator_factory(access_token_minutes=30.0)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'registry.db'}"


@pytest.fixture
def sqlite_poster(sqlite_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    Path(sqlite_url.removeprefix("sqlite:///")).parent.mkdir()
    with posters(sqlite_url, mapper_target) as make:
        yield make


def _setup(
    emulator: EmulatorServer, make: PosterMaker, tmp_path: Path, **org_options: Any
) -> tuple[bootstrap.PosterApp, Any, dict[str, Any]]:
    org = emulator.create_organisation("Harper Legal", **org_options)
    app = make(write_apps(tmp_path / "xero-apps.json", org, emulator))
    return app, stub(app), org


def _post_bill(poster: Any, connection_id: str, record_id: int) -> poster_pb2.Posting:
    posting = poster.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=samples.client_bill(record_id))
    ).posting
    return wait_settled(poster, posting.name)


def test_connect_exchanges_the_code_reads_the_organisation_and_posts(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    started = time.time()
    answer = poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))

    status = answer.status
    assert status.state == connection_pb2.CONNECTION_STATE_CONNECTED
    assert not answer.replaced_organisation
    assert (status.organisation.name, status.organisation.base_currency_code) == ("Harper Legal", "AUD")
    assert not status.organisation.demo_company and list(status.warnings) == []
    assert status.organisation.chart_account_count == len(emulator.state.organisation(org["tenant_id"]).accounts)
    # Xero's access tokens last 30 minutes.
    assert abs(status.access_token_expire_time.ToSeconds() - (started + 1800)) < 60
    assert list(status.allocation_discrepancies) == []
    assert status.xero_app == "default"

    connection = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert connection.xero_tenant_id == org["tenant_id"]
    assert connection.access_token == "" and connection.refresh_token == ""
    # The allocation is the one the first connection brought; the chart is Xero's.
    assert dict(connection.mapping_context.account_allocation) == samples.DEMO_ALLOCATION
    assert {a.code for a in connection.mapping_context.chart} >= set(samples.DEMO_ALLOCATION.values())

    settled = _post_bill(poster, "firm-1", 9001)
    assert settled.state == poster_pb2.LINK_STATE_LINKED
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1


@pytest.mark.parametrize(
    ("options", "warning"),
    [({"is_demo": True}, "DEMO_COMPANY"), ({"org_class": "TRIAL"}, "TRIAL_ORGANISATION")],
)
def test_a_demo_or_trial_organisation_connects_with_a_warning(
    emulator: EmulatorServer,
    lifecycle_poster: PosterMaker,
    tmp_path: Path,
    options: dict[str, Any],
    warning: str,
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path, **options)
    status = poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator)).status
    assert status.state == connection_pb2.CONNECTION_STATE_CONNECTED
    assert [w.code for w in status.warnings] == [warning]
    assert status.organisation.organisation_class == emulator.state.organisation(org["tenant_id"]).org_class
    again = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection.status
    assert [w.code for w in again.warnings] == [warning]


def test_the_registry_file_holds_no_token_bytes(
    emulator: EmulatorServer, sqlite_poster: PosterMaker, tmp_path: Path, sqlite_url: str
) -> None:
    calls = TokenCalls(emulator)
    app, poster, org = _setup(emulator, sqlite_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-1"))
    assert _post_bill(poster, "firm-1", 9002).state == poster_pb2.LINK_STATE_LINKED
    app.stop(0)
    files = list(Path(sqlite_url.removeprefix("sqlite:///")).parent.iterdir())
    stored = b"".join(p.read_bytes() for p in files)
    assert len(calls.tokens) == 4 and stored
    for token in calls.tokens:
        assert token.encode() not in stored
    assert b"Harper Legal" in stored  # the file is readable: the facts are there, the tokens are not


def test_concurrent_refreshes_exchange_the_token_once_and_the_connection_survives(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    calls = TokenCalls(emulator)
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    before = poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator)).status
    # A slow token endpoint keeps every request inside the first one's exchange.
    emulator.faults.add(FaultRule("latency", seconds=0.4, path_contains="/connect/token"))

    answers = refresh_all([poster] * 8, "firm-1")

    assert all(isinstance(a, connection_pb2.RefreshConnectionResponse) for a in answers), answers
    assert calls.refreshes == 1
    assert sorted(a.exchanged for a in answers) == [False] * 7 + [True]
    assert len({a.status.access_token_expire_time.seconds for a in answers}) == 1
    assert answers[0].status.token_update_time.ToMicroseconds() > before.token_update_time.ToMicroseconds()
    emulator.faults.clear()
    # The rotated chain is alive: another refresh works, and posting goes on with the new token.
    poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-1"))
    assert calls.refreshes == 2
    assert _post_bill(poster, "firm-1", 9101).state == poster_pb2.LINK_STATE_LINKED


def test_two_posters_on_one_database_refresh_once(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    calls = TokenCalls(emulator)
    org = emulator.create_organisation("Harper Legal")
    # Xero's own timeouts: the token endpoint is slowed on a loaded machine, and a CI run timed one
    # refresh out at the tests' usual 3 s (UNAVAILABLE, XERO_TOKEN_NO_ANSWER), not what this tests.
    patient = {"http_timeout": 10.0, "lease_ttl": 30.0}
    first = lifecycle_poster(write_apps(tmp_path / "xero-apps.json", org, emulator), **patient)
    poster = stub(first)
    second = stub(lifecycle_poster(tmp_path / "xero-apps.json", name="second", **patient))
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    emulator.faults.add(FaultRule("latency", seconds=0.4, path_contains="/connect/token"))

    answers = refresh_all([poster, second] * 3, "firm-1")

    errors = [f"{a.code()}: {a.details()}" for a in answers if isinstance(a, grpc.RpcError)]
    assert not errors, errors
    assert all(isinstance(a, connection_pb2.RefreshConnectionResponse) for a in answers), answers
    assert calls.refreshes == 1
    emulator.faults.clear()
    assert _post_bill(second, "firm-1", 9102).state == poster_pb2.LINK_STATE_LINKED
    assert first.keeper is not None


def test_a_lost_refresh_answer_is_recovered_with_the_previous_refresh_token(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    calls = TokenCalls(emulator)
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    # Xero rotates the refresh token but the answer never arrives.
    emulator.faults.add(FaultRule("drop_after_commit", count=1, path_contains="/connect/token"))

    with pytest.raises(grpc.RpcError) as lost:
        poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-1"))
    assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "XERO_TOKEN_NO_ANSWER" in str(status_of(lost.value))

    recovered = poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-1"))
    assert recovered.exchanged and recovered.status.state == connection_pb2.CONNECTION_STATE_CONNECTED
    assert calls.refreshes == 2
    # The recovered refresh token is the head of the chain: it refreshes again after the grace.
    poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-1"))
    assert _post_bill(poster, "firm-1", 9103).state == poster_pb2.LINK_STATE_LINKED


def test_the_dispatcher_refreshes_an_expiring_access_token_before_calling(
    emulator_factory: EmulatorFactory, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    # A minute of 0.1 s: access tokens live 3 s, so the second bill needs a refreshed token.
    emulator = emulator_factory(access_token_minutes=30.0, minute_seconds=0.1)
    calls = TokenCalls(emulator)
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    # Codes live 10 emulated minutes (1 s here): take one just before connecting.
    poster.ConnectOrganisation(connect_request("firm-1", new_code(emulator, org), emulator))
    assert _post_bill(poster, "firm-1", 9201).state == poster_pb2.LINK_STATE_LINKED
    time.sleep(3.2)
    assert _post_bill(poster, "firm-1", 9202).state == poster_pb2.LINK_STATE_LINKED
    assert calls.refreshes >= 1
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 2


def test_a_revoked_access_token_is_refreshed_once_on_the_401_and_the_call_repeated(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    calls = TokenCalls(emulator)
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    assert _post_bill(poster, "firm-1", 9211).state == poster_pb2.LINK_STATE_LINKED
    assert calls.refreshes == 0  # a 30-minute token needs no refresh yet
    emulator.state.identity._access.clear()  # Xero stops accepting it early

    assert _post_bill(poster, "firm-1", 9212).state == poster_pb2.LINK_STATE_LINKED
    assert calls.refreshes == 1
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 2


def test_a_dead_refresh_token_asks_for_a_reconnect_and_a_new_consent_restores_the_connection(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    emulator.state.identity._refresh.clear()  # 60 days unused, or revoked

    with pytest.raises(grpc.RpcError) as dead:
        poster.RefreshConnection(connection_pb2.RefreshConnectionRequest(connection_id="firm-1"))
    assert dead.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection.status
    assert status.state == connection_pb2.CONNECTION_STATE_NEEDS_RECONNECT
    assert "connect the organisation again" in status.last_error

    again = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(connection_id="firm-1", authorization_code=new_code(emulator, org))
    )
    assert again.status.state == connection_pb2.CONNECTION_STATE_CONNECTED and not again.replaced_organisation
    assert _post_bill(poster, "firm-1", 9301).state == poster_pb2.LINK_STATE_LINKED


def test_disconnect_removes_the_tenant_at_xero_and_refuses_posting_until_reconnected(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    app = emulator.state.identity.apps[org["client_id"]]

    status = poster.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1")).status
    assert status.state == connection_pb2.CONNECTION_STATE_DISCONNECTED
    assert not app.connected(org["tenant_id"])
    assert not status.HasField("access_token_expire_time")
    with pytest.raises(grpc.RpcError) as refused:
        _post_bill(poster, "firm-1", 9401)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [v.type for v in details_of(refused.value, error_details_pb2.PreconditionFailure)[0].violations] == [
        "CONNECTION_STATE"
    ]
    assert list(poster.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings) == []

    emulator.state.identity.connect(app, org["tenant_id"], "Harper Legal")  # the administrator consents again
    again = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(connection_id="firm-1", authorization_code=new_code(emulator, org))
    )
    assert again.status.state == connection_pb2.CONNECTION_STATE_CONNECTED
    assert _post_bill(poster, "firm-1", 9402).state == poster_pb2.LINK_STATE_LINKED


def test_a_replacement_organisation_keeps_the_allocation_reports_missing_codes_and_can_be_remapped(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    assert _post_bill(poster, "firm-1", 9501).state == poster_pb2.LINK_STATE_LINKED
    # The firm moves to another Xero organisation whose chart lacks the trust bank and liability.
    replacement = emulator.create_organisation(
        "Harper Legal (new file)", client_id=org["client_id"], without_accounts=("091", "850")
    )

    answer = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )

    assert answer.replaced_organisation and answer.previous_tenant_id == org["tenant_id"]
    found = {(d.function, d.account_code, d.problem) for d in answer.status.allocation_discrepancies}
    assert found == {("trust_bank", "091", "ACCOUNT_NOT_IN_CHART"), ("trust_liability", "850", "ACCOUNT_NOT_IN_CHART")}
    connection = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert connection.xero_tenant_id == replacement["tenant_id"]
    assert dict(connection.mapping_context.account_allocation) == samples.DEMO_ALLOCATION  # kept, not overwritten
    listed = poster.GetAllocationDiscrepancies(connection_pb2.GetAllocationDiscrepanciesRequest(connection_id="firm-1"))
    assert {(d.function, d.account_code) for d in listed.discrepancies} == {
        ("trust_bank", "091"),
        ("trust_liability", "850"),
    }

    # Posting fails early, naming the codes, and queues nothing.
    before = len(poster.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings)
    with pytest.raises(grpc.RpcError) as broken:
        _post_bill(poster, "firm-1", 9502)
    assert broken.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    violations = details_of(broken.value, error_details_pb2.PreconditionFailure)[0].violations
    assert sorted((v.type, v.subject) for v in violations) == [
        ("ACCOUNT_NOT_IN_CHART", "091"),
        ("ACCOUNT_NOT_IN_CHART", "850"),
    ]
    assert len(poster.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings) == before

    # A re-map must name accounts of the new chart.
    with pytest.raises(grpc.RpcError) as invalid:
        poster.RemapAccounts(
            connection_pb2.RemapAccountsRequest(
                connection_id="firm-1", account_allocation={"trust_bank": "091", "trust_liability": "499"}
            )
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in details_of(invalid.value, error_details_pb2.BadRequest)[0].field_violations}
    assert fields == {"account_allocation[trust_bank]", "account_allocation[trust_liability]"}  # missing; archived

    preview = poster.RemapAccounts(
        connection_pb2.RemapAccountsRequest(
            connection_id="firm-1", account_allocation={"trust_bank": "094"}, validate_only=True
        )
    )
    assert [d.account_code for d in preview.discrepancies] == ["850"]
    still = poster.GetAllocationDiscrepancies(connection_pb2.GetAllocationDiscrepanciesRequest(connection_id="firm-1"))
    assert len(still.discrepancies) == 2  # a preview changes nothing

    # The missing liability account is created in Xero; re-reading the chart and re-mapping the bank fixes all.
    created = account_object(SeedAccount("850", "Trust Liability", "CURRLIAB"))
    emulator.state.organisation(replacement["tenant_id"]).accounts[created["AccountID"]] = created
    reread = poster.GetAllocationDiscrepancies(
        connection_pb2.GetAllocationDiscrepanciesRequest(connection_id="firm-1", refresh_chart=True)
    )
    assert [d.account_code for d in reread.discrepancies] == ["091"]
    fixed = poster.RemapAccounts(
        connection_pb2.RemapAccountsRequest(connection_id="firm-1", account_allocation={"trust_bank": "094"})
    )
    assert list(fixed.discrepancies) == [] and fixed.account_allocation["trust_bank"] == "094"
    settled = _post_bill(poster, "firm-1", 9502)
    assert settled.state == poster_pb2.LINK_STATE_LINKED, settled.link.last_error
    assert len(xero_objects(emulator, replacement["tenant_id"], "Invoices")) == 1


def test_bad_connection_input_is_refused_with_field_violations(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    context = samples.demo_context()
    context.profile = 7  # type: ignore[assignment]
    context.accounting_method = 9  # type: ignore[assignment]
    with pytest.raises(grpc.RpcError) as created:
        poster.CreateConnection(
            poster_pb2.CreateConnectionRequest(
                connection=poster_pb2.Connection(
                    connection_id="firm-1",
                    xero_base_url="https://" + "x" * 3000,
                    xero_tenant_id=org["tenant_id"],
                    access_token="token",
                    mapping_context=context,
                )
            )
        )
    assert created.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in details_of(created.value, error_details_pb2.BadRequest)[0].field_violations}
    assert fields == {
        "connection.xero_base_url",
        "connection.mapping_context.profile",
        "connection.mapping_context.accounting_method",
    }

    with pytest.raises(grpc.RpcError) as malformed:
        poster.ConnectOrganisation(
            connection_pb2.ConnectOrganisationRequest(
                connection_id="firm 1", redirect_uri="ftp://x", xero_base_url="https://" + "x" * 3000
            )
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in details_of(malformed.value, error_details_pb2.BadRequest)[0].field_violations}
    assert fields == {
        "connection_id",
        "authorization_code",
        "redirect_uri",
        "xero_base_url",
        "mapping_context.linked_division_id",
    }

    with pytest.raises(grpc.RpcError) as refused:
        poster.ConnectOrganisation(connect_request("firm-1", "not-a-code", emulator))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details_of(refused.value, error_details_pb2.BadRequest)[0].field_violations] == [
        "authorization_code"
    ]
    with pytest.raises(grpc.RpcError) as missing:
        poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND  # nothing was stored


def test_connect_without_a_configured_app_is_a_precondition_naming_the_setting(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    org = emulator.create_organisation("Harper Legal")
    poster = stub(lifecycle_poster(tmp_path / "missing-apps.json"))
    with pytest.raises(grpc.RpcError) as missing:
        poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    assert missing.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "XEROLINK_XERO_APPS_FILE" in (missing.value.details() or "")


def test_the_tenant_must_be_named_when_the_consent_connected_several(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    other = emulator.create_organisation("Harper Legal (second)", client_id=org["client_id"])
    with pytest.raises(grpc.RpcError) as ambiguous:
        poster.ConnectOrganisation(connect_request("firm-1", new_code(emulator, org), emulator))
    assert ambiguous.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert org["tenant_id"] in (ambiguous.value.details() or "") and other["tenant_id"] in (
        ambiguous.value.details() or ""
    )
    with pytest.raises(grpc.RpcError) as unknown:
        poster.ConnectOrganisation(
            connect_request("firm-1", new_code(emulator, org), emulator, xero_tenant_id="not-connected")
        )
    assert unknown.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    chosen = poster.ConnectOrganisation(
        connect_request("firm-1", new_code(emulator, org), emulator, xero_tenant_id=other["tenant_id"].upper())
    )
    assert chosen.status.organisation.name == "Harper Legal (second)"


def test_work_queued_for_the_previous_organisation_follows_the_connection_to_the_new_one(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    app, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    sample = samples.sample_transactions(9700)
    payment, bill = sample["client_bill_payment"], sample["client_bill"]
    waiting = poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=payment))
    assert waiting.posting.state == poster_pb2.LINK_STATE_WAITING  # its bill is not linked yet
    replacement = emulator.create_organisation("Harper Legal (new file)", client_id=org["client_id"])

    poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )

    with Session(app.db.read) as session:
        queued = session.exec(select(OutboxRow).where(OutboxRow.connection_id == "firm-1")).all()
    assert [row.tenant_id for row in queued] == [replacement["tenant_id"]]
    assert _post_bill(poster, "firm-1", bill.header.id).state == poster_pb2.LINK_STATE_LINKED
    wait_for(lambda: len(xero_objects(emulator, replacement["tenant_id"], "Payments")) == 1)
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


def test_reconnecting_names_the_fields_an_existing_connection_ignores(
    emulator: EmulatorServer, lifecycle_poster: PosterMaker, tmp_path: Path
) -> None:
    _, poster, org = _setup(emulator, lifecycle_poster, tmp_path)
    first = poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    assert list(first.warnings) == []
    replacement = emulator.create_organisation("Harper Legal (new file)", client_id=org["client_id"])
    other = samples.demo_context(with_chart=False)
    other.account_allocation["trust_bank"] = "999"

    answer = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
            mapping_context=other,
        )
    )

    assert [(w.code, w.field) for w in answer.warnings] == [("FIELD_IGNORED", "mapping_context")]
    assert "RemapAccounts" in answer.warnings[0].message
    connection = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert connection.mapping_context.account_allocation["trust_bank"] == samples.DEMO_ALLOCATION["trust_bank"]
