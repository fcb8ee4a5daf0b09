"""TLS, mutual TLS and caller authentication in front of a real service (the mapper), and the
poster as the mapper's client: its token or client certificate gets it in, and a refusal reaches
the poster's caller as what it is."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from xero_emulator import EmulatorServer
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.grpc_server import RunningServer, create_server
from xerolink_common.security import AuthInterceptor, CallerRegistry, server_security_from_env
from xerolink_mapper import samples
from xerolink_mapper.adapters.grpc_servicer import SERVICE_NAME, register

from tests.fixtures.poster import connect, wait_settled
from tests.fixtures.processes import child_env, console_script, free_port, running
from tests.fixtures.services import mapper_process, poster_process
from tests.fixtures.tls import TestAuthority

POSTER_TOKEN = "poster-token-0123456789"
BILLING_TOKEN = "billing-token-9876543210"


@pytest.fixture
def authority(tmp_path: Path) -> TestAuthority:
    return TestAuthority(tmp_path)


@pytest.fixture
def callers_file(tmp_path: Path) -> Path:
    path = tmp_path / "callers.json"
    path.write_text(
        json.dumps(
            {
                "callers": [
                    {"name": "poster", "token_sha256": hashlib.sha256(POSTER_TOKEN.encode()).hexdigest()},
                    {"name": "poster", "mtls_subject": "poster.xerolink"},
                    {"name": "billing", "token_sha256": hashlib.sha256(BILLING_TOKEN.encode()).hexdigest()},
                ]
            }
        )
    )
    return path


def start_mapper(
    credentials: grpc.ServerCredentials | None, interceptors: tuple[grpc.ServerInterceptor, ...]
) -> RunningServer:
    return create_server("127.0.0.1:0", [register], [SERVICE_NAME], interceptors=interceptors, credentials=credentials)


@pytest.fixture
def mutual_tls_mapper(authority: TestAuthority, callers_file: Path) -> Iterator[int]:
    server = authority.issue("mapper.xerolink", server=True)
    credentials = grpc.ssl_server_credentials(
        [(server.key.read_bytes(), server.cert.read_bytes())],
        root_certificates=authority.pem.cert.read_bytes(),
        require_client_auth=True,
    )
    running = start_mapper(credentials, (AuthInterceptor(CallerRegistry.from_file(callers_file)),))
    yield running.port
    running.stop(0)


def tls_channel(authority: TestAuthority, port: int, client_cn: str | None) -> grpc.Channel:
    client = authority.issue(client_cn) if client_cn else None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=authority.pem.cert.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


def list_matrix(channel: grpc.Channel, token: str | None = None) -> mapper_pb2.ListSupportMatrixResponse:
    metadata = [("authorization", f"Bearer {token}")] if token else None
    response: mapper_pb2.ListSupportMatrixResponse = mapper_grpc.MapperServiceStub(channel).ListSupportMatrix(
        mapper_pb2.ListSupportMatrixRequest(), timeout=5, metadata=metadata
    )
    return response


def test_a_registered_client_certificate_identifies_the_caller(
    authority: TestAuthority, mutual_tls_mapper: int
) -> None:
    with tls_channel(authority, mutual_tls_mapper, "poster.xerolink") as channel:
        assert len(list_matrix(channel).rows) > 0


def test_mutual_tls_refuses_a_client_without_a_certificate(authority: TestAuthority, mutual_tls_mapper: int) -> None:
    with tls_channel(authority, mutual_tls_mapper, None) as channel, pytest.raises(grpc.RpcError) as err:
        list_matrix(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_the_ca_but_unregistered_is_not_a_caller(
    authority: TestAuthority, mutual_tls_mapper: int
) -> None:
    with tls_channel(authority, mutual_tls_mapper, "stranger.example") as channel, pytest.raises(grpc.RpcError) as err:
        list_matrix(channel)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert from_rpc_error(err.value).reason == "CALLER_UNKNOWN"


def test_plaintext_is_refused_by_a_tls_server(mutual_tls_mapper: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{mutual_tls_mapper}") as channel, pytest.raises(grpc.RpcError) as err:
        list_matrix(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_bearer_tokens_authenticate_and_health_stays_open_for_probes(
    callers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XEROLINK_CALLERS_FILE", str(callers_file))
    security = server_security_from_env("mapper")
    running = start_mapper(security.credentials, security.interceptors)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert list_matrix(channel, POSTER_TOKEN).rows
            for token in (None, "not-a-token"):
                with pytest.raises(grpc.RpcError) as err:
                    list_matrix(channel, token)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "Bearer" in from_rpc_error(err.value).message
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0)


def test_the_mapper_accepts_only_the_callers_configured_for_it(
    callers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XEROLINK_CALLERS_FILE", str(callers_file))
    monkeypatch.setenv("XEROLINK_MAPPER_ALLOWED_CALLERS", "poster")
    security = server_security_from_env("mapper", "XEROLINK_MAPPER_ALLOWED_CALLERS")
    running = start_mapper(security.credentials, security.interceptors)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert list_matrix(channel, POSTER_TOKEN).rows
            with pytest.raises(grpc.RpcError) as err:
                list_matrix(channel, BILLING_TOKEN)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert from_rpc_error(err.value).reason == "CALLER_NOT_ALLOWED"
    finally:
        running.stop(0)


def test_the_mapper_console_script_enforces_the_configured_callers(callers_file: Path) -> None:
    port = free_port()
    env = child_env(
        XEROLINK_MAPPER_ADDRESS=f"127.0.0.1:{port}",
        XEROLINK_CALLERS_FILE=str(callers_file),
        XEROLINK_MAPPER_ALLOWED_CALLERS="poster",
    )
    with (
        running(console_script("xerolink-mapper"), port, env=env),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        assert list_matrix(channel, POSTER_TOKEN).rows
        for token, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            (BILLING_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.RpcError) as err:
                list_matrix(channel, token)
            assert err.value.code() == code


# --- the poster as the mapper's client (xerolink_common.security.client_channel) --------------


def post_bill(
    channel: grpc.Channel, emulator: EmulatorServer, record_id: int, connection_id: str = "firm-1"
) -> poster_pb2.Posting:
    """Registers a connection on the poster behind `channel`, posts one bill and waits for it."""
    stub = poster_grpc.PosterServiceStub(channel)
    connect(stub, emulator, connection_id)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=samples.client_bill(record_id)),
        timeout=30,
    ).posting
    return wait_settled(stub, posting.name)


def assert_refused_by_the_mapper(channel: grpc.Channel, emulator: EmulatorServer, mapper_says: str) -> None:
    """The poster's caller learns that the mapper refused the poster, not that its own
    credentials are wrong, and nothing is recorded."""
    stub = poster_grpc.PosterServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        post_bill(channel, emulator, 9001)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    refusal = from_rpc_error(err.value)
    assert refusal.reason == "MAPPER_REFUSED_POSTER"
    assert mapper_says in refusal.message and "nothing was recorded" in refusal.message
    listed = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1"), timeout=10)
    assert list(listed.links) == []


def test_a_poster_with_the_caller_token_reaches_a_mapper_that_requires_it(
    tmp_path: Path, callers_file: Path, emulator: EmulatorServer
) -> None:
    guarded = {"XEROLINK_CALLERS_FILE": str(callers_file), "XEROLINK_MAPPER_ALLOWED_CALLERS": "poster"}
    with mapper_process(tmp_path, **guarded) as mapper:
        with (
            poster_process(tmp_path, mapper, XEROLINK_CALLER_TOKEN=POSTER_TOKEN) as poster,
            grpc.insecure_channel(poster) as channel,
        ):
            assert post_bill(channel, emulator, 8001).state == poster_pb2.LINK_STATE_LINKED
        for token, mapper_says in (
            ("", "UNAUTHENTICATED CALLER_UNKNOWN"),
            ("not-the-poster-token", "UNAUTHENTICATED CALLER_UNKNOWN"),
            (BILLING_TOKEN, "PERMISSION_DENIED CALLER_NOT_ALLOWED"),
        ):
            with (
                poster_process(tmp_path, mapper, XEROLINK_CALLER_TOKEN=token) as poster,
                grpc.insecure_channel(poster) as channel,
            ):
                assert_refused_by_the_mapper(channel, emulator, mapper_says)
            # The operator reads in the poster's log what to fix.
            log = (tmp_path / f"poster-{poster.rsplit(':', 1)[1]}.log").read_text()
            assert f"the mapper at {mapper} refused this poster: {mapper_says}" in log
            assert "XEROLINK_CALLER_TOKEN" in log and (not token or token not in log)


def test_a_tls_poster_with_its_client_certificate_reaches_a_mutual_tls_mapper(
    tmp_path: Path, authority: TestAuthority, callers_file: Path, emulator: EmulatorServer
) -> None:
    mapper_cert, poster_cert = authority.issue("mapper.xerolink", server=True), authority.issue("poster.xerolink")
    mutual_tls = {
        "XEROLINK_TLS_CERT": str(mapper_cert.cert),
        "XEROLINK_TLS_KEY": str(mapper_cert.key),
        "XEROLINK_TLS_CLIENT_CA": str(authority.pem.cert),
        "XEROLINK_CALLERS_FILE": str(callers_file),
        "XEROLINK_MAPPER_ALLOWED_CALLERS": "poster",
    }
    # The poster serves TLS itself too (XEROLINK_TLS_CERT/KEY), as deployed behind a TLS Service.
    serving = authority.issue("poster-server.xerolink", server=True)
    poster_tls = {
        "XEROLINK_TLS_CERT": str(serving.cert),
        "XEROLINK_TLS_KEY": str(serving.key),
        "XEROLINK_TLS_CA": str(authority.pem.cert),
    }
    stranger = authority.issue("stranger.example")
    with mapper_process(tmp_path, **mutual_tls) as mapper:
        as_poster = {"XEROLINK_TLS_CLIENT_CERT": str(poster_cert.cert), "XEROLINK_TLS_CLIENT_KEY": str(poster_cert.key)}
        with (
            poster_process(tmp_path, mapper, **poster_tls, **as_poster) as poster,
            tls_channel(authority, int(poster.rsplit(":", 1)[1]), None) as channel,
        ):
            assert post_bill(channel, emulator, 8101).state == poster_pb2.LINK_STATE_LINKED
            with grpc.insecure_channel(poster) as plaintext, pytest.raises(grpc.RpcError) as err:
                check_health(plaintext)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        as_stranger = {"XEROLINK_TLS_CLIENT_CERT": str(stranger.cert), "XEROLINK_TLS_CLIENT_KEY": str(stranger.key)}
        with (
            poster_process(tmp_path, mapper, **poster_tls, **as_stranger) as poster,
            tls_channel(authority, int(poster.rsplit(":", 1)[1]), None) as channel,
        ):
            assert_refused_by_the_mapper(channel, emulator, "UNAUTHENTICATED CALLER_UNKNOWN")


def check_health(channel: grpc.Channel) -> None:
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
