"""Every RPC of the poster under malformed and hostile requests: each gets a clear gRPC error
(INVALID_ARGUMENT with field violations, FAILED_PRECONDITION or NOT_FOUND, always with a reason),
never INTERNAL or UNKNOWN, and nothing changes — the registry's rows (links, postings, outbox,
audit, connections, contacts) and the emulated organisation's objects are as they were."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, given, settings
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb
from xerolink.poster.v1 import poster_service_pb2 as pb
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig

from tests.fixtures import poster as fixtures
from tests.fuzz.hostile import (
    BROKEN_ELSEWHERE,
    CLEAR,
    HUGE,
    INT64_MAX,
    INT64_MIN,
    clear_error,
    clear_item_error,
    expect_error,
    hostile_transactions,
    record,
)
from tests.fuzz.strategies import hostile_transaction

CONNECTION = "fuzz-firm"
SERVICE = "/xerolink.poster.v1.PosterService/"
# Tables whose rows record what was posted; the tenant lease is the dispatcher's heartbeat.
STEADY_TABLES = ("connection", "link", "posting", "link_audit", "outbox", "dependency_wait", "contact_link")


@dataclass
class Stack:
    stub: poster_grpc.PosterServiceStub
    channel: grpc.Channel
    emulator: EmulatorServer
    tenant_id: str
    database: Path
    posting_name: str

    def snapshot(self) -> dict[str, Any]:
        with sqlite3.connect(self.database) as db:
            rows = {table: sorted(map(repr, db.execute(f'SELECT * FROM "{table}"'))) for table in STEADY_TABLES}
        objects = {}
        for org in self.emulator.state.organisations.values():
            with org.lock:
                objects[org.tenant_id] = {
                    name: sorted(map(repr, items.values())) for name, items in org.objects.items()
                }
        return {"registry": rows, "xero": objects}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mapper_target: str) -> Iterator[Stack]:
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    database = tmp_path_factory.mktemp("fuzz") / "registry.db"
    app = bootstrap.start(
        PosterConfig(
            address="127.0.0.1:0",
            database_url=f"sqlite:///{database}",
            mapper_target=mapper_target,
            dispatcher=fixtures.settings(),
            instance_id="fuzz",
            workers=8,
            run_dispatcher=True,
        )
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    stub = poster_grpc.PosterServiceStub(channel)
    _, org = fixtures.connect(stub, emulator, CONNECTION)
    # Something to protect: a linked bill, its payment and a trust receipt.
    sample = samples.sample_transactions()
    names = []
    for name in ("client_bill", "client_bill_payment", "trust_receipt"):
        posting = stub.PostTransaction(pb.PostTransactionRequest(connection_id=CONNECTION, transaction=sample[name]))
        names.append(posting.posting.name)
    for name in names:
        assert fixtures.wait_settled(stub, name).state == pb.LINK_STATE_LINKED
    yield Stack(stub, channel, emulator, org["tenant_id"], database, names[0])
    channel.close()
    app.stop(0)
    emulator.stop()


@pytest.fixture
def baseline(stack: Stack) -> dict[str, Any]:
    """The state before the test's requests (taken per test, so one failure cannot hide another)."""
    return stack.snapshot()


def _unchanged(stack: Stack, baseline: dict[str, Any]) -> None:
    assert stack.snapshot() == baseline, "a refused request changed the registry or the Xero organisation"


# -- posting -----------------------------------------------------------------------------------

HOSTILE = {name: tx for name, tx in hostile_transactions().items() if name not in BROKEN_ELSEWHERE}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_transaction_is_refused_clearly_by_every_posting_rpc(
    stack: Stack, baseline: dict[str, Any], case: str
) -> None:
    tx = HOSTILE[case]
    expect_error(
        lambda: stack.stub.PostTransaction(pb.PostTransactionRequest(connection_id=CONNECTION, transaction=tx))
    )
    batch = stack.stub.BatchPostTransactions(
        pb.BatchPostTransactionsRequest(connection_id=CONNECTION, transactions=[tx])
    )
    assert [r.WhichOneof("outcome") for r in batch.results] == ["error"]
    clear_item_error(batch.results[0].error)
    streamed = list(
        stack.stub.StreamPostTransactions(
            iter([pb.StreamPostTransactionsRequest(connection_id=CONNECTION, transactions=[tx])])
        )
    )
    assert [r.WhichOneof("outcome") for r in streamed[0].results] == ["error"]
    clear_item_error(streamed[0].results[0].error)
    _unchanged(stack, baseline)


def test_every_item_of_a_batch_of_hostile_transactions_gets_its_own_clear_error(
    stack: Stack, baseline: dict[str, Any]
) -> None:
    txs = list(HOSTILE.values())
    results = stack.stub.BatchPostTransactions(
        pb.BatchPostTransactionsRequest(connection_id=CONNECTION, transactions=txs)
    ).results
    assert sorted(r.index for r in results) == list(range(len(txs)))
    for result in results:
        assert result.WhichOneof("outcome") == "error", f"item {result.index} was accepted"
        clear_item_error(result.error)
    _unchanged(stack, baseline)


def test_a_batch_beyond_the_limit_is_refused_whole(stack: Stack, baseline: dict[str, Any]) -> None:
    tx = HOSTILE["no kind"]
    err = expect_error(
        lambda: stack.stub.BatchPostTransactions(
            pb.BatchPostTransactionsRequest(connection_id=CONNECTION, transactions=[tx] * 5000)
        )
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    _unchanged(stack, baseline)


@pytest.mark.parametrize("connection_id", ["", "no-such-firm", "../../etc/passwd", "firm\x00one", "ßüñ", "' OR 1=1 --"])
def test_posting_to_an_unknown_or_malformed_connection_is_refused(
    stack: Stack, baseline: dict[str, Any], connection_id: str
) -> None:
    tx = samples.client_bill(9001)
    err = expect_error(
        lambda: stack.stub.PostTransaction(pb.PostTransactionRequest(connection_id=connection_id, transaction=tx))
    )
    assert err.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    batch = expect_error(
        lambda: stack.stub.BatchPostTransactions(
            pb.BatchPostTransactionsRequest(connection_id=connection_id, transactions=[tx])
        )
    )
    assert batch.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    expect_error(
        lambda: list(
            stack.stub.StreamPostTransactions(
                iter([pb.StreamPostTransactionsRequest(connection_id=connection_id, transactions=[tx])])
            )
        )
    )
    _unchanged(stack, baseline)


# -- reading -----------------------------------------------------------------------------------

BAD_NAMES = [
    "",
    "postings/",
    "posting/1",
    "postings/../../x",
    "/postings/1",
    "postings/\x00",
]
UNKNOWN_NAMES = ["postings/does-not-exist", "postings/00000000-0000-0000-0000-000000000000"]


@pytest.mark.parametrize("name", BAD_NAMES + UNKNOWN_NAMES)
def test_a_malformed_or_unknown_posting_name_is_refused(stack: Stack, baseline: dict[str, Any], name: str) -> None:
    expect_error(lambda: stack.stub.GetPosting(pb.GetPostingRequest(name=name)))
    expect_error(lambda: list(stack.stub.WatchPosting(pb.WatchPostingRequest(name=name), timeout=10)))
    _unchanged(stack, baseline)


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BAD_TOKENS = [
    "!!!not base64!!!",
    "%%%",
    "\x00",
    HUGE[:100_000],
    _token("not a number"),
    _token("-1"),
    _token("123:"),
    # Digits that are not ASCII, and positions beyond 64 bits, for either listing.
    _token("²"),
    _token("9" * 5000),
    _token(str(2**63)),
    _token("²:abc"),
    _token(f"{2**63}:abc"),
]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=range(len(BAD_TOKENS)))
def test_a_malformed_page_token_is_refused(stack: Stack, baseline: dict[str, Any], token: str) -> None:
    links = expect_error(lambda: stack.stub.ListLinks(pb.ListLinksRequest(connection_id=CONNECTION, page_token=token)))
    postings = expect_error(
        lambda: stack.stub.ListPostings(pb.ListPostingsRequest(connection_id=CONNECTION, page_token=token))
    )
    assert links.code == postings.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in links.fields and "page_token" in postings.fields
    _unchanged(stack, baseline)


@pytest.mark.parametrize("field", ["state", "group"])
def test_an_unknown_filter_value_is_refused_not_read_as_no_filter(
    stack: Stack, baseline: dict[str, Any], field: str
) -> None:
    request = pb.ListLinksRequest(connection_id=CONNECTION)
    setattr(request, field, 99)  # an enum number this version does not define
    links = expect_error(lambda: stack.stub.ListLinks(request))
    assert links.code == grpc.StatusCode.INVALID_ARGUMENT and field in links.fields
    if field == "state":
        unknown = pb.ListPostingsRequest(connection_id=CONNECTION)
        unknown.state = 99  # type: ignore[assignment]
        postings = expect_error(lambda: stack.stub.ListPostings(unknown))
        assert postings.code == grpc.StatusCode.INVALID_ARGUMENT and "state" in postings.fields
    _unchanged(stack, baseline)


@pytest.mark.parametrize("page_size", [-1, INT64_MIN // 2**32, -(2**31)])
def test_a_negative_page_size_is_refused(stack: Stack, baseline: dict[str, Any], page_size: int) -> None:
    expect_error(lambda: stack.stub.ListLinks(pb.ListLinksRequest(connection_id=CONNECTION, page_size=page_size)))
    expect_error(lambda: stack.stub.ListPostings(pb.ListPostingsRequest(connection_id=CONNECTION, page_size=page_size)))
    _unchanged(stack, baseline)


@pytest.mark.parametrize(
    "key",
    [
        common_pb2.RecordKey(),
        record(common_pb2.TRANSACTION_KIND_CLIENT_BILL, 0),
        record(common_pb2.TRANSACTION_KIND_CLIENT_BILL, -1),
        record(common_pb2.TRANSACTION_KIND_CLIENT_BILL, INT64_MIN),
        record(999, 1001),
        record(-4, 1001),
        record(common_pb2.TRANSACTION_KIND_CLIENT_BILL, INT64_MAX),
    ],
    ids=["empty", "zero id", "negative id", "int64 min id", "unknown kind", "negative kind", "never posted"],
)
def test_a_malformed_or_unknown_record_key_is_refused(
    stack: Stack, baseline: dict[str, Any], key: common_pb2.RecordKey
) -> None:
    expect_error(
        lambda: stack.stub.GetLink(pb.GetLinkRequest(connection_id=CONNECTION, record=key, include_audit=True))
    )
    _unchanged(stack, baseline)


@pytest.mark.parametrize("connection_id", ["", "no-such-firm", "fuzz-firm\x00", "FUZZ-FIRM"])
def test_reading_an_unknown_connection_is_refused(stack: Stack, baseline: dict[str, Any], connection_id: str) -> None:
    expect_error(lambda: stack.stub.GetConnection(pb.GetConnectionRequest(connection_id=connection_id)))
    key = record(common_pb2.TRANSACTION_KIND_CLIENT_BILL, 1001)
    expect_error(lambda: stack.stub.GetLink(pb.GetLinkRequest(connection_id=connection_id, record=key)))
    _unchanged(stack, baseline)


# -- connections -------------------------------------------------------------------------------


def _connection(**changes: Any) -> pb.Connection:
    connection = pb.Connection(
        connection_id="fuzz-new",
        xero_base_url="https://api.xero.com",
        xero_tenant_id="5b4a1d5e-1111-2222-3333-444455556666",
        access_token="token",
        refresh_token="refresh",
        mapping_context=samples.demo_context(),
    )
    for name, value in changes.items():
        if value is None:
            connection.ClearField(name)  # type: ignore[arg-type]
        else:
            setattr(connection, name, value)
    return connection


BAD_CONNECTIONS: dict[str, Callable[[], pb.Connection]] = {
    "empty": pb.Connection,
    "id with a slash": lambda: _connection(connection_id="firm/1"),
    "id of 10,000 characters": lambda: _connection(connection_id="f" * 10_000),
    "id with NUL": lambda: _connection(connection_id="firm\x00"),
    "base url not http": lambda: _connection(xero_base_url="ftp://api.xero.com"),
    "no tenant": lambda: _connection(xero_tenant_id=""),
    "tenant of a megabyte": lambda: _connection(xero_tenant_id=HUGE),
    "no access token": lambda: _connection(access_token=""),
    "no mapping context": lambda: _connection(mapping_context=None),
    "negative division": lambda: _with_context(linked_division_id=-1),
    "taken id": lambda: _connection(connection_id=CONNECTION),
}


def _with_context(**changes: Any) -> pb.Connection:
    connection = _connection()
    for name, value in changes.items():
        setattr(connection.mapping_context, name, value)
    return connection


@pytest.mark.parametrize("case", sorted(BAD_CONNECTIONS))
def test_a_malformed_connection_is_not_created(stack: Stack, baseline: dict[str, Any], case: str) -> None:
    connection = BAD_CONNECTIONS[case]()
    allowed = CLEAR | {grpc.StatusCode.ALREADY_EXISTS} if case == "taken id" else CLEAR
    expect_error(lambda: stack.stub.CreateConnection(pb.CreateConnectionRequest(connection=connection)), allowed)
    _unchanged(stack, baseline)


# -- bytes that are messages of the wrong shape ------------------------------------------------

# Field 1 and 2 of every request, sent with wire types their declarations do not have.
WRONG_WIRE_TYPES = [
    b"\x08\x96\x01",
    b"\x0d\x01\x02\x03\x04",
    b"\x11" + b"\x00" * 8,
    b"\x10\x01",
    b"\x15\x00\x00\x00\x00",
]


@pytest.mark.parametrize("method", sorted(pb.DESCRIPTOR.services_by_name["PosterService"].methods_by_name))
def test_fields_of_the_wrong_wire_type_never_make_an_internal_error(
    stack: Stack, baseline: dict[str, Any], method: str
) -> None:
    descriptor = pb.DESCRIPTOR.services_by_name["PosterService"].methods_by_name[method]
    path = SERVICE + method
    for payload in WRONG_WIRE_TYPES:
        try:
            if descriptor.client_streaming:
                list(stack.channel.stream_stream(path)(iter([payload]), timeout=10))
            elif descriptor.server_streaming:
                list(stack.channel.unary_stream(path)(payload, timeout=10))
            else:
                stack.channel.unary_unary(path)(payload, timeout=10)
        except grpc.RpcError as err:
            clear_error(err)
    _unchanged(stack, baseline)


# -- generated hostile transactions --------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(tx=hostile_transaction())
def test_generated_hostile_transactions_are_refused_and_change_nothing(
    stack: Stack, tx: transaction_pb2.Transaction
) -> None:
    baseline = stack.snapshot()
    expect_error(
        lambda: stack.stub.PostTransaction(pb.PostTransactionRequest(connection_id=CONNECTION, transaction=tx))
    )
    _unchanged(stack, baseline)


UNDECODABLE = [b"\xff\xff\xff", b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"\x0a\x05ab"]


def _call_raw(channel: grpc.Channel, method: MethodDescriptor, payload: bytes) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        list(channel.stream_stream(path)(iter([payload]), timeout=10))
    elif method.server_streaming:
        list(channel.unary_stream(path)(payload, timeout=10))
    else:
        channel.unary_unary(path)(payload, timeout=10)


@pytest.mark.parametrize("service", ["mapper", "poster"])
def test_bytes_that_are_not_protobuf_are_invalid_arguments(stack: Stack, mapper_target: str, service: str) -> None:
    descriptor = (
        mapper_pb.DESCRIPTOR.services_by_name["MapperService"]
        if service == "mapper"
        else pb.DESCRIPTOR.services_by_name["PosterService"]
    )
    channel = grpc.insecure_channel(mapper_target) if service == "mapper" else stack.channel
    before = stack.snapshot()
    for method in descriptor.methods_by_name.values():
        for payload in UNDECODABLE:
            with pytest.raises(grpc.RpcError) as raised:
                _call_raw(channel, method, payload)
            assert clear_error(raised.value).code == grpc.StatusCode.INVALID_ARGUMENT, method.name
    assert stack.snapshot() == before
