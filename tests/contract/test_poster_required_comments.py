"""Every field comment of the poster's request messages that says a field is required, or
optional, agrees with what a real poster answers when the field is cleared.

The walk: against a poster on loopback with the Xero emulator, for each RPC a table of valid
requests. Each field a valid request sets is cleared in turn and the request sent. The poster
requires the field when it answers INVALID_ARGUMENT (or NOT_FOUND) with a field violation naming
it. The comment claims:
  "Required"                          required;
  "Required unless <field> is set"    required when that field is not set in the request;
  "Required (true) when <f> is false" required when that field is not set in the request;
  "Optional" / "optional" / "Output only"   not required.
  "Required for a new connection"     required (the walk connects new connections only).
Every walked field must make one claim. The body a request carries (CreateConnectionRequest's
connection) is walked field by field too. ConnectOrganisation is walked through the emulator's
consent flow: every request sent gets a fresh organisation, app and code (Consents)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from xero_emulator import EmulatorServer
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import (
    backfill_pb2,
    connection_pb2,
    correction_pb2,
    drift_pb2,
    organisations_pb2,
    unlink_pb2,
)
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples
from xerolink_poster.adapters.xero_identity import XeroApps

from tests.contract.proto_comments import field_comments
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.integration.connection_helpers import connect_request, write_apps

PACKAGE = "xerolink.poster.v1"
SERVICE = poster_pb2.DESCRIPTOR.services_by_name["PosterService"]
REQUIRED = re.compile(r"\bRequired\b")
NOT_REQUIRED = re.compile(r"\b(Optional|optional|Output only)\b")
CONDITION = re.compile(r"\bRequired (?:unless (\w+) is set|(?:\(true\) )?when (\w+) is false)\b")
REFUSALS = (ErrorCode.INVALID_ARGUMENT, ErrorCode.NOT_FOUND)

# Fields a valid request sets that the walk never clears, and why; their comments are still read.
KEPT = {("ConnectOrganisationRequest", "xero_base_url"): "without it the poster would call the real Xero"}


@pytest.fixture(scope="module")
def comments(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    return field_comments(PACKAGE, tmp_path_factory.mktemp("image"))


def _is_set(message: Message, field: str) -> bool:
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    if descriptor.is_repeated:
        return len(getattr(message, field)) > 0
    if descriptor.message_type is not None:
        return message.HasField(field)
    return bool(getattr(message, field))


def claim(comment: str, holder: Message) -> bool | None:
    """True: the comment says the field is required in this request; False: not required;
    None: the comment says neither."""
    if REQUIRED.search(comment):
        condition = CONDITION.search(comment)
        if condition is None:
            return True
        other = condition.group(1) or condition.group(2)
        return not _is_set(holder, other)
    if NOT_REQUIRED.search(comment):
        return False
    return None


def call(stub: poster_grpc.PosterServiceStub, rpc: str, request: Message) -> XerolinkError | None:
    """The poster's error for the request, or None when it answers (a stream: its first answer)."""
    method = SERVICE.methods_by_name[rpc]
    stubbed = getattr(stub, rpc)
    try:
        if method.client_streaming:
            for _ in stubbed(iter([request]), timeout=30):
                pass
        elif method.server_streaming:
            answers = stubbed(request, timeout=30)
            next(answers)
            answers.cancel()
        else:
            stubbed(request, timeout=30)
    except grpc.RpcError as err:
        return from_rpc_error(err)
    return None


def names_field(error: XerolinkError | None, path: str) -> bool:
    if error is None or error.code not in REFUSALS:
        return False
    return any(v.field == path or v.field.startswith((f"{path}.", f"{path}[")) for v in error.field_violations)


Holder = Callable[[Message], Message]


def _holders(request: Message) -> Iterator[tuple[str, Holder]]:
    """The request itself, and a poster message it carries as its body (e.g. the connection)."""

    def body(name: str) -> Holder:
        return lambda r: getattr(r, name)

    yield "", lambda r: r
    for field in request.DESCRIPTOR.fields:
        nested = field.message_type
        if field.is_repeated or nested is None or nested.file.package != PACKAGE or not request.HasField(field.name):
            continue
        yield f"{field.name}.", body(field.name)


class Consents:
    """A fresh consent for every ConnectOrganisation the walk sends, as the emulator's consent page
    gives one: codes are single-use and an organisation has one live connection, so each request
    gets a new organisation with its own app (written to the apps file as "default" and "walked"),
    its code, its tenant id and a new connection id, in the fields the request sets."""

    def __init__(self, emulator: EmulatorServer, apps_file: Path) -> None:
        self.emulator = emulator
        self.apps_file = apps_file
        self.count = 0

    def fresh(self, request: Message) -> Message:
        assert isinstance(request, connection_pb2.ConnectOrganisationRequest)
        self.count += 1
        org = self.emulator.create_organisation(f"Walked organisation {self.count}")
        write_apps(self.apps_file, org, self.emulator, names=("default", WALKED_APP))
        consented = connection_pb2.ConnectOrganisationRequest()
        consented.CopyFrom(request)
        for field, value in (
            ("connection_id", f"walked-{self.count}"),
            ("authorization_code", org["authorization_code"]),
            ("xero_tenant_id", org["tenant_id"]),
        ):
            if getattr(consented, field):
                setattr(consented, field, value)
        return consented


WALKED_APP = "walked"


@dataclass
class World:
    stub: poster_grpc.PosterServiceStub
    emulator: EmulatorServer
    connection_id: str
    posting: poster_pb2.Posting
    other: poster_pb2.Posting
    consents: Consents

    def prepare(self, rpc: str, request: Message) -> Message:
        """The request as sent: a ConnectOrganisation gets a fresh consent."""
        return self.consents.fresh(request) if rpc == "ConnectOrganisation" else request


def _timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def _valid_requests(world: World) -> Iterator[tuple[str, Message]]:
    """(rpc, a valid request) in the order they are walked: requests that change what later ones
    read (unlink, correction, disconnect) come after the readers."""
    stub, cid = world.stub, world.connection_id
    record, other = world.posting.record, world.other.record
    bill = samples.client_bill(1001)
    link = world.posting.link
    yield (
        "PostTransaction",
        poster_pb2.PostTransactionRequest(connection_id=cid, transaction=samples.client_bill(2001), request_id="r-1"),
    )
    yield (
        "BatchPostTransactions",
        poster_pb2.BatchPostTransactionsRequest(connection_id=cid, transactions=[samples.client_bill(2002)]),
    )
    yield (
        "StreamPostTransactions",
        poster_pb2.StreamPostTransactionsRequest(connection_id=cid, transactions=[samples.client_bill(2003)]),
    )
    yield "GetPosting", poster_pb2.GetPostingRequest(name=world.posting.name)
    yield "WatchPosting", poster_pb2.WatchPostingRequest(name=world.posting.name)
    yield (
        "ListPostings",
        poster_pb2.ListPostingsRequest(connection_id=cid, state=poster_pb2.LINK_STATE_LINKED, page_size=10),
    )
    first = stub.ListPostings(poster_pb2.ListPostingsRequest(connection_id=cid, page_size=1), timeout=10)
    assert first.next_page_token, "the walk needs two postings"
    yield (
        "ListPostings",
        poster_pb2.ListPostingsRequest(connection_id=cid, page_size=1, page_token=first.next_page_token),
    )
    yield "GetLink", poster_pb2.GetLinkRequest(connection_id=cid, record=record, include_audit=True)
    yield "GetLink", poster_pb2.GetLinkRequest(name=link.name, include_audit=True)
    yield (
        "ListLinks",
        poster_pb2.ListLinksRequest(
            connection_id=cid,
            group=poster_pb2.LINK_GROUP_SALES_INVOICES,
            state=poster_pb2.LINK_STATE_LINKED,
            page_size=10,
            kinds=[record.kind],
            action_id=bill.header.action_id,
            participant_id=bill.header.participant.participant_id,
            update_time_start=_timestamp(946684800),
            update_time_end=_timestamp(4102444800),
            xero_id=link.xero_objects[0].xero_id,
        ),
    )
    links = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=cid, page_size=1), timeout=10)
    assert links.next_page_token, "the walk needs two links"
    yield "ListLinks", poster_pb2.ListLinksRequest(connection_id=cid, page_size=1, page_token=links.next_page_token)
    yield "ListLinks", poster_pb2.ListLinksRequest(connection_id=cid, drifted=True, page_size=10)
    yield (
        "ListDrift",
        drift_pb2.ListDriftRequest(
            connection_id=cid,
            state=drift_pb2.DRIFT_STATE_OPEN,
            kinds=[drift_pb2.DRIFT_KIND_PAID_IN_XERO, drift_pb2.DRIFT_KIND_VOIDED_IN_XERO],
            link=link.name,
            page_size=10,
        ),
    )
    yield "GetConnection", poster_pb2.GetConnectionRequest(connection_id=cid)
    yield (
        "ListMatterOptions",
        organisations_pb2.ListMatterOptionsRequest(connection_id=cid, page_size=10, page_token=""),
    )
    # A matter with no postings: closing it answers no option, and changes nothing.
    yield "CloseMatter", organisations_pb2.CloseMatterRequest(connection_id=cid, action_id=999)
    yield (
        "Reconcile",
        drift_pb2.ReconcileRequest(
            connection_id=cid,
            from_date=date_pb2.Date(year=2026, month=7, day=1),
            to_date=date_pb2.Date(year=2026, month=7, day=31),
        ),
    )
    org = world.emulator.create_organisation("Org of firm-2")
    yield (
        "CreateConnection",
        poster_pb2.CreateConnectionRequest(
            connection=poster_pb2.Connection(
                connection_id="firm-2",
                xero_base_url=world.emulator.base_url,
                xero_tenant_id=org["tenant_id"],
                access_token=org["access_token"],
                refresh_token=org["refresh_token"],
                mapping_context=samples.demo_context(),
            )
        ),
    )
    # New connections (a fresh consent each, see Consents): placeholders the walk replaces.
    yield (
        "ConnectOrganisation",
        connect_request("walked", "code", world.emulator, xero_app=WALKED_APP, xero_tenant_id="tenant"),
    )
    yield (
        "RunPreflight",
        backfill_pb2.RunPreflightRequest(connection_id=cid, division_ids=[samples.demo_context().linked_division_id]),
    )
    backfill_bill = backfill_pb2.BackfillBill(
        bill=samples.client_bill(3001),
        status=backfill_pb2.BILL_STATUS_OPEN,
        total_due=money_pb2.Money(currency_code="AUD", units=0),
    )
    yield "StartBackfill", backfill_pb2.StartBackfillRequest(connection_id=cid, bills=[backfill_bill], request_id="b-1")
    started = stub.StartBackfill(
        backfill_pb2.StartBackfillRequest(connection_id=cid, bills=[backfill_bill], request_id="b-1"), timeout=30
    )
    yield "GetBackfill", backfill_pb2.GetBackfillRequest(name=started.backfill.name)
    yield "WatchBackfill", backfill_pb2.WatchBackfillRequest(name=started.backfill.name)
    yield (
        "PlanCorrection",
        correction_pb2.PlanCorrectionRequest(
            connection_id=cid, record=record, intent=correction_pb2.CORRECTION_INTENT_EDIT
        ),
    )
    yield (
        "GetAllocationDiscrepancies",
        connection_pb2.GetAllocationDiscrepanciesRequest(connection_id=cid, refresh_chart=True),
    )
    allocation = stub.GetAllocationDiscrepancies(
        connection_pb2.GetAllocationDiscrepanciesRequest(connection_id=cid), timeout=10
    ).account_allocation
    function = sorted(allocation)[0]
    yield (
        "RemapAccounts",
        connection_pb2.RemapAccountsRequest(
            connection_id=cid, account_allocation={function: allocation[function]}, validate_only=True
        ),
    )
    yield (
        "RemapTaxTypes",
        connection_pb2.RemapTaxTypesRequest(
            connection_id=cid,
            tax_code_map={"GST": "OUTPUT"},
            purchase_tax_code_map={"GST": "INPUT"},
            untaxed_line_tax_types=mapper_pb2.UntaxedLineTaxTypes(
                trust_money="BASEXCLUDED", interest_on_trust="EXEMPTOUTPUT", journal_without_tax_code="BASEXCLUDED"
            ),
            validate_only=True,
        ),
    )
    # Routing needs extended connections of its own: one routed, one its trust organisation, one a division's.
    for routed, division in (("routed", 1), ("routed-trust", 1), ("routed-branch", 2)):
        context = samples.demo_context(profile=mapper_pb2.POLICY_PROFILE_EXTENDED)
        context.linked_division_id = division
        connect(stub, world.emulator, routed, context)
    yield (
        "UpdateConnectionRouting",
        organisations_pb2.UpdateConnectionRoutingRequest(
            connection_id="routed",
            routing=organisations_pb2.ConnectionRouting(
                trust_connection_id="routed-trust", division_connections={2: "routed-branch"}
            ),
            validate_only=True,
        ),
    )
    yield "RefreshConnection", connection_pb2.RefreshConnectionRequest(connection_id=cid)
    yield (
        "UnlinkLinks",
        unlink_pb2.UnlinkLinksRequest(
            connection_id=cid, records=[record], validate_only=True, cascade=True, reason="bill reissued"
        ),
    )
    yield (
        "UnlinkLinks",
        unlink_pb2.UnlinkLinksRequest(connection_id=cid, records=[other], confirm=True, reason="bill reissued"),
    )
    yield (
        "ListOrphans",
        unlink_pb2.ListOrphansRequest(connection_id=cid, record=other, type=xero_pb2.OBJECT_TYPE_INVOICE, page_size=10),
    )
    yield (
        "ApplyCorrection",
        correction_pb2.ApplyCorrectionRequest(
            connection_id=cid, record=record, intent=correction_pb2.CORRECTION_INTENT_DELETE
        ),
    )
    yield "GetCorrection", correction_pb2.GetCorrectionRequest(connection_id=cid, record=record)
    yield "DisconnectConnection", connection_pb2.DisconnectConnectionRequest(connection_id=cid)


@pytest.fixture
def world(poster_factory: PosterFactory, emulator: EmulatorServer, tmp_path: Path) -> World:
    apps_file = tmp_path / "xero-apps.json"
    stub = stub_for(poster_factory(xero_apps=XeroApps(str(apps_file))))
    connection, _ = connect(stub, emulator)
    settled = []
    for record_id in (1001, 1002):
        posted = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(
                connection_id=connection.connection_id, transaction=samples.client_bill(record_id)
            ),
            timeout=30,
        )
        posting = wait_settled(stub, posted.posting.name)
        assert posting.state == poster_pb2.LINK_STATE_LINKED, posting.link.last_error
        settled.append(posting)
    return World(stub, emulator, connection.connection_id, settled[0], settled[1], Consents(emulator, apps_file))


def test_every_poster_request_comment_matches_the_validation(
    world: World, comments: dict[tuple[str, str], str]
) -> None:
    disagreements: list[str] = []
    walked: set[str] = set()
    for rpc, request in _valid_requests(world):
        walked.add(rpc)
        for prefix, holder in _holders(request):
            message = holder(request)
            for field in message.DESCRIPTOR.fields:
                key = (message.DESCRIPTOR.name, field.name)
                path = f"{prefix}{field.name}"
                claimed = claim(comments.get(key, ""), message)
                if claimed is None:
                    disagreements.append(f"{rpc}: {key[0]}.{field.name} says neither Required nor Optional")
                if not _is_set(message, field.name):
                    if claimed:
                        disagreements.append(f"{rpc}: the valid request leaves required {path} unset")
                    continue
                if key in KEPT:
                    continue
                cleared = type(request)()
                cleared.CopyFrom(request)
                holder(cleared).ClearField(field.name)
                refused = names_field(call(world.stub, rpc, world.prepare(rpc, cleared)), path)
                if bool(claimed) != refused:
                    says = "says required" if claimed else "does not say required"
                    does = "refuses the request without it" if refused else "does not"
                    disagreements.append(f"{rpc}: {key[0]}.{field.name} {says}; the poster {does}")
        baseline = call(world.stub, rpc, world.prepare(rpc, request))
        if baseline is not None and baseline.code == ErrorCode.INVALID_ARGUMENT:
            disagreements.append(f"{rpc}: the valid request is refused: {baseline.message}")
    assert not disagreements, "\n".join(disagreements)
    every = {m.name for m in SERVICE.methods}
    assert every - walked == set(), f"RPCs not walked: {every - walked}"


def test_claims_read_conditions_from_the_request() -> None:
    by_name = poster_pb2.GetLinkRequest(name="connections/main/links/client-bill/1")
    assert claim("Required unless name is set.", by_name) is False
    assert claim("Required unless name is set.", poster_pb2.GetLinkRequest()) is True
    preview = unlink_pb2.UnlinkLinksRequest(validate_only=True)
    assert claim("Required (true) when validate_only is false: ...", preview) is False
    assert claim("Required (true) when validate_only is false: ...", unlink_pb2.UnlinkLinksRequest()) is True
    assert claim("Required.", by_name) is True
    assert claim("Optional: 0 for the default page size.", by_name) is False
    assert claim("Output only.", by_name) is False
    assert claim("The link's name.", by_name) is None
