"""Attacks on the poster's read-side and operator RPCs, from outside, as an accountant, an operator
and a careless caller would use them: ListPostings and ListLinks pages (page tokens of other
queries, other connections, other filters; bad page sizes and tokens), RunPreflight against what
posting then does, and Reconcile after a partially failed batch and after a correction and repost.
Real posters on loopback, the real mapper, the emulator over HTTP, a SQLite registry.

Each test's docstring says what it expects; "DEFECT:" ones fail while the product gets it wrong,
"GUARD:" ones pin behaviour that holds."""

from __future__ import annotations

import base64
import time
from typing import Any

import grpc
import pytest
import sqlalchemy
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import backfill_pb2, connection_pb2, correction_pb2, drift_pb2, organisations_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.type.v1 import date_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.fixtures.routing import extended_context, route

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
MARCH = ("2026-03-01", "2026-03-31")


def _date(text: str) -> date_pb2.Date:
    year, month, day = (int(p) for p in text.split("-"))
    return date_pb2.Date(year=year, month=month, day=day)


def _bill(record_id: int, division: int = samples.DIVISION) -> transaction_pb2.Transaction:
    tx: transaction_pb2.Transaction = samples.sample_transactions(record_id)["client_bill"]
    tx.header.division_id = division
    return tx


def _post(
    stub: poster_grpc.PosterServiceStub, connection_id: str, tx: transaction_pb2.Transaction
) -> poster_pb2.Posting:
    answer = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=tx))
    return wait_settled(stub, answer.posting.name)


def _refusal(call: Any) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as err:
        return err
    raise AssertionError("the call was answered; a refusal was expected")


def _fields(err: grpc.RpcError) -> list[str]:
    return [v.field for v in from_rpc_error(err).field_violations]


def _postings(stub: poster_grpc.PosterServiceStub, connection_id: str, **kw: Any) -> poster_pb2.ListPostingsResponse:
    answer: poster_pb2.ListPostingsResponse = stub.ListPostings(
        poster_pb2.ListPostingsRequest(connection_id=connection_id, **kw)
    )
    return answer


# -- ListPostings page tokens ------------------------------------------------------------------------


def test_a_list_postings_token_of_one_connection_is_refused_on_another(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: docs/calling-xerolink.md and tests/integration/test_page_tokens_per_connection.py:
    a page token names the connection it was issued on, and one used on another connection is
    refused (INVALID_ARGUMENT naming page_token) "never read as a position in the other
    connection's list, where it would silently skip or repeat records". ListLinks, ListOrphans,
    ListDrift and ListMatterOptions do this; ListPostings' token is a bare "{create_us}:{id}"
    (service_layer/queries.py list_postings) and is accepted on firm-b: firm-b's page starts at
    firm-a's position, so an operator paging firm-b's postings silently skips every posting of
    firm-b made after that instant (here firm-b's three postings are all newer: the page is
    empty, with no next token, as if firm-b had posted nothing)."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, "firm-a")
    connect(stub, emulator, "firm-b")
    for i in range(3):
        _post(stub, "firm-a", _bill(60_000 + 10 * i))
    token = _postings(stub, "firm-a", page_size=1).next_page_token
    assert token
    for i in range(3):
        _post(stub, "firm-b", _bill(61_000 + 10 * i))

    err = _refusal(lambda: _postings(stub, "firm-b", page_size=1, page_token=token))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert _fields(err) == ["page_token"]


def test_a_list_postings_token_is_refused_when_the_state_filter_changes(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: a page token is for the query that returned it; ListLinks refuses one used with
    other filters (PAGE_TOKEN_FILTER_MISMATCH, queries.page_position: "rather than silently
    skipping or repeating links"). ListPostings does not bind its token to the state filter: a
    token from the unfiltered list, replayed with state=FAILED, is served, starting the failed
    list in the middle. The operator looking for failed postings never sees the newer ones."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    for i in range(3):
        _post(stub, "firm-1", _bill(62_000 + 10 * i))
    token = _postings(stub, "firm-1", page_size=1).next_page_token
    assert token

    err = _refusal(lambda: _postings(stub, "firm-1", page_size=1, page_token=token, state=poster_pb2.LINK_STATE_FAILED))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert _fields(err) == ["page_token"]


def test_a_list_links_token_is_not_taken_as_a_list_postings_position(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: a ListLinks token ("{link id}:{filter digest}", base64) handed to ListPostings by a
    careless caller is decoded as "{create_us}:{posting_id}": link id 1 becomes a creation time in
    1970 and the digest a posting id, and the answer is an empty page with no next token, a
    connection that looks as if it had posted nothing. It must be refused as a token this query
    did not issue (INVALID_ARGUMENT naming page_token)."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    for i in range(3):
        _post(stub, "firm-1", _bill(63_000 + 10 * i))
    links = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", page_size=1))
    assert links.next_page_token

    err = _refusal(lambda: _postings(stub, "firm-1", page_size=1, page_token=links.next_page_token))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert _fields(err) == ["page_token"]


def test_list_postings_pages_neither_skip_nor_repeat_while_postings_are_added_and_settle(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: paging ListPostings (newest first) one posting at a time while new postings are
    accepted and earlier ones change state between pages: every posting that existed when the
    first page was read is listed exactly once."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    before = {_post(stub, "firm-1", _bill(64_000 + 10 * i)).name for i in range(4)}
    seen: list[str] = []
    token = ""
    added = 0
    while True:
        page = _postings(stub, "firm-1", page_size=1, page_token=token)
        seen += [p.name for p in page.postings]
        if added < 3:
            _post(stub, "firm-1", _bill(64_500 + 10 * added))
            added += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(n for n in seen if n in before) == sorted(before)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not base64 at all!"}, "page_token"),
        ({"page_token": "MTo="}, "page_token"),  # "1:" (no posting id)
        ({"state": 99}, "state"),
    ],
)
def test_bad_list_postings_requests_are_refused_naming_the_field(
    poster_factory: PosterFactory, emulator: EmulatorServer, request_fields: dict[str, Any], field: str
) -> None:
    """GUARD: a negative page size, a garbled token, a token without a posting id and an enum
    value this version does not know each get INVALID_ARGUMENT with the field named, never a
    page read as "no filter"."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)

    err = _refusal(lambda: _postings(stub, "firm-1", **request_fields))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert _fields(err) == [field]


# -- RunPreflight against what posting does ------------------------------------------------------------


def test_preflight_does_not_say_a_routed_division_is_refused(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: docs/matters-and-organisations.md, "Divisions to organisations": with
    division_connections a transaction of a listed division "is posted under that division's
    connection". RunPreflight on the firm's connection (division 1, routing division 2 to its
    own organisation) with the firm's divisions [1, 2] still answers DIVISIONS WARNING
    OTHER_DIVISION: "transactions of division(s) 2 are refused ... keep them out of Xero, or
    merge them into the linked division" (protos/xerolink/poster/v1/backfill.proto: WARNING
    means some transactions will be refused). A bill of division 2 posted to the same
    connection then links. The accountant is told to merge divisions or keep a division out of
    Xero when its money is in fact posting (domain/preflight.py divisions() ignores the
    routing; service_layer/preflight_checks.py facts_of)."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, "head", extended_context(division=1))
    connect(stub, emulator, "branch", extended_context(division=2))
    route(stub, "head", division_connections={2: "branch"})

    posted = _post(stub, "head", _bill(65_000, division=2))
    assert posted.state == poster_pb2.LINK_STATE_LINKED
    assert posted.connection_id == "branch"

    answer = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="head", division_ids=[1, 2]))
    [divisions] = [c for c in answer.checks if c.check == "DIVISIONS"]
    assert divisions.reason_code != "OTHER_DIVISION", divisions.message
    assert divisions.status == backfill_pb2.PREFLIGHT_STATUS_PASS, divisions.message


def test_preflight_is_not_ready_for_a_disconnected_connection(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: RunPreflight's `ready` is "no check failed" and a FAIL means "every transaction of
    the connection will be refused until this is fixed" (backfill.proto). After
    DisconnectConnection every PostTransaction is refused FAILED_PRECONDITION
    CONNECTION_DISCONNECTED (connection_facts.check_postable), yet RunPreflight answers
    ready=true with every check passing or warning: the operator is told to go ahead with a
    connection that posts nothing, and require_preflight (which gates bulk operations) passes.
    service_layer/preflight_checks.py facts_of and domain/preflight.py run never look at the
    connection's state."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    stub.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1"), timeout=20)
    time.sleep(1.1)  # past the poster's one-second connection cache
    refused = _refusal(lambda: _post(stub, "firm-1", _bill(69_000)))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.details()
    assert from_rpc_error(refused).reason == "CONNECTION_DISCONNECTED"

    answer = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=[1]))

    assert not answer.ready, [(c.check, c.status) for c in answer.checks]


@pytest.mark.parametrize("division_ids", [[0], [-5], list(range(1, 1002))])
def test_preflight_refuses_bad_division_ids_naming_them(
    poster_factory: PosterFactory, emulator: EmulatorServer, division_ids: list[int]
) -> None:
    """GUARD: a zero or negative division id, or more ids than any organisation has, is refused
    with INVALID_ARGUMENT naming division_ids, not answered as a preflight."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)

    err = _refusal(
        lambda: stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=division_ids))
    )

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert all(f.startswith("division_ids") for f in _fields(err)) and _fields(err)


# -- reads write nothing --------------------------------------------------------------------------------


def _commits(engine: sqlalchemy.Engine) -> list[int]:
    counted: list[int] = []
    sqlalchemy.event.listen(engine, "commit", lambda _conn: counted.append(1))
    return counted


def test_operator_reads_write_and_lock_nothing(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    """GUARD: GetLink, ListLinks, ListPostings, GetPosting, ListOrphans, ListDrift,
    ListMatterOptions, RunPreflight and GetConnection on a poster that does not
    dispatch commit nothing on the registry's write engine (no write, no write lock taken)."""
    first = poster_factory()
    stub = stub_for(first)
    connect(stub, emulator)
    bill = _bill(66_000)
    posting = _post(stub, "firm-1", bill)
    first.stop(0)
    reader = poster_factory(run_dispatcher=False)
    stub = stub_for(reader)
    key = common_pb2.RecordKey(kind=BILL, id=bill.header.id)
    time.sleep(0.2)
    counted = _commits(reader.db.write)

    stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=key, include_audit=True))
    stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", drifted=True))
    _postings(stub, "firm-1")
    stub.GetPosting(poster_pb2.GetPostingRequest(name=posting.name))
    stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id="firm-1"))
    stub.ListDrift(drift_pb2.ListDriftRequest(connection_id="firm-1"))
    stub.ListMatterOptions(organisations_pb2.ListMatterOptionsRequest(connection_id="firm-1"))
    stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=[1]))
    stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1"))

    assert counted == []
    # The counter sees writes: an unlink commits.
    stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key], confirm=True))
    assert counted


# -- Reconcile ----------------------------------------------------------------------------------------


def _reconcile(stub: poster_grpc.PosterServiceStub, first: str = MARCH[0], last: str = MARCH[1]) -> Any:
    request = drift_pb2.ReconcileRequest(connection_id="firm-1", from_date=_date(first), to_date=_date(last))
    return stub.Reconcile(request, timeout=120)


def _differing(answer: drift_pb2.ReconcileResponse) -> dict[str, tuple[int, int, int]]:
    return {
        a.account_code: (a.posted.units, a.xero.units, a.unexplained.units)
        for a in answer.accounts
        if a.difference.units or a.unexplained.units
    }


def test_a_bill_and_payment_corrected_and_posted_again_reconcile_to_the_cent(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a bill and its payment posted, the bill corrected (ApplyCorrection EDIT: payment
    deleted in Xero, invoice voided, both unlinked) and both posted again. Xero holds a voided
    invoice, a deleted payment and the new pair; Reconcile for March agrees to the cent, with no
    unexplained amount (docs/drift.md: a voided or deleted orphan moves nothing)."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, context=extended_context(division=1))
    sample = samples.sample_transactions(67_000)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    for tx in (bill, payment):
        tx.header.division_id = 1
        assert _post(stub, "firm-1", tx).state == poster_pb2.LINK_STATE_LINKED
    assert _reconcile(stub).reconciled
    key = common_pb2.RecordKey(kind=BILL, id=bill.header.id)
    done = stub.ApplyCorrection(
        correction_pb2.ApplyCorrectionRequest(
            connection_id="firm-1", record=key, intent=correction_pb2.CORRECTION_INTENT_EDIT
        ),
        timeout=60,
    ).correction
    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    for tx in (bill, payment):
        assert _post(stub, "firm-1", tx).state == poster_pb2.LINK_STATE_LINKED

    answer = _reconcile(stub)

    assert _differing(answer) == {}
    assert answer.reconciled


def test_a_batch_with_one_element_refused_by_xero_reconciles_what_was_linked(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a batch of three bills in which Xero refuses one (its invoice number repeats
    another's: ACCREC numbers are unique in an organisation, /work/shared/NOTES.md) links the
    others and fails the one; Reconcile for March agrees, counting only what Xero holds."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, context=extended_context(division=1))
    bills = [_bill(68_000 + 10 * i, division=1) for i in range(3)]
    bills[2].client_bill.bill_number = bills[0].client_bill.bill_number
    answer = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=bills)
    )
    states = [wait_settled(stub, r.posting.name).state for r in answer.results]
    assert sorted(states).count(poster_pb2.LINK_STATE_LINKED) >= 2, states

    report = _reconcile(stub)

    assert _differing(report) == {}
    assert report.reconciled


def test_trust_balances_per_matter_follow_a_tracked_trust_journal(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: docs/drift.md, "Trust": each matter's balance is the credit on the trust liability
    account of its lines, "a line's matter is its tracking option (reports by matter)"; and
    docs/matters-and-organisations.md: "for a trust journal the debit line is the paying matter's
    and the credit line the receiving matter's". With reports by matter on, a trust receipt of
    5,000.00 to matter 7001 and a trust journal of 300.00 from 7001 to 7002 reach Xero with the
    right options (checked in the emulator), yet Reconcile's trust section answers
    {7001: 5,000.00} and nothing for 7002: the journal is dropped. Both its lines sit on the one
    trust liability account, so its ledger effect nets to nothing, and trust_lines
    (domain/reconciliation.py) takes an empty effect to mean "not counted by Xero" and skips the
    journal. The firm's per-matter trust ledger, the figure a trust account audit checks, is
    wrong for every matter-to-matter journal while `reconciled` still says true."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, context=extended_context(division=1, tracking=True))
    sample = samples.sample_transactions(70_000)
    for name in ("trust_receipt", "trust_journal"):
        tx = sample[name]
        tx.header.division_id = 1
        assert _post(stub, "firm-1", tx).state == poster_pb2.LINK_STATE_LINKED

    trust = _reconcile(stub).trust

    assert {m.action_id: m.balance.units for m in trust.matters} == {7001: 470_000, 7002: 30_000}
    assert trust.posted_total.units == trust.xero_liability.units == 500_000
    assert trust.reconciled


def test_a_bare_list_links_token_of_another_connection_is_refused(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: ListLinks, ListOrphans, ListDrift and ListMatterOptions refused a token whose digest
    names other filters, but still took a bare "{id}" (the form before the digest) as a position,
    whichever connection it came from: a page of another connection's position skips links
    silently. docs/unlinking.md says such tokens are refused."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    bare = base64.urlsafe_b64encode(b"999999").decode()
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", page_token=bare))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in {v.field for v in from_rpc_error(refused.value).field_violations}
