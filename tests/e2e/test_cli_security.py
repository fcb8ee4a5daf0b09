"""The CLI with the client settings of docs/operations.md against a `xerolink-poster` console
script serving TLS (from XEROLINK_TLS_CERT/KEY, with XEROLINK_TLS_CLIENT_CA for mutual TLS) and
authenticating callers (XEROLINK_CALLERS_FILE): it gets in with its token or certificate, and is
refused clearly without them."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.exit_codes import ExitCode
from xerolink_mapper import samples

from tests.fixtures.callers import write_callers_file
from tests.fixtures.cli import run_cli, table
from tests.fixtures.poster import connect
from tests.fixtures.services import poster_process
from tests.fixtures.tls import Pem, TestAuthority

OPERATOR_TOKEN = "operator-token-0123456789"
OTHER_FIRM_TOKEN = "other-firm-token-9876543210"


@pytest.fixture
def authority(tmp_path: Path) -> TestAuthority:
    return TestAuthority(tmp_path)


def tls_poster(tmp_path: Path, mapper_target: str, server: Pem, **security: str) -> AbstractContextManager[str]:
    """A poster console script serving TLS with `server`'s certificate, and `security` added to
    its environment."""
    return poster_process(
        tmp_path, mapper_target, XEROLINK_TLS_CERT=str(server.cert), XEROLINK_TLS_KEY=str(server.key), **security
    )


def admin_channel(target: str, authority: TestAuthority, token: str = "", client: Pem | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=authority.pem.cert.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(target, credentials)


def bill_file(tmp_path: Path, record_id: int) -> Path:
    path = tmp_path / f"bill-{record_id}.json"
    path.write_text(json.dumps(json_format.MessageToDict(samples.client_bill(record_id))))
    return path


def post_bill(workdir: Path, target: str, record_id: int, **settings: str) -> tuple[int, str]:
    """`xerolink post --wait` of one client bill, with these client settings: (exit code, output)."""
    result = run_cli(
        "--poster", target, "post", str(bill_file(workdir, record_id)), "--connection", "firm-1", "--wait", **settings
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def has_link(stub: poster_grpc.PosterServiceStub, record_id: int) -> bool:
    record = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=record_id)
    try:
        stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record), timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


def test_the_cli_posts_to_a_tls_poster_with_its_token_and_is_refused_without_it(
    tmp_path: Path, authority: TestAuthority, mapper_target: str, emulator: EmulatorServer
) -> None:
    callers = write_callers_file(
        tmp_path / "callers.json",
        tokens={"operator": OPERATOR_TOKEN, "other-firm": OTHER_FIRM_TOKEN},
        connections={"other-firm": ["firm-2"]},
    )
    server = authority.issue("poster.xerolink", server=True)
    with (
        tls_poster(tmp_path, mapper_target, server, XEROLINK_CALLERS_FILE=str(callers)) as target,
        admin_channel(target, authority, OPERATOR_TOKEN) as channel,
    ):
        stub = poster_grpc.PosterServiceStub(channel)
        connect(stub, emulator)
        ca = str(authority.pem.cert)

        def post(record_id: int, **settings: str) -> tuple[int, str]:
            return post_bill(tmp_path, target, record_id, **settings)

        code, out = post(5001, XEROLINK_TLS_CA=ca, XEROLINK_CALLER_TOKEN=OPERATOR_TOKEN)
        assert code == ExitCode.OK, out
        assert table(out, "Posted to Xero")[1] == [["client-bill/5001", "linked", "invoice INV-5001", ""]]
        listed = run_cli(
            "--poster",
            target,
            "links",
            "--connection",
            "firm-1",
            XEROLINK_TLS_CA=ca,
            XEROLINK_CALLER_TOKEN=OPERATOR_TOKEN,
        )
        assert listed.returncode == ExitCode.OK and table(listed.stdout, "Links of firm-1")[1][0][:3] == [
            "client-bill/5001",
            "sales invoices",
            "linked",
        ]

        # Every other command of the poster goes through the same channel: in with the token,
        # exit 5 without it.
        for command, marker in (
            (["orphans", "--connection", "firm-1"], "Xero objects left in Xero by unlinks"),
            (["unlink", "--connection", "firm-1", "client-bill:5001"], "Preview: nothing has changed yet"),
            (["correct", "client-bill/5001", "--connection", "firm-1", "--intent", "edit"], "Correction of "),
            (["backfill", "--check", "--connection", "firm-1"], "Preflight ("),
        ):
            signed_in = run_cli("--poster", target, *command, XEROLINK_TLS_CA=ca, XEROLINK_CALLER_TOKEN=OPERATOR_TOKEN)
            assert signed_in.returncode not in (ExitCode.UNAVAILABLE, ExitCode.REQUEST_REFUSED), signed_in.stdout
            assert marker in signed_in.stdout and "Traceback" not in signed_in.stderr, signed_in.stdout
            anonymous = run_cli("--poster", target, *command, XEROLINK_TLS_CA=ca)
            assert anonymous.returncode == ExitCode.REQUEST_REFUSED, anonymous.stdout + anonymous.stderr
            assert "error: UNAUTHENTICATED CALLER_UNKNOWN: " in anonymous.stdout

        for record_id, settings, code_expected, first_line in (
            (5002, {"XEROLINK_TLS_CA": ca}, ExitCode.REQUEST_REFUSED, "error: UNAUTHENTICATED CALLER_UNKNOWN: "),
            (
                5003,
                {"XEROLINK_TLS_CA": ca, "XEROLINK_CALLER_TOKEN": "not-the-token"},
                ExitCode.REQUEST_REFUSED,
                "error: UNAUTHENTICATED CALLER_UNKNOWN: ",
            ),
            (
                5004,
                {"XEROLINK_TLS_CA": ca, "XEROLINK_CALLER_TOKEN": OTHER_FIRM_TOKEN},
                ExitCode.REQUEST_REFUSED,
                "error: PERMISSION_DENIED CONNECTION_NOT_PERMITTED: caller 'other-firm' may not use connection "
                "'firm-1'",
            ),
            # Plaintext to a TLS server: the handshake fails, nothing is reached.
            (5005, {"XEROLINK_CALLER_TOKEN": OPERATOR_TOKEN}, ExitCode.UNAVAILABLE, "service unavailable: "),
        ):
            code, out = post(record_id, **settings)
            assert code == code_expected, (settings, out)
            assert any(line.startswith(first_line) for line in out.splitlines()), (settings, out)
            assert "Posted to Xero" not in out
            assert not has_link(stub, record_id), "a refused CLI posted nothing"


def test_the_cli_reaches_a_mutual_tls_poster_with_its_client_certificate(
    tmp_path: Path, authority: TestAuthority, mapper_target: str, emulator: EmulatorServer
) -> None:
    callers = write_callers_file(tmp_path / "callers.json", subjects={"operator": "operator.xerolink"})
    server = authority.issue("poster.xerolink", server=True)
    operator, stranger = authority.issue("operator.xerolink"), authority.issue("stranger.example")
    with (
        tls_poster(
            tmp_path,
            mapper_target,
            server,
            XEROLINK_TLS_CLIENT_CA=str(authority.pem.cert),
            XEROLINK_CALLERS_FILE=str(callers),
        ) as target,
        admin_channel(target, authority, client=operator) as channel,
    ):
        stub = poster_grpc.PosterServiceStub(channel)
        connect(stub, emulator)
        ca = str(authority.pem.cert)

        def post(record_id: int, **settings: str) -> tuple[int, str]:
            return post_bill(tmp_path, target, record_id, XEROLINK_TLS_CA=ca, **settings)

        code, out = post(6001, XEROLINK_TLS_CLIENT_CERT=str(operator.cert), XEROLINK_TLS_CLIENT_KEY=str(operator.key))
        assert code == ExitCode.OK, out
        assert table(out, "Posted to Xero")[1] == [["client-bill/6001", "linked", "invoice INV-6001", ""]]

        # No client certificate: the server ends the handshake.
        code, out = post(6002)
        assert code == ExitCode.UNAVAILABLE, out
        # A certificate of the CA whose subject is not a caller: authenticated TLS, unknown caller.
        code, out = post(6003, XEROLINK_TLS_CLIENT_CERT=str(stranger.cert), XEROLINK_TLS_CLIENT_KEY=str(stranger.key))
        assert code == ExitCode.REQUEST_REFUSED, out
        assert "error: UNAUTHENTICATED CALLER_UNKNOWN: " in out
        assert not has_link(stub, 6002) and not has_link(stub, 6003)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"XEROLINK_TLS_CA": "/nonexistent/ca.pem"}, "XEROLINK_TLS_CA=/nonexistent/ca.pem: cannot be read"),
        (
            {"XEROLINK_TLS_CA": "{ca}", "XEROLINK_TLS_CLIENT_CERT": "{ca}"},
            "set both XEROLINK_TLS_CLIENT_CERT and XEROLINK_TLS_CLIENT_KEY, or neither",
        ),
        (
            {"XEROLINK_TLS_CLIENT_CERT": "{ca}", "XEROLINK_TLS_CLIENT_KEY": "{ca}"},
            "a client certificate (XEROLINK_TLS_CLIENT_CERT) needs XEROLINK_TLS_CA too",
        ),
    ],
    ids=["unreadable CA", "certificate without key", "certificate without CA"],
)
def test_incomplete_or_unreadable_client_settings_are_usage_errors(
    authority: TestAuthority, settings: dict[str, str], message: str
) -> None:
    env = {name: value.format(ca=authority.pem.cert) for name, value in settings.items()}
    # The poster address is closed: exit 2 proves nothing was sent.
    result = run_cli("--poster", "127.0.0.1:9", "links", "--connection", "firm-1", **env)
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    assert f"error: {message}" in result.stdout
