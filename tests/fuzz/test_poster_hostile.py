"""Every RPC of the poster under malformed and hostile requests: each gets a clear gRPC error
(INVALID_ARGUMENT with field violations, FAILED_PRECONDITION or NOT_FOUND, always with a reason),
never INTERNAL or UNKNOWN, and nothing changes — every row of the registry (but the dispatcher's
heartbeat), every object of the emulated organisations, their apps' connections, and what reached
the emulator (requests to its organisations, tokens granted) are as they were."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb
from xerolink.poster.v1 import backfill_pb2
from xerolink.poster.v1 import poster_service_pb2 as pb
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.xero_identity import XeroApps
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig

from tests.fixtures import poster as fixtures
from tests.fixtures.postgres import create_database
from tests.fuzz.hostile import (
    BROKEN_ELSEWHERE,
    CLEAR,
    HUGE,
    INT64_MAX,
    INT64_MIN,
    call_raw,
    clear_error,
    clear_item_error,
    expect_error,
    hostile_transactions,
    money,
    record,
    wrong_wire_type_payloads,
)
from tests.fuzz.poster_requests import BAD_TOKENS, CASES, PRE_INTEGRATION, Known, open_bill
from tests.fuzz.strategies import hostile_transaction

CONNECTION = "fuzz-firm"
POSTER = pb.DESCRIPTOR.services_by_name["PosterService"]
# Every registry table is compared but the dispatcher's heartbeat (the tenant lease) and its count
# of calls to Xero per minute, which the emulator's own count of requests stands in for.
VOLATILE_TABLES = ("tenant_lease", "app_call_bucket")
TOKEN_ENDPOINT = "/connect/token"


@dataclass
class XeroTraffic:
    """What reached the emulator: requests to its organisations and connections, and the tokens
    its token endpoint granted (a refused code or refresh grants none)."""

    requests: list[str] = field(default_factory=list)
    grants: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, emulator: EmulatorServer) -> None:
        handle = emulator.gateway.handle

        def counted(request: Request) -> Response:
            response = handle(request)
            with self.lock:
                if request.path != TOKEN_ENDPOINT:
                    self.requests.append(f"{request.method} {request.path}")
                elif response.status == 200:
                    self.grants += 1
            return response

        emulator.gateway.handle = counted  # type: ignore[method-assign]

    def seen(self) -> tuple[int, int]:
        with self.lock:
            return len(self.requests), self.grants


@dataclass
class Stack:
    stub: poster_grpc.PosterServiceStub
    channel: grpc.Channel
    emulator: EmulatorServer
    tenant_id: str
    registry: sqlalchemy.Engine
    posting_name: str
    known: Known
    traffic: XeroTraffic

    def snapshot(self) -> dict[str, Any]:
        with self.registry.connect() as db:
            tables = [name for name in sqlalchemy.inspect(db).get_table_names() if name not in VOLATILE_TABLES]
            rows = {
                table: sorted(map(repr, db.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')))) for table in tables
            }
        objects = {}
        for org in self.emulator.state.organisations.values():
            with org.lock:
                objects[org.tenant_id] = {
                    name: sorted(map(repr, items.values())) for name, items in org.objects.items()
                }
        apps = {a.client_id: sorted(a.connections) for a in self.emulator.state.identity.apps.values()}
        return {"registry": rows, "xero": objects, "xero apps": apps, "xero traffic": self.traffic.seen()}


def _write_apps(path: Path, org: dict[str, Any], emulator: EmulatorServer) -> None:
    """The poster's Xero app is the emulator's app of the fuzz organisation (read when used)."""
    app = {"client_id": org["client_id"], "client_secret": org["client_secret"], "identity_url": emulator.base_url}
    path.write_text(json.dumps({"apps": {"default": app}}))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every case runs against a SQLite file and against the real PostgreSQL server, which refuses
    text SQLite stores (NUL characters)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'registry.db'}"
    return create_database(request.getfixturevalue("postgres_server"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mapper_target: str, registry_url: str) -> Iterator[Stack]:
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    apps_file = tmp_path_factory.mktemp("fuzz") / "xero-apps.json"
    app = bootstrap.start(
        PosterConfig(
            address="127.0.0.1:0",
            database_url=registry_url,
            mapper_target=mapper_target,
            dispatcher=fixtures.settings(),
            instance_id="fuzz",
            workers=8,
            run_dispatcher=True,
            xero_apps=XeroApps(str(apps_file)),
        )
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    stub = poster_grpc.PosterServiceStub(channel)
    _, org = fixtures.connect(stub, emulator, CONNECTION)
    _write_apps(apps_file, org, emulator)
    # Something to protect: a linked bill, its payment and a trust receipt.
    sample = samples.sample_transactions()
    postings = []
    for name in ("client_bill", "client_bill_payment", "trust_receipt"):
        posting = stub.PostTransaction(pb.PostTransactionRequest(connection_id=CONNECTION, transaction=sample[name]))
        postings.append(posting.posting)
    for posting in postings:
        assert fixtures.wait_settled(stub, posting.name).state == pb.LINK_STATE_LINKED
    identity = emulator.state.identity
    known = Known(
        connection_id=CONNECTION,
        bill=postings[0].record,
        payment=postings[1].record,
        receipt=postings[2].record,
        xero_base_url=emulator.base_url,
        fresh_code=lambda: identity.issue_code(identity.apps[org["client_id"]]),
    )
    traffic = XeroTraffic()
    traffic.watch(emulator)
    registry = sqlalchemy.create_engine(registry_url)
    yield Stack(stub, channel, emulator, org["tenant_id"], registry, postings[0].name, known, traffic)
    registry.dispose()
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
    "tenant with NUL": lambda: _connection(xero_tenant_id="5b4a1d5e-1111-2222-3333-44445555666\x00"),
    "base url with NUL": lambda: _connection(xero_base_url="https://api.xero.com\x00"),
    "app name with NUL": lambda: _connection(xero_app="default\x00"),
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


# -- named hostile requests to the rest of the RPCs (tests/fuzz/poster_requests.py) -----------


def _call(stack: Stack, rpc: str, request: Message) -> object:
    method = getattr(stack.stub, rpc)
    if POSTER.methods_by_name[rpc].server_streaming:
        return list(method(request, timeout=30))
    return method(request, timeout=30)


def _names(err_fields: tuple[str, ...], wanted: str) -> bool:
    """The violations name the field itself, an element of it or a member of it."""
    return any(f == wanted or f.startswith((f"{wanted}[", f"{wanted}.")) for f in err_fields)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_named_hostile_request_is_refused_clearly_and_changes_nothing(
    stack: Stack, baseline: dict[str, Any], case: str
) -> None:
    hostile = CASES[case]
    request = hostile.build(stack.known)
    err = expect_error(lambda: _call(stack, hostile.rpc, request), set(hostile.allowed))
    if hostile.code is not None:
        assert err.code == hostile.code, f"{err.code} {err.reason}, not {hostile.code}"
    if hostile.field:
        assert _names(err.fields, hostile.field), f"{err.reason}: {err.fields} do not name {hostile.field}"
    _unchanged(stack, baseline)


def _hostile_bill(change: Callable[[backfill_pb2.BackfillBill], None]) -> backfill_pb2.BackfillBill:
    bill = open_bill(7100)
    change(bill)
    return bill


def _set_payment_units(units: int) -> Callable[[backfill_pb2.BackfillBill], None]:
    return lambda b: setattr(b.payments[0].client_bill_payment.amount, "units", units)


def _hostile_document(name: str) -> Callable[[], backfill_pb2.BackfillBill]:
    """A hostile bill otherwise fit for the backfill (posted before the connection, nothing paid),
    so the mapper judges it."""

    def build() -> backfill_pb2.BackfillBill:
        bill = hostile_transactions()[name]
        bill.header.posted_at.CopyFrom(samples.timestamp(PRE_INTEGRATION))
        due = money(bill.client_bill.totals.inclusive.units)
        return backfill_pb2.BackfillBill(bill=bill, status=backfill_pb2.BILL_STATUS_OPEN, total_due=due)

    return build


# Bills a backfill refuses item by item (docs/backfill.md): the mapper's judgement of the
# transactions, and the facts the backfill checks against Actionstep's.
ITEM_REFUSALS: dict[str, Callable[[], backfill_pb2.BackfillBill]] = {
    **{
        f"hostile bill: {name}": _hostile_document(name)
        for name in (
            "30 February",
            "lines overflow int64",
            "3000 lines, one without account",
            "huge account",
            "unknown tax code",
            "totals off by a cent",
            "no lines",
        )
    },
    "no bill status": lambda: _hostile_bill(lambda b: setattr(b, "status", 0)),
    "no total due": lambda: _hostile_bill(lambda b: b.ClearField("total_due")),
    "a negative payment": lambda: _hostile_bill(_set_payment_units(-10_000)),
    "an int64 max payment": lambda: _hostile_bill(_set_payment_units(INT64_MAX)),
    "an int64 min payment": lambda: _hostile_bill(_set_payment_units(INT64_MIN)),
    "a payment of another bill": lambda: _hostile_bill(
        lambda b: setattr(b.payments[0].client_bill_payment, "bill_id", 1)
    ),
}


@pytest.mark.parametrize("case", sorted(ITEM_REFUSALS))
def test_a_backfill_of_a_hostile_bill_refuses_every_item_clearly_and_posts_nothing(
    stack: Stack, baseline: dict[str, Any], case: str
) -> None:
    bill = ITEM_REFUSALS[case]()
    try:
        answer = stack.stub.StartBackfill(
            backfill_pb2.StartBackfillRequest(connection_id=CONNECTION, bills=[bill]), timeout=30
        )
    except grpc.RpcError as err:
        clear_error(err)  # refusing the whole request is as good
        _unchanged(stack, baseline)
        return
    backfill = answer.backfill
    assert backfill.total == backfill.refused == 1 + len(bill.payments), backfill
    for item in backfill.items:
        assert item.outcome == backfill_pb2.BACKFILL_ITEM_OUTCOME_REFUSED and not item.posting
        clear_item_error(item.error)
    # Only the record of the refusal is new: nothing was posted, queued or sent.
    after = stack.snapshot()
    for table in ("backfill", "backfill_item"):
        del after["registry"][table]
        del baseline["registry"][table]
    assert after == baseline, "a refused backfill changed the registry or the Xero organisation"


# -- bytes that are messages of the wrong shape ------------------------------------------------


@pytest.mark.parametrize("method", sorted(POSTER.methods_by_name))
def test_fields_of_the_wrong_wire_type_are_invalid_arguments(
    stack: Stack, baseline: dict[str, Any], method: str
) -> None:
    descriptor = POSTER.methods_by_name[method]
    for payload in wrong_wire_type_payloads(descriptor.input_type):
        err = expect_error(lambda p=payload: call_raw(stack.channel, descriptor, p))  # type: ignore[misc]
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNDECODABLE_REQUEST"), payload
        number = payload[0] >> 3
        assert err.fields == (descriptor.input_type.fields_by_number[number].name,), payload
    _unchanged(stack, baseline)


# Which tests send each poster RPC named hostile field values, beyond the CASES table. The
# undecodable and wrong-wire-type tests cover every RPC from the descriptor, so they do not count.
DEDICATED: dict[str, tuple[Callable[..., None], ...]] = {
    "PostTransaction": (
        test_a_hostile_transaction_is_refused_clearly_by_every_posting_rpc,
        test_posting_to_an_unknown_or_malformed_connection_is_refused,
    ),
    "BatchPostTransactions": (
        test_every_item_of_a_batch_of_hostile_transactions_gets_its_own_clear_error,
        test_a_batch_beyond_the_limit_is_refused_whole,
    ),
    "StreamPostTransactions": (test_a_hostile_transaction_is_refused_clearly_by_every_posting_rpc,),
    "GetPosting": (test_a_malformed_or_unknown_posting_name_is_refused,),
    "WatchPosting": (test_a_malformed_or_unknown_posting_name_is_refused,),
    "ListPostings": (test_a_malformed_page_token_is_refused, test_a_negative_page_size_is_refused),
    "ListLinks": (
        test_a_malformed_page_token_is_refused,
        test_an_unknown_filter_value_is_refused_not_read_as_no_filter,
    ),
    "GetLink": (test_a_malformed_or_unknown_record_key_is_refused,),
    "CreateConnection": (test_a_malformed_connection_is_not_created,),
    "GetConnection": (test_reading_an_unknown_connection_is_refused,),
    "StartBackfill": (test_a_backfill_of_a_hostile_bill_refuses_every_item_clearly_and_posts_nothing,),
}


def test_every_poster_rpc_gets_named_hostile_requests() -> None:
    """A new RPC in the contract fails here until hostile cases for it are written."""
    rpcs = set(POSTER.methods_by_name)
    in_table = {case.rpc for case in CASES.values()}
    assert in_table | set(DEDICATED) == rpcs, f"no named hostile case: {sorted(rpcs - in_table - set(DEDICATED))}"
    assert not (in_table | set(DEDICATED)) - rpcs, "a case names an RPC the service does not have"


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
                call_raw(channel, method, payload)
            assert clear_error(raised.value).code == grpc.StatusCode.INVALID_ARGUMENT, method.name
    assert stack.snapshot() == before
