"""Named hostile requests to the poster's RPCs, each wrong in one way and each with the answer a
correct poster gives it. A request is built against the fuzz stack's facts (its connection, its
linked records, a fresh OAuth code), so every other field is one the poster would act on: a
request that is not refused shows up as a change in the registry or in Xero."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import grpc
from google.protobuf.message import Message
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import (
    backfill_pb2,
    connection_pb2,
    correction_pb2,
    drift_pb2,
    organisations_pb2,
    unlink_pb2,
)
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.type.v1 import date_pb2
from xerolink_mapper import samples

from tests.fuzz.hostile import CLEAR, HUGE, INT64_MAX, INT64_MIN, money, record

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
EDIT = correction_pb2.CORRECTION_INTENT_EDIT
OPEN = backfill_pb2.BILL_STATUS_OPEN
# Before the demo connection's connected_at (2026-01-01): a bill the backfill would post.
PRE_INTEGRATION = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)
REDIRECT = "https://firm.example/xero/callback"


@dataclass(frozen=True)
class Known:
    """What the stack holds: a connection with a linked bill (with a linked payment) and a linked
    trust receipt, and the emulator's app, which issues fresh authorisation codes."""

    connection_id: str
    bill: common_pb2.RecordKey
    payment: common_pb2.RecordKey
    receipt: common_pb2.RecordKey
    xero_base_url: str
    fresh_code: Callable[[], str]


Build = Callable[[Known], Message]


@dataclass(frozen=True)
class Hostile:
    rpc: str
    build: Build
    # The code a correct poster answers; None: any clear code.
    code: grpc.StatusCode | None = None
    # A field the BadRequest must name (itself, or an element or member of it).
    field: str = ""
    allowed: frozenset[grpc.StatusCode] = frozenset(CLEAR)


CASES: dict[str, Hostile] = {}


def _case(rpc: str, what: str, build: Build, code: grpc.StatusCode | None = None, field: str = "") -> None:
    name = f"{rpc}: {what}"
    assert name not in CASES, name
    CASES[name] = Hostile(rpc, build, code, field)


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


def _dated(tx: transaction_pb2.Transaction, when: datetime) -> transaction_pb2.Transaction:
    tx.header.posted_at.CopyFrom(samples.timestamp(when))
    tx.header.transaction_date.year, tx.header.transaction_date.month = when.year, when.month
    tx.header.transaction_date.day = when.day
    return tx


def open_bill(record_id: int = 7001, **changes: object) -> backfill_pb2.BackfillBill:
    """An open pre-integration bill the backfill would post, with one partial payment."""
    bill = _dated(samples.client_bill(record_id), PRE_INTEGRATION)
    bill.client_bill.bill_number = f"OLD-{record_id}"
    payment = samples.sample_transactions(record_id * 10)["client_bill_payment"]
    payment.header.id = record_id * 10 + 1
    payment.client_bill_payment.bill_id = record_id
    payment.client_bill_payment.amount.units = 10_000
    _dated(payment, PRE_INTEGRATION)
    due = bill.client_bill.totals.inclusive.units - 10_000
    message = backfill_pb2.BackfillBill(bill=bill, status=OPEN, total_due=money(due), payments=[payment])
    for name, value in changes.items():
        setattr(message, name, value)
    return message


def _with_due(units: int, currency: str = "AUD") -> backfill_pb2.BackfillBill:
    bill = open_bill()
    bill.total_due.units, bill.total_due.currency_code = units, currency
    return bill


def _with_payment(change: Callable[[transaction_pb2.Transaction], None]) -> backfill_pb2.BackfillBill:
    bill = open_bill()
    change(bill.payments[0])
    return bill


def _with_payments(count: int) -> backfill_pb2.BackfillBill:
    bill = open_bill()
    payment = bill.payments[0]
    bill.payments.extend(_copy_with_id(payment, payment.header.id + n) for n in range(1, count))
    return bill


def _copy_with_id(tx: transaction_pb2.Transaction, record_id: int) -> transaction_pb2.Transaction:
    copy = transaction_pb2.Transaction()
    copy.CopyFrom(tx)
    copy.header.id = record_id
    return copy


def _backfill(known: Known, *bills: backfill_pb2.BackfillBill, request_id: str = "") -> Message:
    # A well-formed bill goes with the hostile one: were the request not refused whole, it would
    # be posted to Xero and the snapshot would show it.
    return backfill_pb2.StartBackfillRequest(
        connection_id=known.connection_id, bills=[open_bill(7002), *bills], request_id=request_id
    )


# -- a wrong connection id, to every RPC that takes one ---------------------------------------

# RPC -> a request that would act on the connection it names (unlink and correct a linked bill,
# backfill a bill, re-map an account), so only the connection id is wrong.
BY_CONNECTION: dict[str, Callable[[Known, str], Message]] = {
    "UnlinkLinks": lambda k, c: unlink_pb2.UnlinkLinksRequest(
        connection_id=c, records=[k.bill], confirm=True, cascade=True
    ),
    "ListPostings": lambda k, c: poster_pb2.ListPostingsRequest(connection_id=c),
    "ListLinks": lambda k, c: poster_pb2.ListLinksRequest(connection_id=c),
    "ListOrphans": lambda k, c: unlink_pb2.ListOrphansRequest(connection_id=c),
    "ListDrift": lambda k, c: drift_pb2.ListDriftRequest(connection_id=c),
    "Reconcile": lambda k, c: drift_pb2.ReconcileRequest(
        connection_id=c,
        from_date=date_pb2.Date(year=2026, month=3, day=1),
        to_date=date_pb2.Date(year=2026, month=3, day=31),
    ),
    "RunPreflight": lambda k, c: backfill_pb2.RunPreflightRequest(connection_id=c, division_ids=[1]),
    "StartBackfill": lambda k, c: backfill_pb2.StartBackfillRequest(connection_id=c, bills=[open_bill()]),
    "PlanCorrection": lambda k, c: correction_pb2.PlanCorrectionRequest(connection_id=c, record=k.bill, intent=EDIT),
    "ApplyCorrection": lambda k, c: correction_pb2.ApplyCorrectionRequest(connection_id=c, record=k.bill, intent=EDIT),
    "GetCorrection": lambda k, c: correction_pb2.GetCorrectionRequest(connection_id=c, record=k.bill),
    "RefreshConnection": lambda k, c: connection_pb2.RefreshConnectionRequest(connection_id=c),
    "DisconnectConnection": lambda k, c: connection_pb2.DisconnectConnectionRequest(connection_id=c),
    "GetAllocationDiscrepancies": lambda k, c: connection_pb2.GetAllocationDiscrepanciesRequest(
        connection_id=c, refresh_chart=True
    ),
    "RemapAccounts": lambda k, c: connection_pb2.RemapAccountsRequest(
        connection_id=c, account_allocation={"trust_bank": "094"}
    ),
    "RemapTaxTypes": lambda k, c: connection_pb2.RemapTaxTypesRequest(connection_id=c, tax_code_map={"GST": "OUTPUT"}),
    "CloseMatter": lambda k, c: organisations_pb2.CloseMatterRequest(connection_id=c, action_id=7001),
    "ListMatterOptions": lambda k, c: organisations_pb2.ListMatterOptionsRequest(connection_id=c),
    "UpdateConnectionRouting": lambda k, c: organisations_pb2.UpdateConnectionRoutingRequest(
        connection_id=c, routing=organisations_pb2.ConnectionRouting(trust_connection_id=k.connection_id)
    ),
}


def _connect(known: Known, fields: dict[str, object] | None = None) -> connection_pb2.ConnectOrganisationRequest:
    """A request that connects a new organisation with a fresh code, changed by `fields`."""
    request = connection_pb2.ConnectOrganisationRequest(
        connection_id="fuzz-new-org",
        authorization_code=known.fresh_code(),
        redirect_uri=REDIRECT,
        xero_base_url=known.xero_base_url,
        mapping_context=samples.demo_context(with_chart=False),
    )
    for name, value in (fields or {}).items():
        if value is None:
            request.ClearField(name)  # type: ignore[arg-type]
        else:
            setattr(request, name, value)
    return request


def _to(build: Callable[[Known, str], Message], connection_id: Callable[[Known], str]) -> Build:
    return lambda k: build(k, connection_id(k))


def _connection_cases() -> None:
    for rpc, build in BY_CONNECTION.items():
        _case(rpc, "no connection id", _to(build, lambda k: ""), INVALID, "connection_id")
        _case(rpc, "unknown connection", _to(build, lambda k: "no-such-firm"), NOT_FOUND)
        _case(rpc, "connection id of a megabyte", _to(build, lambda k: HUGE))
        _case(rpc, "connection id with NUL", _to(build, lambda k: k.connection_id + "\x00"))
        _case(rpc, "path-like connection id", _to(build, lambda k: "../" + k.connection_id))
        _case(rpc, "connection id ending in a newline", _to(build, lambda k: k.connection_id + "\n"))
        _case(rpc, "connection id in other case", _to(build, lambda k: k.connection_id.upper()), NOT_FOUND)
    # For ConnectOrganisation an unknown id is a new connection: only malformed ones are hostile.
    _case(
        "ConnectOrganisation",
        "no connection id",
        lambda k: _connect(k, {"connection_id": ""}),
        INVALID,
        "connection_id",
    )
    _case(
        "ConnectOrganisation",
        "connection id of a megabyte",
        lambda k: _connect(k, {"connection_id": HUGE}),
        INVALID,
        "connection_id",
    )
    _case(
        "ConnectOrganisation",
        "connection id with NUL",
        lambda k: _connect(k, {"connection_id": k.connection_id + "\x00"}),
        INVALID,
        "connection_id",
    )
    _case(
        "ConnectOrganisation",
        "connection id ending in a newline",
        lambda k: _connect(k, {"connection_id": "fuzz-new-org\n"}),
        INVALID,
        "connection_id",
    )
    _case(
        "ConnectOrganisation",
        "path-like connection id",
        lambda k: _connect(k, {"connection_id": "../" + k.connection_id}),
        INVALID,
        "connection_id",
    )


_connection_cases()


# -- PostTransaction: the request's own fields (its transactions: test_poster_hostile.py) -------


def _post(known: Known, request_id: str) -> Message:
    # A bill the poster would post: only the request id is wrong.
    return poster_pb2.PostTransactionRequest(
        connection_id=known.connection_id, transaction=samples.client_bill(7200), request_id=request_id
    )


_case("PostTransaction", "request id of a megabyte", partial(_post, request_id=HUGE), INVALID, "request_id")
_case("PostTransaction", "request id with NUL", partial(_post, request_id="request\x00one"), INVALID, "request_id")


# -- CreateConnection: a context or a URL the connection could never use -----------------------
# (docs/evidence.md, found 5: these were stored, and every post of the connection then failed)


def _create(known: Known, base_url: str = "", **context: int) -> Message:
    connection = poster_pb2.Connection(
        connection_id="fuzz-created",
        xero_base_url=base_url or known.xero_base_url,
        xero_tenant_id="5b4a1d5e-1111-2222-3333-444455556666",
        access_token="token",
        mapping_context=samples.demo_context(),
    )
    for name, value in context.items():
        setattr(connection.mapping_context, name, value)
    return poster_pb2.CreateConnectionRequest(connection=connection)


_CONTEXT = "connection.mapping_context"
_case("CreateConnection", "unknown profile", partial(_create, profile=7), INVALID, f"{_CONTEXT}.profile")
_case("CreateConnection", "negative profile", partial(_create, profile=-1), INVALID, f"{_CONTEXT}.profile")
_case(
    "CreateConnection",
    "unknown accounting method",
    partial(_create, accounting_method=42),
    INVALID,
    f"{_CONTEXT}.accounting_method",
)
_case(
    "CreateConnection",
    "base url of a megabyte",
    partial(_create, base_url="https://" + HUGE),
    INVALID,
    "connection.xero_base_url",
)


# -- UnlinkLinks --------------------------------------------------------------------------------


def _unlink(known: Known, *records: common_pb2.RecordKey, **fields: object) -> Message:
    request = unlink_pb2.UnlinkLinksRequest(
        connection_id=known.connection_id, records=list(records), confirm=True, cascade=True
    )
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    return request


_case("UnlinkLinks", "no records", _unlink, INVALID, "records")
_case(
    "UnlinkLinks",
    "100,000 records",
    lambda k: _unlink(k, *[record(BILL, 10_000 + i) for i in range(100_000)]),
    INVALID,
    "records",
)
_case(
    "UnlinkLinks",
    "a record without kind or id",
    lambda k: _unlink(k, k.bill, common_pb2.RecordKey()),
    INVALID,
    "records",
)
_case("UnlinkLinks", "zero id", lambda k: _unlink(k, k.bill, record(BILL, 0)), INVALID, "records")
_case("UnlinkLinks", "negative id", lambda k: _unlink(k, k.bill, record(BILL, -1001)), INVALID, "records")
_case("UnlinkLinks", "int64 min id", lambda k: _unlink(k, k.bill, record(BILL, INT64_MIN)), INVALID, "records")
_case("UnlinkLinks", "unknown kind", lambda k: _unlink(k, k.bill, record(999, k.bill.id)), INVALID, "records")
_case("UnlinkLinks", "negative kind", lambda k: _unlink(k, k.bill, record(-1, k.bill.id)), INVALID, "records")
_case("UnlinkLinks", "never posted", lambda k: _unlink(k, k.bill, record(BILL, INT64_MAX)))
_case("UnlinkLinks", "not confirmed", lambda k: _unlink(k, k.bill, confirm=False), INVALID, "confirm")
_case(
    "UnlinkLinks",
    "a name that is not a link name",
    lambda k: _unlink(k, names=["links/client-bill/1"]),
    INVALID,
    "names",
)
_case(
    "UnlinkLinks",
    "a name of another connection",
    lambda k: _unlink(k, names=[f"connections/other-{k.connection_id}/links/{k.bill.kind}/{k.bill.id}"]),
    INVALID,
    "names",
)
_case("UnlinkLinks", "a name of a megabyte", lambda k: _unlink(k, names=[HUGE]), INVALID, "names")
_case(
    "UnlinkLinks",
    "10,000 names",
    lambda k: _unlink(k, names=[f"connections/{k.connection_id}/links/client-bill/{i}" for i in range(1, 10_001)]),
    INVALID,
    "records",
)
_case("UnlinkLinks", "reason of a megabyte", lambda k: _unlink(k, k.bill, reason=HUGE), INVALID, "reason")
# On the trust receipt, which has nothing depending on it: only the reason is wrong.
_case("UnlinkLinks", "reason with NUL", lambda k: _unlink(k, k.receipt, reason="reissued\x00"), INVALID, "reason")
_case(
    "UnlinkLinks",
    "a bill with a linked payment, without cascade",
    lambda k: _unlink(k, k.bill, cascade=False),
    PRECONDITION,
)


# -- CloseMatter and ListMatterOptions ----------------------------------------------------------


def _close(known: Known, action_id: int) -> Message:
    return organisations_pb2.CloseMatterRequest(connection_id=known.connection_id, action_id=action_id)


def _options(known: Known, **fields: object) -> Message:
    return organisations_pb2.ListMatterOptionsRequest(connection_id=known.connection_id, **fields)  # type: ignore[arg-type]


_case("CloseMatter", "no matter", lambda k: _close(k, 0), INVALID, "action_id")
_case("CloseMatter", "a negative matter", lambda k: _close(k, -7001), INVALID, "action_id")
_case("CloseMatter", "int64 min matter", lambda k: _close(k, -(2**63)), INVALID, "action_id")
_case("ListMatterOptions", "negative page size", lambda k: _options(k, page_size=-1), INVALID, "page_size")
for _index, _bad in enumerate(BAD_TOKENS):
    _case("ListMatterOptions", f"bad page token {_index}", partial(_options, page_token=_bad), INVALID, "page_token")


# -- UpdateConnectionRouting --------------------------------------------------------------------


def _route(known: Known, trust: str = "", divisions: dict[int, str] | None = None) -> Message:
    return organisations_pb2.UpdateConnectionRoutingRequest(
        connection_id=known.connection_id,
        routing=organisations_pb2.ConnectionRouting(trust_connection_id=trust, division_connections=divisions),
    )


TRUST_FIELD = "routing.trust_connection_id"
_case("UpdateConnectionRouting", "an unknown trust connection", lambda k: _route(k, "nobody"), INVALID, TRUST_FIELD)
_case("UpdateConnectionRouting", "itself as trust", lambda k: _route(k, k.connection_id), INVALID, TRUST_FIELD)
_case("UpdateConnectionRouting", "trust id with NUL", lambda k: _route(k, "trust\x00"), INVALID, TRUST_FIELD)
_case("UpdateConnectionRouting", "trust id of a megabyte", lambda k: _route(k, HUGE), INVALID, TRUST_FIELD)
_case(
    "UpdateConnectionRouting",
    "division 0",
    lambda k: _route(k, divisions={0: "nobody"}),
    INVALID,
    "routing.division_connections[0]",
)
_case(
    "UpdateConnectionRouting",
    "int64 min division",
    lambda k: _route(k, divisions={-(2**63): "nobody"}),
    INVALID,
    f"routing.division_connections[{-(2**63)}]",
)
_case(
    "UpdateConnectionRouting",
    "10,000 divisions",
    lambda k: _route(k, divisions={i: f"nobody-{i}" for i in range(1, 10_001)}),
    INVALID,
    "routing.division_connections[1]",
)


# -- ListOrphans --------------------------------------------------------------------------------


def _orphans(known: Known, **fields: object) -> Message:
    request = unlink_pb2.ListOrphansRequest(connection_id=known.connection_id)
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


_case("ListOrphans", "unknown object type", lambda k: _orphans(k, type=99), INVALID, "type")
_case("ListOrphans", "negative object type", lambda k: _orphans(k, type=-1), INVALID, "type")
_case("ListOrphans", "an empty record", lambda k: _orphans(k, record=common_pb2.RecordKey()), INVALID, "record")
_case("ListOrphans", "record with a negative id", lambda k: _orphans(k, record=record(BILL, -1)), INVALID, "record")
_case("ListOrphans", "record of an unknown kind", lambda k: _orphans(k, record=record(999, 1001)), INVALID, "record")
_case("ListOrphans", "negative page size", lambda k: _orphans(k, page_size=-1), INVALID, "page_size")
_case("ListOrphans", "int32 min page size", lambda k: _orphans(k, page_size=-(2**31)), INVALID, "page_size")
for _index, _bad in enumerate(BAD_TOKENS):
    _case("ListOrphans", f"bad page token {_index}", partial(_orphans, page_token=_bad), INVALID, "page_token")
_case(
    "ListOrphans",
    "a page token of other filters",
    lambda k: _orphans(k, page_token=_token("1:CLIENT_BILL/1|0")),
    INVALID,
    "page_token",
)


# -- ListDrift ----------------------------------------------------------------------------------


def _drift(known: Known, **fields: object) -> Message:
    return drift_pb2.ListDriftRequest(connection_id=known.connection_id, **fields)  # type: ignore[arg-type]


_case("ListDrift", "unknown state", lambda k: _drift(k, state=99), INVALID, "state")
_case("ListDrift", "negative state", lambda k: _drift(k, state=-1), INVALID, "state")
_case("ListDrift", "unspecified kind", lambda k: _drift(k, kinds=[0]), INVALID, "kinds[0]")
_case("ListDrift", "unknown kind", lambda k: _drift(k, kinds=[1, 2**31 - 1]), INVALID, "kinds[1]")
_case("ListDrift", "a link that is no link name", lambda k: _drift(k, link=HUGE), INVALID, "link")
_case(
    "ListDrift",
    "a link of another connection",
    lambda k: _drift(k, link="connections/x/links/client-bill/1"),
    INVALID,
    "link",
)
_case("ListDrift", "negative page size", lambda k: _drift(k, page_size=-1), INVALID, "page_size")
for _index, _bad in enumerate(BAD_TOKENS):
    _case("ListDrift", f"bad page token {_index}", partial(_drift, page_token=_bad), INVALID, "page_token")


# -- ResolveDrift -------------------------------------------------------------------------------

ACCEPT_XERO = drift_pb2.DRIFT_RESOLUTION_ACCEPT_XERO
BAD_DRIFT_NAMES = {
    "no name": "",
    "prefix only": "connections/{c}/drifts/",
    "no connection": "connections//drifts/1",
    "wrong collection": "connections/{c}/links/1",
    "drift id zero": "connections/{c}/drifts/0",
    "negative drift id": "connections/{c}/drifts/-1",
    "drift id beyond int64": "connections/{c}/drifts/" + "9" * 19,
    "drift id of a megabyte": "connections/{c}/drifts/" + "1" * 1_000_000,
    "drift id with NUL": "connections/{c}/drifts/1\x00",
    "path-like name": "connections/{c}/drifts/../1",
}


def _resolve(known: Known, name: str = "connections/{c}/drifts/1", **fields: object) -> Message:
    fields.setdefault("resolution", ACCEPT_XERO)
    return drift_pb2.ResolveDriftRequest(name=name.replace("{c}", known.connection_id), **fields)  # type: ignore[arg-type]


for _what, _value in BAD_DRIFT_NAMES.items():
    _case("ResolveDrift", _what, partial(_resolve, name=_value), INVALID, "name")
for _what, _number in {"unspecified": 0, "UNLINKED": 3, "XERO_RESTORED": 4, "unknown": 99, "negative": -1}.items():
    _case("ResolveDrift", f"{_what} resolution", partial(_resolve, resolution=_number), INVALID, "resolution")
_case("ResolveDrift", "a note of 1001 characters", partial(_resolve, note="n" * 1001), INVALID, "note")
_case("ResolveDrift", "a note of a megabyte", partial(_resolve, note=HUGE), INVALID, "note")
_case("ResolveDrift", "an unknown drift", partial(_resolve, name="connections/{c}/drifts/999999999"), NOT_FOUND)
_case("ResolveDrift", "a drift of an unknown connection", partial(_resolve, name="connections/x/drifts/1"), NOT_FOUND)


# -- Reconcile ----------------------------------------------------------------------------------


def _day(year: int, month: int, day: int) -> date_pb2.Date:
    return date_pb2.Date(year=year, month=month, day=day)


def _reconcile(known: Known, **fields: object) -> Message:
    fields.setdefault("from_date", _day(2026, 3, 1))
    fields.setdefault("to_date", _day(2026, 3, 31))
    return drift_pb2.ReconcileRequest(connection_id=known.connection_id, **fields)  # type: ignore[arg-type]


def _without(field: str) -> Build:
    def build(known: Known) -> Message:
        request = _reconcile(known)
        request.ClearField(field)
        return request

    return build


_case("Reconcile", "no from_date", _without("from_date"), INVALID, "from_date")
_case("Reconcile", "no to_date", _without("to_date"), INVALID, "to_date")
for _what, _bad_day in {
    "all zero": _day(0, 0, 0),
    "month 13": _day(2026, 13, 1),
    "30 February": _day(2026, 2, 30),
    "negative year": _day(-1, 1, 1),
    "year beyond the calendar": _day(10000, 1, 1),
    "year of int32's end": _day(2**31 - 1, 12, 31),
}.items():
    _case("Reconcile", f"from_date {_what}", partial(_reconcile, from_date=_bad_day), INVALID, "from_date")
    _case("Reconcile", f"to_date {_what}", partial(_reconcile, to_date=_bad_day), INVALID, "to_date")
_case("Reconcile", "to_date before from_date", partial(_reconcile, to_date=_day(2026, 2, 28)), INVALID, "to_date")
_case("Reconcile", "the calendar's first day", partial(_reconcile, from_date=_day(1, 1, 1)), INVALID, "from_date")
_case("Reconcile", "to the calendar's last day", partial(_reconcile, to_date=_day(9999, 12, 31)), INVALID, "to_date")
_case("Reconcile", "eleven years", partial(_reconcile, to_date=_day(2037, 3, 1)), INVALID, "to_date")


# -- RunPreflight -------------------------------------------------------------------------------


def _preflight(known: Known, division_ids: list[int]) -> Message:
    return backfill_pb2.RunPreflightRequest(connection_id=known.connection_id, division_ids=division_ids)


_case("RunPreflight", "zero division id", lambda k: _preflight(k, [1, 0]), INVALID, "division_ids")
_case("RunPreflight", "negative division id", lambda k: _preflight(k, [1, -2]), INVALID, "division_ids")
_case("RunPreflight", "int64 min division id", lambda k: _preflight(k, [INT64_MIN, 1]), INVALID, "division_ids")
_case("RunPreflight", "100,000 division ids", lambda k: _preflight(k, list(range(1, 100_001))), INVALID, "division_ids")


# -- StartBackfill ------------------------------------------------------------------------------

_case(
    "StartBackfill",
    "no bills",
    lambda k: backfill_pb2.StartBackfillRequest(connection_id=k.connection_id),
    INVALID,
    "bills",
)
_case(
    "StartBackfill",
    "1,001 bills",
    lambda k: backfill_pb2.StartBackfillRequest(
        connection_id=k.connection_id, bills=[open_bill(8000 + i) for i in range(1001)]
    ),
    INVALID,
    "bills",
)
_case(
    "StartBackfill",
    "a bill with 5,000 payments",
    lambda k: _backfill(k, _with_payments(5000)),
    INVALID,
    "bills",
)
_case("StartBackfill", "unknown bill status", lambda k: _backfill(k, open_bill(status=42)), INVALID, "bills[1].status")
_case("StartBackfill", "negative bill status", lambda k: _backfill(k, open_bill(status=-1)), INVALID, "bills[1].status")
_case("StartBackfill", "negative total due", lambda k: _with_due_request(k, -100), INVALID, "bills[1].total_due")
_case("StartBackfill", "int64 min total due", lambda k: _with_due_request(k, INT64_MIN), INVALID, "bills[1].total_due")
_case(
    "StartBackfill",
    "int64 max total due",
    lambda k: _with_due_request(k, INT64_MAX),
    INVALID,
    "bills[1].total_due",
)
_case(
    "StartBackfill",
    "total due not an ISO currency",
    lambda k: _backfill(k, _with_due(5000, "A$D")),
    INVALID,
    "bills[1].total_due",
)
_case(
    "StartBackfill",
    "total due currency ending in a newline",
    lambda k: _backfill(k, _with_due(5000, "AUD\n")),
    INVALID,
    "bills[1].total_due",
)
_case(
    "StartBackfill",
    "total due of a megabyte currency",
    lambda k: _backfill(k, _with_due(5000, HUGE)),
    INVALID,
    "bills[1].total_due",
)
_case(
    "StartBackfill",
    "a payment with no id",
    lambda k: _backfill(k, _with_payment(lambda p: p.header.ClearField("id"))),
    INVALID,
    "bills[1].payments[0]",
)
_case(
    "StartBackfill",
    "request id with NUL",
    lambda k: _backfill(k, request_id="backfill\x00one"),
    INVALID,
    "request_id",
)
_case(
    "StartBackfill",
    "request id of a megabyte",
    lambda k: _backfill(k, request_id=HUGE),
    INVALID,
    "request_id",
)


def _with_due_request(known: Known, units: int) -> Message:
    return _backfill(known, _with_due(units))


# -- GetBackfill, WatchBackfill -----------------------------------------------------------------

BAD_BACKFILL_NAMES = {
    "no name": "",
    "prefix only": "backfills/",
    "wrong collection": "backfill/abc",
    "leading slash": "/backfills/abc",
    "id of a megabyte": "backfills/" + HUGE,
    "path-like id": "backfills/../../etc/passwd",
    "id with NUL": "backfills/\x00",
}
UNKNOWN_BACKFILL_NAMES = {"unknown id": "backfills/" + "0" * 32}


def _by_name(make: Callable[..., Message], name: str) -> Build:
    return lambda k: make(name=name)


for _what, _value in BAD_BACKFILL_NAMES.items():
    _case("GetBackfill", _what, _by_name(backfill_pb2.GetBackfillRequest, _value), INVALID, "name")
    _case("WatchBackfill", _what, _by_name(backfill_pb2.WatchBackfillRequest, _value), INVALID, "name")
for _what, _value in UNKNOWN_BACKFILL_NAMES.items():
    _case("GetBackfill", _what, _by_name(backfill_pb2.GetBackfillRequest, _value), NOT_FOUND)
    _case("WatchBackfill", _what, _by_name(backfill_pb2.WatchBackfillRequest, _value), NOT_FOUND)


# -- PlanCorrection, ApplyCorrection, GetCorrection ---------------------------------------------

BAD_KEYS: dict[str, Callable[[Known], common_pb2.RecordKey]] = {
    "no record": lambda k: common_pb2.RecordKey(),
    "record without kind": lambda k: record(0, k.bill.id),
    "record with zero id": lambda k: record(BILL, 0),
    "record with negative id": lambda k: record(BILL, -k.bill.id),
    "record with int64 min id": lambda k: record(BILL, INT64_MIN),
    "record of an unknown kind": lambda k: record(999, k.bill.id),
    "record of a negative kind": lambda k: record(-4, k.bill.id),
}
CORRECTION_REQUESTS: dict[str, Callable[..., Message]] = {
    "PlanCorrection": correction_pb2.PlanCorrectionRequest,
    "ApplyCorrection": correction_pb2.ApplyCorrectionRequest,
}


def _correcting(
    make: Callable[..., Message], key: Callable[[Known], common_pb2.RecordKey], intent: int | None = EDIT
) -> Build:
    def build(known: Known) -> Message:
        fields: dict[str, object] = {"connection_id": known.connection_id, "record": key(known)}
        if intent is not None:
            fields["intent"] = intent
        return make(**fields)

    return build


for _rpc, _make in CORRECTION_REQUESTS.items():
    for _what, _key in BAD_KEYS.items():
        _case(_rpc, _what, _correcting(_make, _key), INVALID, "record")
    _case(_rpc, "never posted record", _correcting(_make, lambda k: record(BILL, INT64_MAX)), NOT_FOUND)
    # On the linked bill: were the intent read as anything, the bill would be corrected.
    for _what, _intent in (("no intent", 0), ("unknown intent", 99), ("negative intent", -1)):
        _case(_rpc, _what, _correcting(_make, lambda k: k.bill, _intent), INVALID, "intent")
for _what, _key in BAD_KEYS.items():
    _case("GetCorrection", _what, _correcting(correction_pb2.GetCorrectionRequest, _key, None), INVALID, "record")
_case(
    "GetCorrection",
    "a record never corrected",
    lambda k: correction_pb2.GetCorrectionRequest(connection_id=k.connection_id, record=k.bill),
    NOT_FOUND,
)


# -- ConnectOrganisation ------------------------------------------------------------------------
# Each carries a fresh code the emulator would exchange: a request refused before the exchange
# leaves the code unspent and no tokens granted (the snapshot counts grants).

_CONNECT: dict[str, tuple[dict[str, object], str]] = {
    "no authorization code": ({"authorization_code": ""}, "authorization_code"),
    "authorization code of a megabyte": ({"authorization_code": HUGE}, "authorization_code"),
    "redirect uri not a URL": ({"redirect_uri": "not a url"}, "redirect_uri"),
    "redirect uri of javascript": ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
    "redirect uri with no host": ({"redirect_uri": "https://"}, "redirect_uri"),
    "redirect uri of a megabyte": ({"redirect_uri": "https://firm.example/" + HUGE}, "redirect_uri"),
    "base url of a file": ({"xero_base_url": "file:///etc/passwd"}, "xero_base_url"),
    "base url of a megabyte": ({"xero_base_url": "https://" + HUGE}, "xero_base_url"),
    "tenant id of a megabyte": ({"xero_tenant_id": HUGE}, "xero_tenant_id"),
    "app name of a megabyte": ({"xero_app": HUGE}, "xero_app"),
    "redirect uri with NUL": ({"redirect_uri": REDIRECT + "\x00"}, "redirect_uri"),
    "base url with NUL": ({"xero_base_url": "https://api.xero.com\x00"}, "xero_base_url"),
    "no mapping context": ({"mapping_context": None}, "mapping_context"),
}
for _what, (_fields, _field) in _CONNECT.items():
    _case("ConnectOrganisation", _what, partial(_connect, fields=_fields), INVALID, _field)


def _connect_with_context(known: Known, **changes: object) -> Message:
    request = _connect(known)
    for name, value in changes.items():
        setattr(request.mapping_context, name, value)
    return request


_case(
    "ConnectOrganisation",
    "unknown profile",
    lambda k: _connect_with_context(k, profile=7),
    INVALID,
    "mapping_context.profile",
)
_case(
    "ConnectOrganisation",
    "unknown accounting method",
    lambda k: _connect_with_context(k, accounting_method=42),
    INVALID,
    "mapping_context.accounting_method",
)
_case(
    "ConnectOrganisation",
    "negative division",
    lambda k: _connect_with_context(k, linked_division_id=-1),
    INVALID,
    "mapping_context.linked_division_id",
)
_case("ConnectOrganisation", "an app not configured", lambda k: _connect(k, {"xero_app": "nope"}), PRECONDITION)
_case(
    "ConnectOrganisation",
    "a code Xero never issued",
    lambda k: _connect(k, {"authorization_code": "forged-code"}),
    INVALID,
    "authorization_code",
)


# -- RefreshConnection, DisconnectConnection, GetAllocationDiscrepancies ------------------------

_case(
    "RefreshConnection",
    "a connection with fixed tokens",
    lambda k: connection_pb2.RefreshConnectionRequest(connection_id=k.connection_id),
    PRECONDITION,
)


# -- RemapAccounts ------------------------------------------------------------------------------


def _remap(known: Known, allocation: dict[str, str], validate_only: bool = False) -> Message:
    return connection_pb2.RemapAccountsRequest(
        connection_id=known.connection_id, account_allocation=allocation, validate_only=validate_only
    )


_REMAP: dict[str, dict[str, str]] = {
    "nothing to remap": {},
    "empty code": {"trust_bank": ""},
    "code of a megabyte": {"trust_bank": HUGE},
    "code not in the chart": {"trust_bank": "999"},
    "code with NUL": {"trust_bank": "09\x001"},
    "empty function": {"": "094"},
    "function of a megabyte": {HUGE: "094"},
    "unknown function": {"trust_bnak": "094"},
    "100,000 functions": {f"function_{i}": "094" for i in range(100_000)},
    "one good, one empty": {"office_bank": "094", "trust_bank": ""},
}
for _what, _allocation in _REMAP.items():
    _case("RemapAccounts", _what, partial(_remap, allocation=_allocation), INVALID, "account_allocation")
    _case(
        "RemapAccounts",
        f"{_what}, validate only",
        partial(_remap, allocation=_allocation, validate_only=True),
        INVALID,
        "account_allocation",
    )


# -- RemapTaxTypes ------------------------------------------------------------------------------


def _remap_tax(known: Known, sales: dict[str, str], validate_only: bool = False) -> Message:
    return connection_pb2.RemapTaxTypesRequest(
        connection_id=known.connection_id, tax_code_map=sales, validate_only=validate_only
    )


_REMAP_TAX: dict[str, dict[str, str]] = {
    "nothing to remap": {},
    "empty tax type": {"GST": ""},
    "tax type of a megabyte": {"GST": HUGE},
    "tax type with NUL": {"GST": "OUT\x00PUT"},
    "empty tax code": {"": "OUTPUT"},
    "tax code of a megabyte": {HUGE: "OUTPUT"},
    "100,000 tax codes": {f"CODE{i}": "OUTPUT" for i in range(100_000)},
    "one good, one empty": {"GST": "OUTPUT", "FRE": ""},
}
for _what, _sales in _REMAP_TAX.items():
    _case("RemapTaxTypes", _what, partial(_remap_tax, sales=_sales), INVALID, "tax_code_map")
    _case(
        "RemapTaxTypes",
        f"{_what}, validate only",
        partial(_remap_tax, sales=_sales, validate_only=True),
        INVALID,
        "tax_code_map",
    )
