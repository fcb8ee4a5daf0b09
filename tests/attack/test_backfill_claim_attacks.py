"""Attacks on StartBackfill's claim of its request_id (revisions 0009 and 0010, table backfill_claim;
service_layer/backfill.py: _claim_request, released by _record_backfill), from outside: careless
and concurrent callers, a crash or a lost answer between the claim and the record, refusals
before and after the claim, request_ids of other connections and of a firm's divisions, and
the revision's downgrade.

The promise under attack (docs/backfill.md, step 3): before it posts anything a start with a
request_id claims it for its request, until the backfill is recorded; another request under
it is refused ALREADY_EXISTS / REQUEST_ID_REUSED with nothing of it posted; the first request
sent again finishes; a call refused as invalid claims nothing.

Each docstring starts with "DEFECT:" (failed when it was written; fixed since, the docstring tells
what happened before) or "GUARD:" (held already).
Real posters on loopback, the real mapper and the Xero emulator; the races run on SQLite and
PostgreSQL, the rest on SQLite (the claim's rules do not depend on the database)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from alembic import command
from sqlalchemy import text
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import backfill_pb2, connection_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.migrations import alembic_config, current_revision, head_revision, migrate
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.service_layer import backfill
from xerolink_poster.service_layer.posting import Poster

from tests.attack.test_backfill_attacks import (
    BILL,
    DONE,
    PAYMENT,
    REFUSED,
    _amount_due_mismatches,
    _bill,
    _finish,
    _invoices,
    _mapper_back,
    _mapper_lost_after,
    _records,
    _simple,
    _start,
)
from tests.fixtures.backfill_starts import Answer, at_once, meeting_at_the_mapper
from tests.fixtures.poster import PosterFactory, connect, stub_for, xero_objects
from tests.fixtures.routing import extended_context
from tests.fixtures.routing import route as route_divisions
from tests.integration.test_poster_backfill import BROKEN, _context
from tests.integration.test_registry_migrations import _differences

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

# -- helpers -------------------------------------------------------------------------------------


def _claims(app: bootstrap.PosterApp) -> set[tuple[str, str]]:
    """The request_ids held in the registry now: (connection_id, request_id)."""
    with app.db.read.connect() as conn:
        rows = conn.execute(text("SELECT connection_id, request_id FROM backfill_claim")).all()
    return {(str(r[0]), str(r[1])) for r in rows}


def _reused(err: grpc.RpcError) -> None:
    """A refusal of another request under a held request_id, as docs/backfill.md words it."""
    error = from_rpc_error(err)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS, (err.code(), error)
    assert error.reason == Reason.REQUEST_ID_REUSED, error
    assert [v.field for v in error.field_violations] == ["request_id"], error


# -- a start that stops before it posts anything ------------------------------------------------


@SQLITE
def test_a_start_that_failed_before_posting_anything_leaves_its_request_id_free(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """DEFECT: a start of a bill without payments under request_id "june-run" meets the mapper
    down at the bills' batch (the payments' check needs no mapper call, so the claim is taken
    first). The caller is answered UNAVAILABLE MAPPER_UNAVAILABLE "nothing was recorded, retry
    the request shortly", and indeed nothing is queued; but the claim stays in backfill_claim
    for good. When the caller, told nothing happened, sends its corrected request (another
    bill) under "june-run", it is refused ALREADY_EXISTS REQUEST_ID_REUSED: "held by a request
    with other bills, which is being started or stopped part-way (sending that request again
    finishes it)", a start that never posted and is not running. Expected: a start that queued
    nothing releases its claim (as a refusal before the claim claims nothing), and the second
    request is started."""
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    _mapper_lost_after(app, monkeypatch, calls=0)
    with pytest.raises(grpc.RpcError) as failed:
        _start(stub, [_bill(7101, [])], request_id="june-run")
    error = from_rpc_error(failed.value)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE and "nothing was recorded" in error.message, error
    assert _records(stub) == set()
    _mapper_back(app, monkeypatch, mapper_target)

    held = _claims(app)
    try:
        started = _start(stub, [_bill(7102, [])], request_id="june-run")
    except grpc.RpcError as err:
        refusal = from_rpc_error(err)
        pytest.fail(f"claims left {held}; the next request: {err.code()} {refusal.reason} {refusal.message!r}")
    assert _finish(stub, started.name).state == DONE
    assert _claims(app) == set()


@SQLITE
def test_a_start_refused_because_the_connection_is_disconnected_claims_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: on a disconnected connection a start of a bill without payments is refused
    FAILED_PRECONDITION CONNECTION_DISCONNECTED ("connect the organisation again ... before
    posting"), nothing queued. The claim taken before post_many's connection check stays: the
    next request (other bills) under the same request_id is answered REQUEST_ID_REUSED, "held by
    a request ... being started or stopped part-way", instead of the connection's refusal, and
    after reconnecting the caller still could not use the request_id for that request. A
    refused start must leave the registry as it was (a PREFLIGHT_FAILED refusal, checked before
    the claim, does)."""
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    stub.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1"), timeout=10)
    for bill_id in (7201, 7202):
        with pytest.raises(grpc.RpcError) as refused:
            _start(stub, [_bill(bill_id, [])], request_id="after-the-move")
        error = from_rpc_error(refused.value)
        assert (refused.value.code(), error.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            Reason.CONNECTION_DISCONNECTED,
        ), f"bill {bill_id}: {refused.value.code()} {error.reason} {error.message!r}"
    assert _claims(app) == set()


@SQLITE
def test_a_retry_of_an_interrupted_start_that_queues_nothing_new_keeps_the_request_id(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """DEFECT: a start is interrupted after its bill was queued; the caller sends the same
    request again, and that retry is interrupted too, after the bill (now ALREADY_DONE, so this
    call queued nothing) and before the payment. The retry took "nothing queued by this call"
    for "nothing of the request posted" and freed the claim: another request under the
    request_id was then started, and the first request, whose bill is in Xero owing the whole
    total, could no longer be finished under it. The claim is freed only by the start that made
    it; the other request is refused, and the first request sent again finishes."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(7301, 20000)]
    for _ in range(2):  # the start, then its retry: the payments' check and the bills, then lost
        _mapper_lost_after(app, monkeypatch, calls=2)
        with pytest.raises(grpc.RpcError):
            _start(stub, first, request_id="retried")
        _mapper_back(app, monkeypatch, mapper_target)
    assert _claims(app) == {("firm-1", "retried")}

    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_simple(7302, 30000)], request_id="retried")
    _reused(other.value)
    assert (BILL, 7302) not in _records(stub)

    final = _finish(stub, _start(stub, first, request_id="retried").name)
    assert final.state == DONE and final.linked == 2, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], first) == {}
    assert _claims(app) == set()


@BOTH
def test_the_start_that_made_the_claim_failing_keeps_it_for_a_joined_retry_that_queued_its_bill(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEFECT: a caller whose answer is slow sends the same request again while the first start
    runs; the first made the claim, the retry joined it. The retry queues the bill and is
    interrupted before the payment (BACKFILL_INTERRUPTED, "send the same request again to
    finish it"); then the first start loses the mapper at the bills, having queued nothing
    itself, and, as the start that made the claim, freed it. Another request then took the
    request_id and was posted, and the first request, whose bill is in Xero owing the whole
    total, was refused REQUEST_ID_REUSED. A start frees only its own hold on the claim: the
    other request is refused with nothing of it posted, and the first request sent again
    finishes."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(7351, 20000)]
    dead = MapperClient("127.0.0.1:9")  # nothing listens: the client's real UNAVAILABLE
    claim = backfill._claim_request
    claimed: list[int] = []  # the starts' threads in the order they claimed: the first made it
    one_at_a_time = threading.Lock()

    def noting(*args: Any) -> str:
        with one_at_a_time:
            answer = claim(*args)
            claimed.append(threading.get_ident())
        return answer

    monkeypatch.setattr(backfill, "_claim_request", noting)
    barrier = threading.Barrier(2, timeout=10)
    retry_ended = threading.Event()
    original = app.mapper.map_each
    calls: dict[int, int] = {}

    def per_start(requests: Any) -> Any:
        me = threading.get_ident()
        calls[me] = calls.get(me, 0) + 1
        if calls[me] == 1:  # the payments' check: both starts claim after it, together
            barrier.wait()
            return original(requests)
        if me == claimed[0]:  # the start that made the claim loses the mapper at its bills
            assert retry_ended.wait(20), "the joined retry never ended"
            return dead.map_each(requests)
        # The joined retry: its bills are posted, its payments meet the lost mapper.
        if calls[me] == 2:
            return original(requests)
        try:
            return dead.map_each(requests)
        finally:
            retry_ended.set()  # all it does after this is answer BACKFILL_INTERRUPTED

    monkeypatch.setattr(app.mapper, "map_each", per_start)

    def start() -> backfill_pb2.Backfill:
        return _start(stub, first, request_id="joined")

    answers = at_once({"first": start, "again": start})
    monkeypatch.undo()
    dead.close()

    assert len(claimed) == 2, claimed
    errors = {k: from_rpc_error(a) for k, a in answers.items() if isinstance(a, grpc.RpcError)}
    assert sorted(e.reason for e in errors.values()) == sorted(
        [Reason.MAPPER_UNAVAILABLE, Reason.BACKFILL_INTERRUPTED]
    ), answers
    assert (BILL, 7351) in _records(stub) and (PAYMENT, 73511) not in _records(stub)
    assert _claims(app) == {("firm-1", "joined")}

    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_simple(7352, 30000)], request_id="joined")
    _reused(other.value)
    assert (BILL, 7352) not in _records(stub)

    final = _finish(stub, _start(stub, first, request_id="joined").name)
    assert final.state == DONE and final.linked == 2, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], first) == {}
    assert "OLD-7352" not in _invoices(emulator, org["tenant_id"])
    assert _claims(app) == set()


@SQLITE
def test_a_mapper_outage_at_the_payments_check_is_not_recorded_as_a_refused_backfill(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """DEFECT: (predates the claim's commit, but decides what the claim is released for) the
    mapper is down at the first call, the payments' check. Poster.refusals turns the mapper's
    UNAVAILABLE into an item refusal of each payment, every bill is refused PAYMENT_REFUSED, and
    StartBackfill answers OK with a backfill of refusals recorded under the request_id (the
    claim released). The accountant sees every bill refused "the mapper did not answer; ...
    retry the request shortly", but the retry docs/backfill.md prescribes (the same request,
    same request_id) answers that same dead backfill: the bills can never be backfilled under
    it. Expected: UNAVAILABLE with nothing recorded, and the same request later finishes."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [_simple(7301, 20000)]
    _mapper_lost_after(app, monkeypatch, calls=0)
    outcome: Answer
    try:
        outcome = _start(stub, bills, request_id="outage")
    except grpc.RpcError as err:
        outcome = err
    _mapper_back(app, monkeypatch, mapper_target)

    again = _start(stub, bills, request_id="outage")
    final = _finish(stub, again.name)
    if isinstance(outcome, backfill_pb2.Backfill):
        reasons = sorted({i.error.reason for i in outcome.items})
        recorded = outcome.refused == outcome.total
        assert not recorded, f"StartBackfill answered OK, every item refused {reasons}, recorded under 'outage'"
    assert final.state == DONE and final.linked == 2 and final.refused == 0, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}


@SQLITE
def test_refusals_before_the_claim_leave_no_claim(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    """GUARD: a start under a request_id refused INVALID_ARGUMENT (no bills; a bill whose
    payment has no header), PREFLIGHT_FAILED (a connection whose allocation names an account
    the chart lacks) or NOT_FOUND (no such connection) leaves backfill_claim empty, and a valid
    request under the same request_id afterwards is started."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    facts, _ = BROKEN["ACCOUNT_ALLOCATION"]
    connect(stub, emulator, "broken", _context(**facts))
    headless = _simple(7401, 20000)
    headless.payments[0].ClearField("header")
    refusals = [
        ("firm-1", [], grpc.StatusCode.INVALID_ARGUMENT),
        ("firm-1", [headless], grpc.StatusCode.INVALID_ARGUMENT),
        ("broken", [_simple(7402, 20000)], grpc.StatusCode.FAILED_PRECONDITION),
        ("nobody", [_simple(7403, 20000)], grpc.StatusCode.NOT_FOUND),
    ]
    for connection_id, bills, code in refusals:
        with pytest.raises(grpc.RpcError) as err:
            _start(stub, bills, connection_id, request_id="shared-key")
        assert err.value.code() == code, (connection_id, from_rpc_error(err.value))
    assert _claims(app) == set()
    assert _start(stub, [_simple(7404, 20000)], request_id="shared-key").accepted == 2
    assert _claims(app) == set()


# -- races ---------------------------------------------------------------------------------------


@BOTH
def test_the_same_request_sent_three_times_at_once_is_one_backfill_posted_once(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: a caller whose answer is slow sends the same request again twice while the first
    is still running; all three share the claim. Each is answered the one backfill, each record
    is linked once, Xero holds one invoice and one payment per bill owing Actionstep's totalDue,
    and no claim is left once it is recorded."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [_simple(7501, 20000), _simple(7502, 30000)]
    entered = meeting_at_the_mapper(app, monkeypatch, 3)

    answers = at_once({f"try-{n}": lambda: _start(stub, bills, request_id="slow-answer") for n in range(3)})

    assert entered[0] >= 3, "the three starts did not meet at the payments' check"
    names = {a.name if isinstance(a, backfill_pb2.Backfill) else f"error {a.code()}" for a in answers.values()}
    assert len(names) == 1 and not next(iter(names)).startswith("error"), answers
    final = _finish(stub, next(iter(names)))
    assert final.state == DONE and final.linked == 4 and final.refused == 0, final
    assert _records(stub) == {(BILL, 7501), (BILL, 7502), (PAYMENT, 75011), (PAYMENT, 75021)}
    assert sorted(_invoices(emulator, org["tenant_id"])) == ["OLD-7501", "OLD-7502"]
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 2
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}
    assert _claims(app) == set()


@BOTH
def test_a_retried_request_and_another_request_racing_for_one_request_id_post_only_the_claimer(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: request A is sent twice (a retry) while request B, other bills, is sent under the
    same request_id, all three at once. Whichever request claims first is the only one posted:
    its starts are answered one backfill, the other request's are refused REQUEST_ID_REUSED
    saying nothing of it was posted, and no record of it is linked or sent to Xero."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    requests = {"a": [_simple(7601, 20000)], "b": [_simple(7602, 30000)]}
    meeting_at_the_mapper(app, monkeypatch, 3)

    answers = at_once(
        {
            "a-1": lambda: _start(stub, requests["a"], request_id="race"),
            "a-2": lambda: _start(stub, requests["a"], request_id="race"),
            "b-1": lambda: _start(stub, requests["b"], request_id="race"),
        }
    )

    started = {k[0] for k, a in answers.items() if isinstance(a, backfill_pb2.Backfill)}
    assert len(started) == 1, answers
    [winner] = started
    loser = "b" if winner == "a" else "a"
    names = {a.name for a in answers.values() if isinstance(a, backfill_pb2.Backfill)}
    assert len(names) == 1, names
    for key, answer in answers.items():
        if key.startswith(loser):
            assert isinstance(answer, grpc.RpcError), (key, answer)
            _reused(answer)
            assert "nothing of this request was posted" in from_rpc_error(answer).message
    final = _finish(stub, names.pop())
    assert final.state == DONE and final.linked == 2, final
    [won_bill] = requests[winner]
    [lost_bill] = requests[loser]
    assert {r for _, r in _records(stub)} == {won_bill.bill.header.id, won_bill.payments[0].header.id}
    assert list(_invoices(emulator, org["tenant_id"])) == [won_bill.bill.client_bill.bill_number]
    assert _amount_due_mismatches(emulator, org["tenant_id"], requests[winner]) == {}
    assert lost_bill.bill.client_bill.bill_number not in _invoices(emulator, org["tenant_id"])
    assert _claims(app) == set()


@BOTH
def test_one_request_id_on_two_connections_at_once_is_two_independent_backfills(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: two firms' integrations both name their nightly run "nightly" and start it at the
    same moment with different bills. A request_id is the connection's own: both are started
    and finish in their own organisation; neither is refused REQUEST_ID_REUSED."""
    app = poster_factory()
    stub = stub_for(app)
    _, org1 = connect(stub, emulator, "firm-1")
    _, org2 = connect(stub, emulator, "firm-2")
    bills = {"firm-1": [_simple(7701, 20000)], "firm-2": [_simple(7702, 30000)]}
    meeting_at_the_mapper(app, monkeypatch, 2)

    def start(connection_id: str) -> Callable[[], backfill_pb2.Backfill]:
        return lambda: _start(stub, bills[connection_id], connection_id, request_id="nightly")

    answers = at_once({c: start(c) for c in bills})

    for connection_id, org in (("firm-1", org1), ("firm-2", org2)):
        answer = answers[connection_id]
        assert isinstance(answer, backfill_pb2.Backfill), (connection_id, answer)
        final = _finish(stub, answer.name)
        assert final.state == DONE and final.linked == 2 and final.connection_id == connection_id, final
        assert list(_invoices(emulator, org["tenant_id"])) == [bills[connection_id][0].bill.client_bill.bill_number]
    assert _claims(app) == set()


def _crash(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the poster lost its registry connection")


# -- a start that stopped after its claim --------------------------------------------------------


@SQLITE
def test_a_start_that_crashed_after_its_claim_is_finished_by_the_same_request_only(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: the poster fails with an unexpected error between the claim and posting (a bug, a
    lost registry connection), answered INTERNAL. The claim holds: a different request under the
    request_id is refused with nothing of it posted and the registry unchanged by the refusal;
    the first request sent again posts and records it, and the claim is released."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(7801, 20000)]

    with monkeypatch.context() as patch:
        patch.setattr(Poster, "post_many", _crash)
        with pytest.raises(grpc.RpcError) as crashed:
            _start(stub, first, request_id="crash-run")
    assert crashed.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), crashed.value
    assert _records(stub) == set()
    assert _claims(app) == {("firm-1", "crash-run")}

    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_simple(7802, 30000)], request_id="crash-run")
    _reused(other.value)
    assert _records(stub) == set() and _claims(app) == {("firm-1", "crash-run")}

    final = _finish(stub, _start(stub, first, request_id="crash-run").name)
    assert final.state == DONE and final.linked == 2, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], first) == {}
    assert _claims(app) == set()
    # Recorded now: another request is refused by the record, and claims nothing.
    with pytest.raises(grpc.RpcError) as after:
        _start(stub, [_simple(7803, 40000)], request_id="crash-run")
    _reused(after.value)
    assert final.backfill_id in from_rpc_error(after.value).message
    assert _claims(app) == set() and (BILL, 7803) not in _records(stub)


@SQLITE
def test_an_interrupted_request_resent_with_its_bills_reordered_posts_nothing_twice(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """DEFECT (the wording only): a start of bills OLD-8101 and OLD-8102 under "export-3" is
    interrupted after its bills were queued; the caller's retry re-exports them from Actionstep
    in the other order. The fingerprint is order-sensitive, so the reordered request is another
    request: it is refused REQUEST_ID_REUSED naming request_id (its message said "other bills"
    and "nothing of this request was posted"; it now names the other order, and says that this
    call posted nothing: the same bills are already queued, by the first start) and leaves the
    claim to the first request, which, sent again as it was, finishes: one invoice and one
    payment per bill, each owing Actionstep's totalDue."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    bills = [_simple(8101, 20000), _simple(8102, 30000)]
    _mapper_lost_after(app, monkeypatch, calls=2)  # the payments' check, then the bills
    with pytest.raises(grpc.RpcError) as interrupted:
        _start(stub, bills, request_id="export-3")
    assert from_rpc_error(interrupted.value).reason == Reason.BACKFILL_INTERRUPTED
    _mapper_back(app, monkeypatch, mapper_target)

    with pytest.raises(grpc.RpcError) as reordered:
        _start(stub, list(reversed(bills)), request_id="export-3")
    _reused(reordered.value)
    said = from_rpc_error(reordered.value).message
    assert "another order" in said and "posted by this call" in said, said
    assert _claims(app) == {("firm-1", "export-3")}

    final = _finish(stub, _start(stub, bills, request_id="export-3").name)
    assert final.state == DONE and final.linked == 4 and final.refused == 0, final
    assert sorted(_invoices(emulator, org["tenant_id"])) == ["OLD-8101", "OLD-8102"]
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 2
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}
    assert _claims(app) == set()


def _firm_with_a_branch(stub: Any, emulator: EmulatorServer) -> dict[str, Any]:
    """The head office ("head", division 1) routes division 2 to its own connection ("branch");
    the branch's organisation."""
    connect(stub, emulator, "head", extended_context(division=1))
    _, branch_org = connect(stub, emulator, "branch", extended_context(division=2))
    route_divisions(stub, "head", division_connections={2: "branch"})
    return branch_org


def _of_division(bill: backfill_pb2.BackfillBill, division: int) -> backfill_pb2.BackfillBill:
    bill.bill.header.division_id = division
    for payment in bill.payments:
        payment.header.division_id = division
    return bill


@SQLITE
def test_a_routed_backfill_that_loses_the_mapper_after_its_bills_can_be_finished_by_the_same_request(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """DEFECT: the head office routes division 2 to the branch's connection. A backfill on the
    head of a division-2 bill (936.55, a 200.00 payment, totalDue 736.55) under "monthly" loses
    the mapper between the bills' batch and the payments' (the case docs/backfill.md answers
    UNAVAILABLE BACKFILL_INTERRUPTED, "send the same request again to finish it"). Routed,
    post_many turns the outage into an item failure: StartBackfill answers OK, the payment
    REFUSED MAPPER_UNAVAILABLE ("retry the request shortly"), the backfill recorded and the
    claim released. The same request sent again answers that backfill: the payment is never
    posted and the branch's Xero invoice owes 936.55 while Actionstep says 736.55."""
    app = poster_factory()
    stub = stub_for(app)
    branch_org = _firm_with_a_branch(stub, emulator)
    bills = [_of_division(_simple(7901, 20000), 2)]
    _mapper_lost_after(app, monkeypatch, calls=2)  # the payments' check, then the bills
    first: Answer
    try:
        first = _start(stub, bills, "head", request_id="monthly")
    except grpc.RpcError as err:
        first = err
    _mapper_back(app, monkeypatch, mapper_target)

    if isinstance(first, backfill_pb2.Backfill):
        said = sorted(f"{i.record.id}: {i.error.reason or 'accepted'}" for i in first.items)
    else:
        said = [f"{first.code()} {from_rpc_error(first).reason}"]

    final = _finish(stub, _start(stub, bills, "head", request_id="monthly").name)
    assert _amount_due_mismatches(emulator, branch_org["tenant_id"], bills) == {}, f"first answered {said}"
    assert final.state == DONE and final.refused == 0 and final.linked == 2, final


@SQLITE
def test_a_branch_keeps_its_own_request_ids_while_the_head_office_holds_one(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: a backfill on the head of a division-2 bill (routed to the branch) under
    "monthly" crashes after its claim: the head holds "monthly". The branch's own backfill under
    "monthly", other bills, is the branch's request_id and is started; another request on the
    head under "monthly" is refused with nothing of it posted; the head's request sent again
    finishes in the branch's organisation."""
    app = poster_factory()
    stub = stub_for(app)
    branch_org = _firm_with_a_branch(stub, emulator)
    head_request = [_of_division(_simple(7911, 20000), 2)]
    with monkeypatch.context() as patch:
        patch.setattr(Poster, "post_many", _crash)
        with pytest.raises(grpc.RpcError):
            _start(stub, head_request, "head", request_id="monthly")
    assert _claims(app) == {("head", "monthly")}

    branch_run = _finish(
        stub, _start(stub, [_of_division(_simple(7912, 30000), 2)], "branch", request_id="monthly").name
    )
    assert branch_run.state == DONE and branch_run.linked == 2, branch_run
    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_of_division(_simple(7913, 40000), 2)], "head", request_id="monthly")
    _reused(other.value)
    assert "OLD-7913" not in _invoices(emulator, branch_org["tenant_id"])

    final = _finish(stub, _start(stub, head_request, "head", request_id="monthly").name)
    assert final.state == DONE and final.linked == 2 and final.refused == 0, final
    assert _amount_due_mismatches(emulator, branch_org["tenant_id"], head_request) == {}
    assert _claims(app) == set()


@SQLITE
def test_a_backfill_whose_every_bill_is_refused_releases_its_claim_and_keeps_its_request_id(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: every bill of the request is refused (closed, and a payment of another bill), so
    nothing is posted, but the backfill is recorded: the claim goes with the record, the same
    request again answers that backfill, and another request under the request_id is refused
    naming it."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    closed = _simple(8001, 20000)
    closed.status = backfill_pb2.BILL_STATUS_CLOSED
    wrong = _simple(8002, 30000)
    wrong.payments[0].client_bill_payment.bill_id = 8001
    bills = [closed, wrong]

    started = _start(stub, bills, request_id="all-refused")

    assert started.refused == started.total == 4 and _records(stub) == set()
    assert {i.outcome for i in started.items} == {REFUSED}
    assert _claims(app) == set()
    assert _start(stub, bills, request_id="all-refused").name == started.name
    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_simple(8003, 20000)], request_id="all-refused")
    _reused(other.value)
    assert started.backfill_id in from_rpc_error(other.value).message
    assert _records(stub) == set()


# -- the revision --------------------------------------------------------------------------------


def _downgraded_holding_a_claim(db: Database, revision: str, holders: int) -> None:
    """A registry at head with request_id "held" of firm-1 claimed by `holders` starts,
    downgraded to `revision`."""
    migrate(db)
    with db.write.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO backfill_claim (connection_id, request_id, fingerprint, create_us, holders) "
                "VALUES ('firm-1', 'held', :f, 1, :n)"
            ),
            {"f": "f" * 64, "n": holders},
        )
    with db.write.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


@BOTH
def test_revision_0009_downgrades_with_claims_held_and_upgrades_to_the_table_classes(database_url: str) -> None:
    """GUARD: a registry with a claim held downgrades to 0008 (backfill_claim dropped,
    the backfill tables kept) and upgrades back to head with an empty backfill_claim whose
    schema matches the table classes."""
    db = open_database(database_url)
    try:
        _downgraded_holding_a_claim(db, "0008", holders=1)
        assert current_revision(db) == "0008"
        with db.read.connect() as conn:
            tables = set(db.read.dialect.get_table_names(conn))
        assert "backfill_claim" not in tables and {"backfill", "backfill_item"} <= tables

        assert migrate(db) == head_revision() and current_revision(db) == head_revision()
        with db.read.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM backfill_claim")).scalar_one() == 0
        assert _differences(db) == []
    finally:
        db.dispose()


@BOTH
def test_revision_0010_keeps_a_held_claim_through_its_downgrade_and_upgrade(database_url: str) -> None:
    """GUARD: a claim held by two starts at 0010 stays through a downgrade to 0009 (only the
    count goes) and an upgrade back, with one hold: a start of the claim's request, still
    running or stopped part-way, keeps the request_id. The schema then matches the classes."""
    db = open_database(database_url)
    try:
        _downgraded_holding_a_claim(db, "0009", holders=2)
        with db.read.connect() as conn:
            columns = {c["name"] for c in db.read.dialect.get_columns(conn, "backfill_claim")}
            kept = conn.execute(text("SELECT connection_id, request_id FROM backfill_claim")).all()
        assert "holders" not in columns and [tuple(r) for r in kept] == [("firm-1", "held")]

        assert migrate(db) == head_revision()
        with db.read.connect() as conn:
            holders = conn.execute(text("SELECT holders FROM backfill_claim")).scalars().all()
        assert holders == [1]
        assert _differences(db) == []
    finally:
        db.dispose()
