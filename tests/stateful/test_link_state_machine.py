"""A stateful property test of the poster: hypothesis drives sequences of post, repost (same and
changed content), unlink, crash-restart (SIGKILL of the `xerolink-poster` process, at a random
moment or between a Xero write and its answer) and settle against a real poster process, the
mapper process and the emulator, and checks the registry against tests/stateful/link_model.py
and the emulator's objects: no duplicate, every object traced to its record and generation, the
objects of unlinked records left in Xero (orphaned), never deleted.

CI runs a few short sequences, derandomized and not shrunk; more, and a failure shrunk, with
    XEROLINK_STATEFUL_EXAMPLES=50 XEROLINK_STATEFUL_STEPS=30 XEROLINK_STATEFUL_SHRINK=1 \
        python -m pytest tests/stateful"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.xero_payloads import kind_code
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer import unlinking

from tests.crash import xero_trace
from tests.crash.harness import CHANNEL_OPTIONS, CommitTrap, CrashPlan, PosterProcess, poster_env
from tests.crash.xero_trace import GONE
from tests.fixtures.postgres import create_database
from tests.fixtures.processes import free_port
from tests.stateful.link_model import LinkModel

EXAMPLES = int(os.environ.get("XEROLINK_STATEFUL_EXAMPLES", "10"))
STEPS = int(os.environ.get("XEROLINK_STATEFUL_STEPS", "15"))
# Every step drives real processes, so shrinking a failure costs minutes: on request only. The
# failing sequence is printed either way.
SHRINK = os.environ.get("XEROLINK_STATEFUL_SHRINK", "") == "1"
SETTLE_SECONDS = 30.0
CALL_SECONDS = 30.0
# What a caller sees from a poster killed under its call, or not listening yet.
KILLED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
KILLS_PER_SEQUENCE = 2  # each costs a process start; more steps go to posts and unlinks
NAMES = sorted(LinkModel().records)
STATE_NAMES = {poster_pb2.LinkState.Value(f"LINK_STATE_{s}"): s for s in ("PENDING", "WAITING", "LINKED", "FAILED")}
STATE_NAMES[poster_pb2.LINK_STATE_UNLINKED] = "UNLINKED"


@dataclass
class World:
    """What the sequences share: the emulator, one poster process (restarted after each kill)
    on one registry (a SQLite file, or a PostgreSQL database), and the registry opened here for
    the service-layer unlink."""

    emulator: EmulatorServer
    poster: PosterProcess
    trap: CommitTrap
    stub: poster_grpc.PosterServiceStub
    db: Database
    connections: Iterator[int]

    # Calls answered only after a retry: the first attempt may have been done before a kill.
    retried: int = 0

    def alive(self) -> poster_grpc.PosterServiceStub:
        """The poster, started again if a kill left it dead."""
        with self.poster.lock:
            dead = self.poster.proc is None or self.poster.proc.poll() is not None
        if dead:
            self.poster.start()
        return self.stub

    def call(self, method: str, request: object) -> Any:
        """A call through a poster that may be dying (a kill armed at the next write lands in any
        call) or restarting: each attempt starts a dead poster first and fails fast instead of
        waiting for a server that nobody will start. Every retried call is safe to repeat: posts
        are idempotent, corrections resume, reads and confirmed unlinks of unlinked records
        change nothing."""
        deadline = time.monotonic() + CALL_SECONDS
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = getattr(self.alive(), method)(request, timeout=CALL_SECONDS)
            except grpc.RpcError as err:
                if err.code() not in KILLED or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            if attempt > 1:
                self.retried += 1
            return answer


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, mapper_process_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("stateful")
    if request.param == "postgres":
        url = create_database(request.getfixturevalue("postgres_server"))
    else:
        url = f"sqlite:///{workdir / 'registry.db'}"
    port = free_port()
    plan = CrashPlan(database_url=url, workdir=workdir, minute_seconds=1.0, batch_size=10)
    emulator = EmulatorServer(EmulatorConfig(minute_seconds=1.0, access_token_minutes=100_000.0)).start()
    poster = PosterProcess(port, poster_env(plan, port, mapper_process_target), Path(workdir))
    trap = CommitTrap(emulator, poster)
    poster.start()
    db = open_database(url)
    with grpc.insecure_channel(f"127.0.0.1:{port}", CHANNEL_OPTIONS) as channel:
        yield World(emulator, poster, trap, poster_grpc.PosterServiceStub(channel), db, itertools.count(1))
    trap.armed.clear()
    poster.stop()
    db.dispose()
    emulator.stop()


class LinkMachine(RuleBasedStateMachine):
    world: World
    seen: Counter[str] = Counter()  # what the sequences did, across examples

    def __init__(self) -> None:
        super().__init__()
        self.model = LinkModel()
        self.connection = f"machine-{next(self.world.connections)}"
        self.org = self.world.emulator.create_organisation(self.connection)
        register_emulated_connection(
            self.world.alive(), self.connection, self.world.emulator.base_url, self.org, samples.demo_context()
        )
        self.is_settled = True
        self.kills = 0

    # -- helpers ------------------------------------------------------------------------------
    def _post(self, name: str, version: int | None = None) -> poster_pb2.PostTransactionResponse:
        request = poster_pb2.PostTransactionRequest(
            connection_id=self.connection, transaction=self.model.transaction(name, version)
        )
        return self.world.call("PostTransaction", request)  # type: ignore[no-any-return]

    def _key(self, name: str) -> common_pb2.RecordKey:
        r = self.model.records[name]
        return common_pb2.RecordKey(kind=r.kind, id=r.record_id)

    def _objects(self, names: list[str]) -> dict[str, set[str]]:
        return {n: {o.xero_id for o in self._link(n).xero_objects} for n in names}

    def _record(self, name: str) -> RecordRef:
        r = self.model.records[name]
        return RecordRef(r.kind, r.record_id)

    def _link(self, name: str) -> poster_pb2.Link:
        r = self.model.records[name]
        request = poster_pb2.GetLinkRequest(
            connection_id=self.connection, record=common_pb2.RecordKey(kind=r.kind, id=r.record_id)
        )
        return self.world.call("GetLink", request).link  # type: ignore[no-any-return]

    def _states(self) -> dict[str, str]:
        by_record = {(r.kind, r.record_id): name for name, r in self.model.records.items()}
        request = poster_pb2.ListLinksRequest(connection_id=self.connection, page_size=100)
        links = self.world.call("ListLinks", request).links
        return {by_record[(link.record.kind, link.record.id)]: STATE_NAMES[link.state] for link in links}

    # -- rules --------------------------------------------------------------------------------
    def _postable(self) -> list[str]:
        """Records never posted, and those whose repeat is recognised even before settling."""
        return [
            name
            for name, r in self.model.records.items()
            if not r.posted or (not r.unlinked and self.model.settled_state(name) in ("LINKED", "WAITING"))
        ]

    def _posted(self, linked_only: bool = False) -> list[str]:
        return [name for name, r in self.model.records.items() if r.posted and not (linked_only and r.unlinked)]

    @precondition(lambda self: self._postable())
    @rule(data=st.data())
    def post(self, data: st.DataObject) -> None:
        """A first post of a record; posting it again before it settles repeats the content."""
        name = data.draw(st.sampled_from(self._postable()), label="record")
        r = self.model.records[name]
        retried = self.world.retried
        answer = self._post(name)
        if r.posted:
            assert answer.posting.duplicate, f"{name}: the same content again must be recognised"
            assert answer.posting.posting_id == r.posting
            self.seen["repeat before settling"] += 1
            return
        # A first post answered only after a retry may have been accepted by the killed poster.
        assert not answer.posting.duplicate or self.world.retried > retried, f"{name}: a first post is new"
        self.seen["first post"] += 1
        self.model.accepted(name, answer.posting.posting_id, changed=False)
        self.is_settled = False

    @precondition(lambda self: self._posted())
    @rule(data=st.data(), changed=st.booleans())
    def repost(self, data: st.DataObject, changed: bool) -> None:
        """The record posted again, as it is or changed, once everything has settled."""
        name = data.draw(st.sampled_from(self._posted()), label="record")
        r = self.model.records[name]
        self.settle()
        state = self.model.settled_state(name)
        version = r.version + 1 if changed else r.version
        if state == "LINKED" and changed:
            with pytest.raises(grpc.RpcError) as refused:
                self._post(name, version)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "locked - unlink first" in str(refused.value.details())
            self.seen["refused: locked"] += 1
            return
        answer = self._post(name, version)
        if state in ("LINKED", "WAITING") and not changed:
            assert answer.posting.duplicate and answer.posting.posting_id == r.posting
            self.seen["repost: duplicate"] += 1
            return
        assert not answer.posting.duplicate, f"{name} in {state}: posting it again must queue work"
        self.seen[f"repost of {state}"] += 1
        self.model.accepted(name, answer.posting.posting_id, changed)
        self.is_settled = False

    @precondition(lambda self: self._posted(linked_only=True))
    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        """Unlinking once everything has settled (a pending record cannot be unlinked)."""
        name = data.draw(st.sampled_from(self._posted(linked_only=True)), label="record")
        self.settle()
        objects = {o.xero_id for o in self._link(name).xero_objects}
        row = unlinking.unlink(self.world.db, self.connection, self._record(name), "stateful-test")
        assert row.state == "unlinked"
        self.model.unlinked(name, objects)
        self.seen["unlink"] += 1

    @precondition(lambda self: self._posted())
    @rule(data=st.data(), cascade=st.booleans())
    def unlink_request(self, data: st.DataObject, cascade: bool) -> None:
        """The operator's UnlinkLinks (confirmed), with or without cascade, once settled."""
        name = data.draw(st.sampled_from(self._posted()), label="record")
        self.settle()
        refused, affected = self.model.unlink_request(name, cascade)
        objects = self._objects(affected)
        request = unlink_pb2.UnlinkLinksRequest(
            connection_id=self.connection, records=[self._key(name)], confirm=True, cascade=cascade, reason="test"
        )
        if refused:
            with pytest.raises(grpc.RpcError) as refusal:
                self.world.call("UnlinkLinks", request)
            assert refusal.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refusal.value.details()
            self.seen["unlink request refused: linked payments"] += 1
            return
        answer = self.world.call("UnlinkLinks", request)
        assert answer.unlinked_count == len(affected), (answer, affected)
        for unlinked in affected:
            self.model.unlinked(unlinked, objects[unlinked])
        self.seen["unlink request" + (" with cascade" if len(affected) > 1 else "")] += 1

    def _linked(self) -> list[str]:
        return [name for name, state in self.model.settled().items() if state == "LINKED"]

    @precondition(lambda self: self._linked())
    @rule(data=st.data())
    def correct(self, data: st.DataObject) -> None:
        """ApplyCorrection (EDIT) of a linked record, once settled; a kill armed at the next write
        lands inside the saga, and applying again resumes it."""
        self.settle()
        name = data.draw(st.sampled_from(self._linked()), label="record")
        outcome, affected = self.model.correction(name)
        objects = self._objects(affected)
        request = correction_pb2.ApplyCorrectionRequest(
            connection_id=self.connection, record=self._key(name), intent=correction_pb2.CORRECTION_INTENT_EDIT
        )
        if outcome != "completed":
            with pytest.raises(grpc.RpcError) as refusal:
                self.world.call("ApplyCorrection", request)
            assert refusal.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refusal.value.details()
            self.seen[f"correction {outcome}"] += 1
            return
        answer = self.world.call("ApplyCorrection", request)
        state = answer.correction.state
        assert state == correction_pb2.CORRECTION_STATE_COMPLETED, answer
        for corrected in affected:
            self.model.unlinked(corrected, objects[corrected], corrected=True)
        self.seen["correction completed"] += 1

    @precondition(lambda self: self.kills < KILLS_PER_SEQUENCE)
    @rule(at_commit=st.booleans())
    def crash_restart(self, at_commit: bool) -> None:
        """SIGKILL now, or at the next Xero write after its objects are created. The poster is
        started again by the next step that calls it."""
        self.kills += 1
        if at_commit:
            self.seen["kill at the next write"] += 1
            self.world.trap.sprung.clear()
            self.world.trap.armed.set()
            return
        with self.world.poster.lock:
            alive = self.world.poster.proc is not None and self.world.poster.proc.poll() is None
        if alive:
            self.seen["kill now"] += 1
            self.world.poster.kill()

    @rule()
    def settle(self) -> None:
        """Waits until every link is where the model says it ends, then checks Xero."""
        if self.is_settled:
            return
        expected = self.model.settled()
        deadline = time.monotonic() + SETTLE_SECONDS
        while (actual := self._states()) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert actual == expected, f"registry {actual} != model {expected}"
        if self.world.trap.sprung.is_set():
            self.seen["killed between a write and its answer"] += 1
            self.world.trap.sprung.clear()
        self.world.trap.armed.clear()  # a kill not sprung by now would land in another sequence
        self.seen.update(f"settled {state}" for state in expected.values())
        self.model.observed_settled()
        self.is_settled = True
        self._check_xero()

    def _check_xero(self) -> None:
        links = [self._link(name) for name, r in self.model.records.items() if r.posted]
        generations = {(kind_code(r.kind), r.record_id): r.generation for r in self.model.records.values() if r.posted}
        snapshot = xero_trace.snapshot(self.world.emulator, self.org["tenant_id"])
        report = xero_trace.check(snapshot, xero_trace.expected_from_links(links, generations))
        assert not report.problems, report.problems
        present = snapshot.by_id()
        orphans = set()
        token = ""
        while True:
            request = unlink_pb2.ListOrphansRequest(connection_id=self.connection, page_size=100, page_token=token)
            page = self.world.call("ListOrphans", request)
            orphans |= {o.xero_id for o in page.orphans}
            token = page.next_page_token
            if not token:
                break
        expected_orphans = {o for r in self.model.records.values() for o in r.orphans | r.corrected}
        assert orphans == expected_orphans, f"ListOrphans {orphans} != model {expected_orphans}"
        for r in self.model.records.values():
            for gone in r.corrected:
                assert present[gone].status in GONE, f"{r.name}'s {gone} was corrected but is {present[gone].status}"
                self.seen["corrected object checked"] += 1
            for orphan in r.orphans:
                assert orphan in present or orphan in snapshot.allocations, f"{r.name}'s orphan {orphan} is gone"
                if orphan in present:
                    assert present[orphan].status not in GONE, f"{r.name}'s orphan {orphan} was deleted or voided"
                self.seen["orphan checked"] += 1

    @invariant()
    def no_duplicate_in_xero(self) -> None:
        snapshot = xero_trace.snapshot(self.world.emulator, self.org["tenant_id"])
        assert not xero_trace.duplicates(snapshot)

    def teardown(self) -> None:
        """Every sequence ends settled and checked."""
        try:
            self.settle()
        finally:
            self.world.trap.armed.clear()


@pytest.mark.timeout(900)
def test_the_registry_follows_the_model_through_posts_unlinks_and_crashes(world: World) -> None:
    LinkMachine.world = world
    LinkMachine.seen = Counter()  # each registry's run must reach everything on its own
    run_state_machine_as_test(
        LinkMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if SHRINK else [])],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"\nstateful sequences did: {dict(sorted(LinkMachine.seen.items()))}")
    # The sequences must have reached what they are there to check, not only posted and settled.
    needed = ("unlink", "unlink request", "correction completed", "refused: locked", "orphan checked", "kill now")
    for needed_step in (*needed, "settled LINKED"):
        assert LinkMachine.seen[needed_step], f"no sequence did {needed_step!r}: {dict(LinkMachine.seen)}"
