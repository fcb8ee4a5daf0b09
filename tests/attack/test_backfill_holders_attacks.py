"""Attacks on the holds of a backfill's request_id claim (revision 0010, backfill_claim.holders;
service_layer/backfill.py: start_backfill, _claim_request, _drop_hold, _record_backfill), from
outside: joined retries failing with nothing queued or stopping part-way in several orders,
crashes, a record made while others hold, restarts and the revision, a failing drop, a routed
firm, a disconnected connection.

The promise (docs/backfill.md, StartBackfill step 3): every start of a request holds its
request_id's claim; one that fails having queued nothing drops its own hold, the claim going
with the last; one that queued something, or crashed, never does, so the first request sent
again finishes; a recorded backfill frees the claim. A bill in Xero owing money already paid,
or a request that can never be finished, is a defect.

Each docstring starts with "DEFECT:" (fails now) or "GUARD:" (holds). Real posters on loopback,
the real mapper and the Xero emulator; the races run on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import pytest
from alembic import command
from sqlalchemy import text
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import backfill_pb2, connection_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.migrations import alembic_config, head_revision, migrate
from xerolink_poster.adapters.repositories.backfills import SqlBackfillRepository
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.service_layer import backfill
from xerolink_poster.service_layer.posting import Poster

from tests.attack.test_backfill_attacks import (
    BILL,
    DONE,
    PAYMENT,
    REFUSED,
    _amount_due_mismatches,
    _finish,
    _invoices,
    _mapper_back,
    _mapper_lost_after,
    _records,
    _simple,
    _start,
)
from tests.attack.test_backfill_claim_attacks import _claims, _crash, _firm_with_a_branch, _of_division, _reused
from tests.fixtures.backfill_starts import Answer, at_once
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_for, xero_objects

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

# -- helpers -------------------------------------------------------------------------------------


def _holders(app: bootstrap.PosterApp) -> dict[str, int]:
    """The holds counted on each claim of firm-1 now: request_id -> holders."""
    with app.db.read.connect() as conn:
        rows = conn.execute(text("SELECT request_id, holders FROM backfill_claim WHERE connection_id = 'firm-1'"))
        return {str(r[0]): int(r[1]) for r in rows}


def _reason(answer: Answer) -> str:
    """What a start answered: the error's reason, or "OK"."""
    return "OK" if isinstance(answer, backfill_pb2.Backfill) else str(from_rpc_error(answer).reason)


def _finishes(stub: Any, emulator: EmulatorServer, tenant: str, bills: Sequence[Any], request_id: str) -> None:
    """The request sent again finishes: every transaction linked, each invoice owing totalDue."""
    final = _finish(stub, _start(stub, bills, request_id=request_id).name)
    assert final.state == DONE and final.refused == 0 and final.linked == 2 * len(bills), final
    assert _amount_due_mismatches(emulator, tenant, bills) == {}


def _refused_and_not_posted(stub: Any, bills: Sequence[Any], request_id: str) -> None:
    """Another request under the request_id is refused REQUEST_ID_REUSED, nothing of it queued."""
    with pytest.raises(grpc.RpcError) as other:
        _start(stub, bills, request_id=request_id)
    _reused(other.value)
    assert not {(BILL, b.bill.header.id) for b in bills} & _records(stub)


class Starts:
    """The poster's starts told apart by thread, numbered in the order of their first mapper call
    (the payments' check, made before the claim), which the `count` starts make together, each
    then waiting for `before_check(start)` and going to the live mapper. Each later call goes
    where `plan(start, call, requests)` says: `self.live` or `self.dead` (a port nothing listens
    on, through the poster's real client). `claimed` is set once `count` claims
    were taken; `drops` counts the holds dropped."""

    def __init__(self, app: bootstrap.PosterApp, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.live = app.mapper.map_each
        self.dead_client = MapperClient("127.0.0.1:9")
        self.number: dict[int, int] = {}
        self.calls: dict[int, int] = {}
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(count, timeout=10)
        self.claimed = threading.Event()
        self.claims = 0
        self.drops = 0
        self.count = count
        self.plan: Callable[[int, int, Any], Any] = lambda start, call, requests: self.live(requests)
        self.before_check: Callable[[int], object] = lambda start: None
        claim, drop = backfill._claim_request, backfill._drop_hold

        def claiming(*args: Any) -> str:
            try:
                return claim(*args)
            finally:
                with self.lock:
                    self.claims += 1
                    if self.claims >= count:
                        self.claimed.set()

        def dropping(*args: Any) -> None:
            drop(*args)
            with self.lock:
                self.drops += 1

        monkeypatch.setattr(backfill, "_claim_request", claiming)
        monkeypatch.setattr(backfill, "_drop_hold", dropping)
        monkeypatch.setattr(app.mapper, "map_each", self._map)

    def dead(self, requests: Any) -> Any:
        return self.dead_client.map_each(requests)

    def _map(self, requests: Any) -> Any:
        me = threading.get_ident()
        with self.lock:
            if me not in self.number:
                self.number[me] = len(self.number)
            self.calls[me] = self.calls.get(me, 0) + 1
            start, call = self.number[me], self.calls[me]
        if call > 1:
            return self.plan(start, call, requests)
        if start < self.count:
            self.barrier.wait()
        self.before_check(start)
        return self.live(requests)

    def close(self) -> None:
        self.dead_client.close()


# -- holds of starts that fail with nothing queued -----------------------------------------------


@BOTH
def test_three_holders_that_fail_in_turn_leave_the_claim_to_the_start_that_queued_the_bill(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: the same request is sent three times at once (a caller whose answers are slow), so
    three starts hold its claim. The first loses the mapper at its bills (nothing queued); then
    the second queues the bill and loses the mapper before the payment (BACKFILL_INTERRUPTED);
    then the third loses the mapper at its bills (nothing queued). Two holds are dropped, one
    stays (holders 1): another request under the request_id is refused with nothing of it
    posted, and the first request sent again finishes, the invoice owing Actionstep's
    totalDue."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(9101, 20000)]
    starts = Starts(app, monkeypatch, 3)
    early_failed, queued = threading.Event(), threading.Event()

    def plan(start: int, call: int, requests: Any) -> Any:
        assert starts.claimed.wait(10), "the three starts never all claimed"
        if start == 0:  # fails at its bills before the bill is queued
            try:
                return starts.dead(requests)
            finally:
                early_failed.set()
        if start == 1:  # queues the bill, then stops at the payment
            assert early_failed.wait(10)
            if call == 2:
                return starts.live(requests)
            try:
                return starts.dead(requests)
            finally:
                queued.set()
        assert queued.wait(10)  # fails at its bills after the bill was queued by another start
        return starts.dead(requests)

    starts.plan = plan
    answers = at_once({f"try-{n}": lambda: _start(stub, first, request_id="slow") for n in range(3)})
    monkeypatch.undo()
    starts.close()

    assert sorted(_reason(a) for a in answers.values()) == sorted(
        [Reason.MAPPER_UNAVAILABLE, Reason.MAPPER_UNAVAILABLE, Reason.BACKFILL_INTERRUPTED]
    ), answers
    assert starts.drops == 2
    assert _holders(app) == {"slow": 1}
    assert (BILL, 9101) in _records(stub) and (PAYMENT, 91011) not in _records(stub)
    _refused_and_not_posted(stub, [_simple(9102, 30000)], "slow")
    _finishes(stub, emulator, org["tenant_id"], first, "slow")
    assert _claims(app) == set()


@BOTH
def test_retries_of_an_interrupted_request_that_fail_with_nothing_queued_never_add_up_or_free_it(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """GUARD: a start is interrupted after its bill was queued (one hold, kept). The caller then
    sends the request again twice at once and three times in turn while the mapper is down at the
    bills: each retry joins the claim and drops its own hold. The count never grows past the
    starts running and comes back to 1 each time; the claim stays with the interrupted request,
    another request is refused, and the first request finishes."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(9201, 20000)]
    _mapper_lost_after(app, monkeypatch, calls=2)
    with pytest.raises(grpc.RpcError) as interrupted:
        _start(stub, first, request_id="nightly")
    assert from_rpc_error(interrupted.value).reason == Reason.BACKFILL_INTERRUPTED
    _mapper_back(app, monkeypatch, mapper_target)
    assert _holders(app) == {"nightly": 1}

    starts = Starts(app, monkeypatch, 2)
    seen: list[int] = []

    def plan(start: int, call: int, requests: Any) -> Any:
        assert starts.claimed.wait(10)
        seen.append(_holders(app)["nightly"])
        return starts.dead(requests)

    starts.plan = plan
    answers = at_once({f"try-{n}": lambda: _start(stub, first, request_id="nightly") for n in range(2)})
    for n in range(3):
        with pytest.raises(grpc.RpcError) as again:
            _start(stub, first, request_id="nightly")
        answers[f"again-{n}"] = again.value
        seen.append(_holders(app)["nightly"])
    monkeypatch.undo()
    starts.close()

    assert {_reason(a) for a in answers.values()} == {Reason.MAPPER_UNAVAILABLE}, answers
    assert max(seen) <= 3 and seen[-1] == 1, seen
    assert _holders(app) == {"nightly": 1}
    _refused_and_not_posted(stub, [_simple(9202, 30000)], "nightly")
    _finishes(stub, emulator, org["tenant_id"], first, "nightly")
    assert _claims(app) == set()


@BOTH
def test_a_joined_retry_that_crashed_keeps_the_claim_when_the_start_that_made_it_fails(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: a request is sent twice at once; both starts hold its claim. The retry fails with
    an unexpected error (not a XerolinkError: a bug, a lost registry connection) before it
    posts, answered INTERNAL; then the start that made the claim loses the mapper at its bills,
    having queued nothing, and drops its own hold. The crashed start never drops its hold, so
    the claim stays (holders 1): another request is refused, the first request finishes."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(9401, 20000)]
    starts = Starts(app, monkeypatch, 2)
    crashed = threading.Event()
    post_many = Poster.post_many

    def crashing(poster: Poster, *args: Any, **kwargs: Any) -> Any:
        if starts.number.get(threading.get_ident()) == 1:
            assert starts.claimed.wait(10)
            crashed.set()
            _crash()
        return post_many(poster, *args, **kwargs)

    def plan(start: int, call: int, requests: Any) -> Any:
        assert crashed.wait(10)
        return starts.dead(requests)

    starts.plan = plan
    monkeypatch.setattr(Poster, "post_many", crashing)
    answers = at_once({f"try-{n}": lambda: _start(stub, first, request_id="crashy") for n in range(2)})
    monkeypatch.undo()
    starts.close()

    codes = sorted(a.code().name for a in answers.values() if isinstance(a, grpc.RpcError))
    assert codes == ["INTERNAL", "UNAVAILABLE"], answers
    assert starts.drops == 1 and _holders(app) == {"crashy": 1}
    assert _records(stub) == set()
    _refused_and_not_posted(stub, [_simple(9402, 30000)], "crashy")
    _finishes(stub, emulator, org["tenant_id"], first, "crashy")
    assert _claims(app) == set()


@BOTH
def test_a_start_joined_before_another_recorded_fails_or_answers_the_record_and_frees_nothing_twice(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: a request is sent three times at once. The first start posts everything and records
    the backfill (the claim goes with the record, holders or not). The second had joined the
    claim before that record and loses the mapper at its bills afterwards: its drop finds no
    claim and changes nothing. The third claims only after the record and answers the recorded
    backfill. Each record is linked once, another request under the request_id is refused
    naming the backfill, and no claim is left."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(9501, 20000)]
    starts = Starts(app, monkeypatch, 3)
    recorded = threading.Event()
    record = backfill._record_backfill

    def recording(*args: Any, **kwargs: Any) -> str:
        try:
            return record(*args, **kwargs)
        finally:
            recorded.set()

    def plan(start: int, call: int, requests: Any) -> Any:
        if start == 1 and call == 2:  # joined, then fails at its bills after the record
            assert recorded.wait(10)
            return starts.dead(requests)
        if start == 0 and call == 2:  # posts once the second start joined
            wait_for(lambda: starts.claims >= 2, timeout=10, what="the second start's claim")
        return starts.live(requests)

    starts.plan = plan
    starts.before_check = lambda start: start != 2 or recorded.wait(10)  # the third claims after the record
    monkeypatch.setattr(backfill, "_record_backfill", recording)
    answers = at_once({f"try-{n}": lambda: _start(stub, first, request_id="once") for n in range(3)})
    monkeypatch.undo()
    starts.close()

    assert sorted(_reason(a) for a in answers.values()) == ["MAPPER_UNAVAILABLE", "OK", "OK"], answers
    names = {a.name for a in answers.values() if isinstance(a, backfill_pb2.Backfill)}
    assert len(names) == 1, names
    assert starts.drops == 1 and _claims(app) == set()
    final = _finish(stub, names.pop())
    assert final.state == DONE and final.linked == 2, final
    assert list(_invoices(emulator, org["tenant_id"])) == ["OLD-9501"]
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 1
    assert _amount_due_mismatches(emulator, org["tenant_id"], first) == {}
    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_simple(9502, 30000)], request_id="once")
    _reused(other.value)
    assert final.backfill_id in from_rpc_error(other.value).message and _claims(app) == set()
    assert _start(stub, first, request_id="once").name == final.name


@BOTH
def test_the_last_hold_dropped_while_another_request_claims_posts_one_request_or_the_other(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GUARD: the only start of request A under "weekly" loses the mapper at its bills, having
    queued nothing, and drops its hold at the very moment request B (other bills) claims
    "weekly". One goes first: either B is refused REQUEST_ID_REUSED with nothing of it posted
    and, sent again once A let go, is started, or B claims after the drop. Either way nothing of
    A is posted, B finishes once, and no claim is left."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    a, b = [_simple(9601, 20000)], [_simple(9602, 30000)]
    live = app.mapper.map_each
    dead = MapperClient("127.0.0.1:9")
    meeting = threading.Barrier(2, timeout=10)
    dropping = threading.Event()
    claim, drop = backfill._claim_request, backfill._drop_hold

    def mapping(requests: Any) -> Any:
        bill_ids = {t.header.id for t, _ in requests}
        return dead.map_each(requests) if 9601 in bill_ids else live(requests)

    def claiming(*args: Any) -> str:
        if dropping.is_set():  # B's claim: A holds the claim and is dropping its hold
            meeting.wait()
        return claim(*args)

    def dropped(*args: Any) -> None:
        dropping.set()
        meeting.wait()
        drop(*args)

    monkeypatch.setattr(app.mapper, "map_each", mapping)
    monkeypatch.setattr(backfill, "_claim_request", claiming)
    monkeypatch.setattr(backfill, "_drop_hold", dropped)

    def start_b() -> backfill_pb2.Backfill:
        assert dropping.wait(10), "A never dropped its hold"
        return _start(stub, b, request_id="weekly")

    answers = at_once({"a": lambda: _start(stub, a, request_id="weekly"), "b": start_b})
    monkeypatch.undo()
    dead.close()

    assert _reason(answers["a"]) == Reason.MAPPER_UNAVAILABLE, answers
    assert _claims(app) == set()
    started = answers["b"]
    if isinstance(started, grpc.RpcError):
        _reused(started)
        assert _records(stub) == set()
        started = _start(stub, b, request_id="weekly")
    final = _finish(stub, started.name)
    assert final.state == DONE and final.linked == 2, final
    assert {r for _, r in _records(stub)} == {9602, 96021}
    assert list(_invoices(emulator, org["tenant_id"])) == ["OLD-9602"]
    assert _amount_due_mismatches(emulator, org["tenant_id"], b) == {}
    assert _claims(app) == set()


@SQLITE
def test_a_drop_whose_transaction_fails_answers_the_starts_own_error_and_keeps_the_claim_for_it(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """GUARD: a start of a bill alone under "ad-hoc" loses the mapper at its bills (nothing
    queued) and its drop's transaction fails too (the registry lost at that moment). The caller
    is answered the start's own error (UNAVAILABLE MAPPER_UNAVAILABLE), not the drop's; the hold
    left behind keeps the request_id only for the request that failed: another request is
    refused with nothing of it posted, and the first sent again finishes and frees it."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(9701)]

    def failing(*args: Any) -> None:
        raise RuntimeError("the registry went away")

    monkeypatch.setattr(SqlBackfillRepository, "drop_hold", failing)
    _mapper_lost_after(app, monkeypatch, calls=0)
    with pytest.raises(grpc.RpcError) as failed:
        _start(stub, first, request_id="ad-hoc")
    _mapper_back(app, monkeypatch, mapper_target)

    error = from_rpc_error(failed.value)
    assert (failed.value.code(), error.reason) == (grpc.StatusCode.UNAVAILABLE, Reason.MAPPER_UNAVAILABLE), error
    assert _records(stub) == set() and _holders(app) == {"ad-hoc": 1}
    _refused_and_not_posted(stub, [_simple(9702)], "ad-hoc")
    final = _finish(stub, _start(stub, first, request_id="ad-hoc").name)
    assert final.state == DONE and final.linked == 1, final
    assert _amount_due_mismatches(emulator, org["tenant_id"], first) == {}
    assert _claims(app) == set()


# -- holds across a restart, the revision and a firm's divisions --------------------------------


@BOTH
def test_holds_kept_across_a_restart_and_the_revisions_downgrade_and_upgrade_still_keep_the_request(
    poster_factory: PosterFactory,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    mapper_target: str,
    database_url: str,
) -> None:
    """GUARD: on one poster a start is interrupted after its bill was queued and a retry crashes
    (holders 2, neither ever lets go). The poster stops; the registry is downgraded to 0009 and
    upgraded back (the count becomes 1); a new poster starts. A retry there loses the mapper at
    its bills and drops only its own hold: the claim stays, another request is refused with
    nothing of it posted, and the first request, sent to the new poster, finishes."""
    old = poster_factory(run_dispatcher=False)
    stub = stub_for(old)
    _, org = connect(stub, emulator)
    first = [_simple(9801, 20000)]
    _mapper_lost_after(old, monkeypatch, calls=2)
    with pytest.raises(grpc.RpcError) as interrupted:
        _start(stub, first, request_id="upgrade")
    assert from_rpc_error(interrupted.value).reason == Reason.BACKFILL_INTERRUPTED
    _mapper_back(old, monkeypatch, mapper_target)
    with monkeypatch.context() as patch:
        patch.setattr(Poster, "post_many", _crash)
        with pytest.raises(grpc.RpcError):
            _start(stub, first, request_id="upgrade")
    assert _holders(old) == {"upgrade": 2}
    old.stop(0)

    db = open_database(database_url)
    try:
        with db.write.begin() as conn:
            command.downgrade(alembic_config(conn), "0009")
        assert migrate(db) == head_revision()
    finally:
        db.dispose()

    new = poster_factory(name="after-upgrade")
    stub = stub_for(new)
    assert _holders(new) == {"upgrade": 1}
    _mapper_lost_after(new, monkeypatch, calls=1)  # the payments' check, then the bills
    with pytest.raises(grpc.RpcError) as failed:
        _start(stub, first, request_id="upgrade")
    assert from_rpc_error(failed.value).reason == Reason.MAPPER_UNAVAILABLE
    _mapper_back(new, monkeypatch, mapper_target)
    assert _holders(new) == {"upgrade": 1}

    _refused_and_not_posted(stub, [_simple(9802, 30000)], "upgrade")
    _finishes(stub, emulator, org["tenant_id"], first, "upgrade")
    assert _claims(new) == set()


@SQLITE
def test_a_routed_request_keeps_its_claim_through_retries_whose_branch_posts_fail_with_nothing_queued(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """GUARD: the head office routes division 2 to the branch. A backfill on the head of a
    division-2 bill under "monthly" is interrupted after the bill was queued under the branch;
    two retries sent at once lose the mapper at the bills (posted under the branch, the outage
    is an item failure there, not a refusal) and each drops only its own hold. The head keeps
    "monthly" for the request: another request on the head is refused with nothing of it in
    the branch's organisation, and the first request finishes there."""
    app = poster_factory()
    stub = stub_for(app)
    branch_org = _firm_with_a_branch(stub, emulator)
    first = [_of_division(_simple(9901, 20000), 2)]
    _mapper_lost_after(app, monkeypatch, calls=2)
    with pytest.raises(grpc.RpcError) as interrupted:
        _start(stub, first, "head", request_id="monthly")
    assert from_rpc_error(interrupted.value).reason == Reason.BACKFILL_INTERRUPTED
    _mapper_back(app, monkeypatch, mapper_target)

    starts = Starts(app, monkeypatch, 2)

    def plan(start: int, call: int, requests: Any) -> Any:
        assert starts.claimed.wait(10)
        return starts.dead(requests)

    starts.plan = plan
    answers = at_once({f"try-{n}": lambda: _start(stub, first, "head", request_id="monthly") for n in range(2)})
    monkeypatch.undo()
    starts.close()

    assert {_reason(a) for a in answers.values()} == {Reason.MAPPER_UNAVAILABLE}, answers
    assert starts.drops == 2 and _claims(app) == {("head", "monthly")}
    with pytest.raises(grpc.RpcError) as other:
        _start(stub, [_of_division(_simple(9902, 30000), 2)], "head", request_id="monthly")
    _reused(other.value)
    final = _finish(stub, _start(stub, first, "head", request_id="monthly").name)
    assert final.state == DONE and final.linked == 2 and final.refused == 0, final
    assert list(_invoices(emulator, branch_org["tenant_id"])) == ["OLD-9901"]
    assert _amount_due_mismatches(emulator, branch_org["tenant_id"], first) == {}
    assert _claims(app) == set()


# -- a request resent while its connection cannot post -------------------------------------------


@SQLITE
def test_an_interrupted_request_resent_while_its_connection_is_disconnected_can_still_be_finished(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, mapper_target: str
) -> None:
    """DEFECT: a start of OLD-9301 (936.55, a 200.00 payment, totalDue 736.55) under "june" is
    interrupted after the bill was queued; the bill reaches Xero owing 936.55. The organisation
    is then disconnected (a revoked token, a re-authorisation). Sent again as BACKFILL_INTERRUPTED
    told it, the request is not refused CONNECTION_DISCONNECTED as a start of a bill alone is
    (test_a_start_refused_because_the_connection_is_disconnected_claims_nothing): the payments'
    check takes the connection's refusal for the payment's own, refuses the bill with it
    (PAYMENT_REFUSED), and the start records that backfill, which frees the claim its first start
    kept. Sending the request again, after reconnecting, answers that record for ever: the payment
    is never posted and Xero keeps asking the client for 200.00 already paid."""
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    first = [_simple(9301, 20000)]
    _mapper_lost_after(app, monkeypatch, calls=2)  # the payments' check, then the bills
    with pytest.raises(grpc.RpcError) as interrupted:
        _start(stub, first, request_id="june")
    assert from_rpc_error(interrupted.value).reason == Reason.BACKFILL_INTERRUPTED
    _mapper_back(app, monkeypatch, mapper_target)
    wait_for(lambda: "OLD-9301" in _invoices(emulator, org["tenant_id"]), what="the queued bill in Xero")
    stub.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1"), timeout=10)

    answer: Answer
    try:
        answer = _start(stub, first, request_id="june")
    except grpc.RpcError as err:
        answer = err
    if isinstance(answer, backfill_pb2.Backfill):
        again = _start(stub, first, request_id="june")
        said = sorted(f"{i.record.id} {i.error.reason}" for i in again.items if i.outcome == REFUSED)
        due = _invoices(emulator, org["tenant_id"])["OLD-9301"]["AmountDue"]
        pytest.fail(
            f"the retry recorded backfill {answer.name} (claims left {_claims(app)}); sent again it answers "
            f"{again.name} refusing {said}, and OLD-9301 owes {due} in Xero, Actionstep 736.55"
        )
    error = from_rpc_error(answer)
    assert (answer.code(), error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, Reason.CONNECTION_DISCONNECTED)
    assert _holders(app) == {"june": 1}


@SQLITE
def test_a_request_with_payments_on_a_disconnected_connection_is_refused_whole_and_claims_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: on a disconnected connection a start of a bill alone is refused FAILED_PRECONDITION
    CONNECTION_DISCONNECTED with nothing recorded (the claim's own attacks guard it), but a start
    of OLD-9311 with its 200.00 payment under "q3" answers OK: the payments' check takes the
    connection's refusal for the payment's own, the bill is refused PAYMENT_REFUSED, and that
    backfill of refusals is recorded under "q3". Once the organisation is connected again, the
    same request under "q3" answers that record for ever: it can never be posted under its
    request_id, while a bill alone would have been."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    stub.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1"), timeout=10)
    with pytest.raises(grpc.RpcError) as alone:
        _start(stub, [_simple(9310)], request_id="alone")
    assert from_rpc_error(alone.value).reason == Reason.CONNECTION_DISCONNECTED
    answer: Answer
    try:
        answer = _start(stub, [_simple(9311, 20000)], request_id="q3")
    except grpc.RpcError as err:
        answer = err

    refusing = (
        [] if isinstance(answer, grpc.RpcError) else sorted(f"{i.record.id} {i.error.reason}" for i in answer.items)
    )
    assert isinstance(answer, grpc.RpcError), f"OK, recorded {answer.name} under 'q3' refusing {refusing}"
    error = from_rpc_error(answer)
    assert (answer.code(), error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, Reason.CONNECTION_DISCONNECTED)
    assert _records(stub) == set() and _claims(app) == set()
