"""Attacks on what a Post reads of the connection it holds while it is written (share_connection:
three columns, FOR SHARE on PostgreSQL, reused for the target's ledgers) and on links_for's prebuilt
statement (an expanding IN), from outside: the service layer's Poster with the real mapper on the
real registries, a second poster process (its own engines) where a careless operator changes the
routing mid-post, real threads and PostgreSQL's row locks. Each test states a rule of
docs/matters-and-organisations.md ("A record belongs in one organisation") and fails while it is
broken: what is stored, which error, who waits for whom."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import sqlalchemy
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.token_vault import TokenVault
from xerolink_poster.domain.kinds import TransactionKind
from xerolink_poster.domain.records import RecordRef, group_of
from xerolink_poster.service_layer import connections, posting, routing_changes
from xerolink_poster.service_layer.posting import GroupSettings, Poster
from xerolink_poster.service_layer.posting_values import ItemFailure, PostOutcome
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import wait_for
from tests.fixtures.routing import extended_context, link_row_held, sample

CLIENT_BILL = int(TransactionKind.CLIENT_BILL)
TRUST_RECEIPT = int(TransactionKind.TRUST_RECEIPT)
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

Answer = PostOutcome | XerolinkError


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _posters_keep_what_they_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poster trusts its cached connection for a second. The attacks need "a poster that read the
    connection before the change" for certain, not only when the test runs inside that second."""
    monkeypatch.setattr(posting, "CONNECTION_CACHE_SECONDS", 60.0)


@pytest.fixture
def mapper(mapper_target: str) -> Iterator[MapperClient]:
    client = MapperClient(mapper_target)
    yield client
    client.close()


@pytest.fixture
def elsewhere(database_url: str) -> Iterator[Database]:
    """Another poster process on the same registry: its own engines (and on SQLite its own queue of
    writers), where the operator's routing changes and the other posters' writes run."""
    db = open_database(database_url)
    yield db
    db.dispose()


def _connect(db: Database, connection_id: str, division: int = samples.DIVISION) -> None:
    connections.create_connection(
        db,
        TokenVault.from_environment(),
        connection_id,
        "http://127.0.0.1:9/xero",  # nothing dispatches in these tests
        f"tenant-{connection_id}",
        "access",
        "refresh",
        extended_context(division),
    )


def _routing(**routing: Any) -> organisations_pb2.ConnectionRouting:
    return organisations_pb2.ConnectionRouting(**routing)


def _route(db: Database, connection_id: str, **routing: Any) -> None:
    """The operator's UpdateConnectionRouting, on whichever poster `db` is (no cache forgotten on any other)."""
    routing_changes.update_routing(db, connection_id, _routing(**routing), validate_only=False)


def _poster(db: Database, mapper: MapperClient, *warm: str, grouping: GroupSettings | None = None) -> Poster:
    """A poster that has read (and caches) the connections `warm`."""
    poster = Poster(db, mapper, grouping or GroupSettings())
    for connection_id in warm:
        poster.require_known_connection(connection_id)
    return poster


def _post(poster: Poster, connection_id: str, tx: transaction_pb2.Transaction) -> Answer:
    try:
        return poster.post(connection_id, tx, actor="caller:attack")
    except XerolinkError as err:
        return err


def _bill(record_id: int, division: int = samples.DIVISION) -> transaction_pb2.Transaction:
    tx = samples.client_bill(record_id)
    tx.header.division_id = division
    return tx


def _receipt(base_id: int, division: int = samples.DIVISION) -> transaction_pb2.Transaction:
    return sample("trust_receipt", base_id, division)


def _accepted(answer: object, under: str) -> PostOutcome:
    assert isinstance(answer, PostOutcome), f"refused: {answer}"
    assert answer.posting is not None and not answer.duplicate, answer
    assert answer.posting.connection_id == under, f"posted under {answer.posting.connection_id}, not {under}"
    return answer


def _refused(answer: object, reason: Reason) -> None:
    if isinstance(answer, ItemFailure):
        answer = answer.error
    assert isinstance(answer, XerolinkError), f"not refused: {answer}"
    assert answer.reason == reason, answer
    expected = ErrorCode.UNAVAILABLE if reason == Reason.ROUTING_CHANGED else ErrorCode.FAILED_PRECONDITION
    assert answer.code == expected, answer


def _scalar(db: Database, sql: str) -> int:
    with db.read.connect() as conn:
        return int(conn.execute(sqlalchemy.text(sql)).scalar_one())


def _stored(db: Database) -> dict[str, int]:
    """How many rows a Post writes there are: links, postings, outbox entries, audit entries."""
    return {t: _scalar(db, f"SELECT count(*) FROM {t}") for t in ("link", "posting", "outbox", "link_audit")}


def _links_of(db: Database, kind: int, record_id: int) -> list[str]:
    """The connections the record is linked under."""
    with db.read.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text("SELECT connection_id FROM link WHERE kind = :k AND record_id = :r ORDER BY connection_id"),
            {"k": kind, "r": record_id},
        )
        return [str(r[0]) for r in rows]


class _Call:
    """A caller on a thread of its own: its answer (or the error it raised) once it returns."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.answer: object = None
        self.finished_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            self.answer = work()
        except BaseException as err:  # kept for the test to look at
            self.answer = err
        self.finished_at = time.monotonic()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 20.0) -> object:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call never returned"
        return self.answer


def _lock_waiters(db: Database) -> int:
    """PostgreSQL sessions of this registry waiting for a lock (a row lock or a transaction's end)."""
    with db.write.connect() as probe:
        return int(
            probe.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )


# -- a routing, firm group or ledgers changed after the poster read them ----------------------------


def test_a_post_to_a_connection_paired_after_the_poster_read_it_is_refused_and_stores_nothing(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """The office is paired with its trust organisation on another poster while this one still has
    the office as it was (no routing): its Posts of trust money, of office money, alone, grouped or
    in a batch, are refused ROUTING_CHANGED and nothing of them is stored. Once it reads the
    connections again the trust money goes to the trust organisation."""
    _connect(database, "office")
    _connect(database, "trust")
    poster = _poster(database, mapper, "office", "trust")
    _route(elsewhere, "office", trust_connection_id="trust")

    _refused(_post(poster, "office", _receipt(1000)), Reason.ROUTING_CHANGED)
    _refused(_post(poster, "office", _bill(2001)), Reason.ROUTING_CHANGED)
    batch = poster.post_many(
        "office", [_receipt(3000 + 100 * i) for i in range(10)] + [_bill(4001 + i) for i in range(10)]
    )
    assert len(batch) == 20
    for answer in batch:
        _refused(answer, Reason.ROUTING_CHANGED)
    assert _stored(database) == {"link": 0, "posting": 0, "outbox": 0, "link_audit": 0}

    poster.forget_connection("office")
    poster.forget_connection("trust")
    _accepted(_post(poster, "office", _receipt(1000)), under="trust")
    assert _links_of(database, TRUST_RECEIPT, _receipt(1000).header.id) == ["trust"]


def test_a_post_straight_to_a_trust_connection_whose_ledgers_changed_is_refused(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """The trust connection's own routing never changes (a trust organisation routes nothing); the
    pairing and its clearing change only its ledgers and its firm group. A Post straight to it,
    mapped with the ledgers the poster read before, is refused ROUTING_CHANGED, both when the
    office is paired and when the pairing is cleared (the group stays), and stores nothing."""
    _connect(database, "office")
    _connect(database, "trust")
    poster = _poster(database, mapper, "trust")
    _route(elsewhere, "office", trust_connection_id="trust")

    _refused(_post(poster, "trust", _receipt(1000)), Reason.ROUTING_CHANGED)
    assert _stored(database)["link"] == 0

    poster.forget_connection("trust")
    poster.require_known_connection("trust")  # ledgers TRUST now
    _route(elsewhere, "office")  # cleared: the trust connection is OFFICE_AND_TRUST again

    _refused(_post(poster, "trust", _receipt(2000)), Reason.ROUTING_CHANGED)
    assert _stored(database) == {"link": 0, "posting": 0, "outbox": 0, "link_audit": 0}

    poster.forget_connection("trust")
    _accepted(_post(poster, "trust", _bill(3001)), under="trust")


def test_a_post_routed_through_a_division_whose_connection_was_paired_since_is_refused(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """The second hop: a Post of division 2 to the head office goes to the division's connection,
    whose own routing the operator changed after this poster read it (paired with its trust
    organisation). The connection posted under is the division's, the routing that changed is the
    division's: refused ROUTING_CHANGED, nothing stored anywhere."""
    _connect(database, "head", division=1)
    _connect(database, "branch", division=2)
    _connect(database, "branch-trust", division=2)
    _route(database, "head", division_connections={2: "branch"})
    poster = _poster(database, mapper, "head", "branch", "branch-trust")
    _route(elsewhere, "branch", trust_connection_id="branch-trust")

    _refused(_post(poster, "head", _receipt(1000, division=2)), Reason.ROUTING_CHANGED)
    _refused(_post(poster, "head", _bill(2001, division=2)), Reason.ROUTING_CHANGED)
    assert _stored(database) == {"link": 0, "posting": 0, "outbox": 0, "link_audit": 0}

    # Read again, the division's trust money goes on to its trust organisation.
    for connection_id in ("head", "branch", "branch-trust"):
        poster.forget_connection(connection_id)
    _accepted(_post(poster, "head", _receipt(1000, division=2)), under="branch-trust")


def test_a_firm_group_formed_after_the_poster_read_the_connection_is_read_when_the_post_is_written(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """Routing a division to a connection joins it to the firm group without changing its own
    routing or ledgers, so a Post straight to it passes the routing check. A record already linked
    under the head office (the bill, before the firm moved it to division 2) must still be found
    there: RECORD_LINKED_ELSEWHERE, and no second link under the division's connection."""
    _connect(database, "head", division=1)
    _connect(database, "branch", division=2)
    poster = _poster(database, mapper, "head", "branch")
    _accepted(_post(poster, "head", _bill(5001, division=1)), under="head")

    _route(elsewhere, "head", division_connections={2: "branch"})

    _refused(_post(poster, "branch", _bill(5001, division=2)), Reason.RECORD_LINKED_ELSEWHERE)
    assert _links_of(database, CLIENT_BILL, 5001) == ["head"]
    # A record of no other connection of the group is posted there as before.
    _accepted(_post(poster, "branch", _bill(5002, division=2)), under="branch")


def test_posts_written_together_refuse_only_those_of_the_changed_connection(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """Group commit: Posts to the office (paired since this poster read it) and to an unrelated
    connection arrive together and are written in one transaction. The office's are refused
    ROUTING_CHANGED and store nothing; the others are accepted, each under its own connection."""
    for connection_id in ("office", "trust", "plain"):
        _connect(database, connection_id)
    poster = _poster(database, mapper, "office", "trust", "plain", grouping=GroupSettings(window=0.5, max_size=64))
    _route(elsewhere, "office", trust_connection_id="trust")
    posts = [("office", _bill(6001 + i)) for i in range(4)] + [("office", _receipt(7000 + 100 * i)) for i in range(2)]
    posts += [("plain", _bill(8001 + i)) for i in range(4)]
    answers = _race(*(partial(_post, poster, c, t) for c, t in posts))

    assert poster.writing is not None and poster.writing.largest == len(posts), "not written as one group"
    for (connection_id, _), answer in zip(posts, answers, strict=True):
        if connection_id == "office":
            _refused(answer, Reason.ROUTING_CHANGED)
        else:
            _accepted(answer, under="plain")
    with database.read.connect() as conn:
        linked = conn.execute(sqlalchemy.text("SELECT DISTINCT connection_id FROM link")).scalars().all()
    assert linked == ["plain"]
    stored = _stored(database)
    assert (stored["link"], stored["posting"], stored["outbox"]) == (4, 4, 4), stored


# -- who waits for whom ---------------------------------------------------------------------------


def test_a_post_waits_for_a_pairing_being_written_and_is_then_refused(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """The operator's pairing of the office is being written on another poster (it has locked the
    rows it changes) when this poster, which read the office before, writes a trust receipt under
    it. The Post must wait for the pairing and then see it: ROUTING_CHANGED, nothing stored, never
    the receipt under the office of a firm whose trust money is in its own organisation."""
    _connect(database, "office")
    _connect(database, "trust")
    poster = _poster(database, mapper, "office", "trust")
    receipt = _receipt(1000)

    pairing = UnitOfWork(elsewhere)
    pairing.__enter__()
    try:
        routing_changes.apply_routing(pairing, "office", _routing(trust_connection_id="trust"))
        call = _Call(lambda: _post(poster, "office", receipt))
        if database.is_sqlite:
            time.sleep(1.0)  # the Post waits for the one writer
        else:
            wait_for(lambda: _lock_waiters(database) >= 1, timeout=10)
            time.sleep(0.3)
        assert call.running, f"the Post was written while the pairing was: {call.answer}"
        pairing.commit()
    finally:
        pairing.__exit__(None, None, None)

    _refused(call.result(), Reason.ROUTING_CHANGED)
    assert _stored(database) == {"link": 0, "posting": 0, "outbox": 0, "link_audit": 0}


@ON_POSTGRES
def test_a_pairing_waits_for_a_post_being_written_under_the_office(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """docs: "On PostgreSQL a post holds its connection's row shared while it is written, and a
    routing change locks every row it changes, so a pairing waits for the posts in flight." A Post
    of a trust receipt under the office (not yet paired) is held mid-write; the operator pairs the
    office meanwhile. The pairing must not be saved before the Post is; then the receipt is the
    office's, and the trust organisation never gets it too (RECORD_LINKED_ELSEWHERE)."""
    _connect(database, "office")
    _connect(database, "trust")
    poster = _poster(database, mapper, "office", "trust")
    receipt = _receipt(1000)

    holder = link_row_held(database.write, "office", TRUST_RECEIPT, receipt.header.id)
    try:
        post = _Call(lambda: _post(poster, "office", receipt))
        wait_for(lambda: _lock_waiters(database) >= 1, timeout=10)  # checked, and writing its link
        pairing = _Call(lambda: _route(elsewhere, "office", trust_connection_id="trust"))
        wait_for(lambda: _lock_waiters(database) >= 2 or not pairing.running, timeout=10)
        time.sleep(0.5)
        assert pairing.running, f"the pairing was saved while a Post under the office was written: {pairing.answer}"
        assert post.running
    finally:
        holder.rollback()
        holder.close()

    _accepted(post.result(), under="office")
    assert pairing.result() is None
    assert _links_of(database, TRUST_RECEIPT, receipt.header.id) == ["office"]
    fresh = _poster(database, mapper, "office", "trust")
    _refused(_post(fresh, "office", receipt), Reason.RECORD_LINKED_ELSEWHERE)
    assert _links_of(database, TRUST_RECEIPT, receipt.header.id) == ["office"]


@ON_POSTGRES
def test_two_posts_of_one_record_to_two_connections_of_a_group_are_written_in_turn(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """docs: "two posts of one record to two connections of the group ... are written in turn and
    the second is refused." The firm moved a bill from division 1 to division 2 and Actionstep
    sends both versions to two posters at once: one goes to the head office, the other (routed)
    to the division's connection. The first is held mid-write; the second must wait for it, then
    find its link: RECORD_LINKED_ELSEWHERE, one link in the group."""
    _connect(database, "head", division=1)
    _connect(database, "branch", division=2)
    _route(database, "head", division_connections={2: "branch"})
    first = _poster(database, mapper, "head", "branch")
    second = _poster(elsewhere, mapper, "head", "branch")

    holder = link_row_held(database.write, "head", CLIENT_BILL, 5001)
    try:
        to_head = _Call(lambda: _post(first, "head", _bill(5001, division=1)))
        wait_for(lambda: _lock_waiters(database) >= 1, timeout=10)
        to_branch = _Call(lambda: _post(second, "head", _bill(5001, division=2)))
        wait_for(lambda: _lock_waiters(database) >= 2 or not to_branch.running, timeout=10)
        time.sleep(0.5)
        assert to_branch.running, f"written beside the other Post of the record: {to_branch.answer}"
    finally:
        holder.rollback()
        holder.close()

    _accepted(to_head.result(), under="head")
    _refused(to_branch.result(), Reason.RECORD_LINKED_ELSEWHERE)
    assert _links_of(database, CLIENT_BILL, 5001) == ["head"]


def test_posts_of_one_record_racing_to_two_connections_of_a_group_link_it_once(
    database: Database, elsewhere: Database, mapper: MapperClient
) -> None:
    """The same race without a held writer, many records: two posters (two processes) post each
    record at once, one version to the head office, the other routed to the division's
    connection. Each record is accepted once and linked under one connection of the group; the
    other Post is refused RECORD_LINKED_ELSEWHERE."""
    _connect(database, "head", division=1)
    _connect(database, "branch", division=2)
    _route(database, "head", division_connections={2: "branch"})
    first = _poster(database, mapper, "head", "branch", grouping=GroupSettings(enabled=False))
    second = _poster(elsewhere, mapper, "head", "branch", grouping=GroupSettings(enabled=False))

    for record_id in range(9001, 9013):
        answers = _race(
            partial(_post, first, "head", _bill(record_id, division=1)),
            partial(_post, second, "head", _bill(record_id, division=2)),
        )
        accepted = [a for a in answers if isinstance(a, PostOutcome)]
        assert len(accepted) == 1, f"record {record_id}: {answers}"
        _refused(next(a for a in answers if not isinstance(a, PostOutcome)), Reason.RECORD_LINKED_ELSEWHERE)
        assert accepted[0].posting is not None
        assert _links_of(database, CLIENT_BILL, record_id) == [accepted[0].posting.connection_id]


def _race(*work: Callable[[], object]) -> list[object]:
    """The callers, each on its own thread, released at once; their answers in order."""
    barrier = threading.Barrier(len(work))

    def released(one: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            barrier.wait()
            return one()

        return run

    calls = [_Call(released(w)) for w in work]
    return [call.result() for call in calls]


# -- links_for --------------------------------------------------------------------------------------

_LINK = sqlalchemy.table(
    "link",
    *(
        sqlalchemy.column(name)
        for name in (
            "connection_id",
            "kind",
            "record_id",
            "link_group",
            "state",
            "fingerprint",
            "generation",
            "attempts",
            "last_error",
            "xero_objects",
            "waiting_on",
            "outcome_unknown",
            "posting_id",
            "create_us",
            "update_us",
        )
    ),
)


def _insert_links(db: Database, connection_id: str, records: list[RecordRef]) -> None:
    rows = [
        {
            "connection_id": connection_id,
            "kind": r.kind,
            "record_id": r.id,
            "link_group": int(group_of(r.kind)),
            "state": "linked",
            "fingerprint": f"{connection_id}:{r.kind}:{r.id}",
            "generation": 1,
            "attempts": 0,
            "last_error": None,
            "xero_objects": "[]",
            "waiting_on": "[]",
            "outcome_unknown": False,
            "posting_id": f"{connection_id}-{r.kind}-{r.id}",
            "create_us": 1,
            "update_us": 1,
        }
        for r in records
    ]
    with db.write.begin() as conn:
        conn.execute(_LINK.insert(), rows)


KINDS = (CLIENT_BILL, TRUST_RECEIPT, int(TransactionKind.SUPPLIER_INVOICE), int(TransactionKind.GENERAL_JOURNAL))
BIG = 2**40  # record ids are 64-bit


def test_links_for_finds_every_link_of_many_kinds_and_ids_and_none_of_another_connection(
    database: Database,
) -> None:
    """Every existing link of the records asked for, of four kinds and 6,000 ids a kind (more than
    a backfill's 5,000 transactions; more than SQLite's old 999 variables), 64-bit ids among them;
    none of another connection that links the same records, none of records not asked for."""
    ours = [RecordRef(k, i) for k in KINDS for i in range(2, 12_001, 2)]  # even ids
    ours += [RecordRef(CLIENT_BILL, BIG + i) for i in range(0, 200, 2)]
    theirs = [RecordRef(k, i) for k in KINDS for i in range(1, 6_001)]  # every id asked, the same kinds
    theirs += [RecordRef(CLIENT_BILL, BIG + i) for i in range(200)]
    _insert_links(database, "ours", ours)
    _insert_links(database, "theirs", theirs)
    _insert_links(database, "ours", [RecordRef(CLIENT_BILL, 50_000)])  # linked, never asked for
    asked = [RecordRef(k, i) for k in KINDS for i in range(1, 6_001)]  # half linked (the even ones)
    asked += [RecordRef(CLIENT_BILL, BIG + i) for i in range(200)]
    asked += [RecordRef(int(TransactionKind.TRUST_PAYMENT), i) for i in range(1, 50)]  # a kind nobody has

    for write in (False, True):
        with UnitOfWork(database, write=write) as uow:
            found = uow.links.links_for("ours", asked)
            assert set(found) == set(asked) & set(ours), f"write={write}: {len(found)} found"
            for record, link in found.items():
                assert (link.connection_id, link.kind, link.record_id) == ("ours", record.kind, record.id)
                assert link.fingerprint == f"ours:{record.kind}:{record.id}"
            # The same statement again with other sizes and one kind: nothing of the earlier call.
            assert set(uow.links.links_for("ours", [RecordRef(CLIENT_BILL, 2)])) == {RecordRef(CLIENT_BILL, 2)}
            assert uow.links.links_for("ours", [RecordRef(CLIENT_BILL, 1)]) == {}
            assert uow.links.links_for("nobody", asked) == {}
            assert uow.links.links_for("ours", []) == {}
            found = uow.links.links_for("theirs", asked)
            assert set(found) == set(asked) & set(theirs)
            assert {link.connection_id for link in found.values()} == {"theirs"}


def test_links_for_answers_each_of_many_threads_its_own_connections_links(database: Database) -> None:
    """The statement is built once for every Post of the process: many Posts at once, of several
    connections, kinds and numbers of records, each get exactly their own connection's links."""
    expected: dict[str, set[RecordRef]] = {}
    for n in range(8):
        records = [RecordRef(KINDS[(n + j) % len(KINDS)], 1_000 * n + j) for j in range(1, 40 * (n + 1))]
        _insert_links(database, f"c{n}", records)
        expected[f"c{n}"] = set(records)
    asked = [RecordRef(k, i) for k in KINDS for i in range(1, 8_000)]
    barrier = threading.Barrier(8)

    def read(connection_id: str) -> list[set[RecordRef]]:
        barrier.wait()
        seen = []
        for size in (len(asked), 7, 1_001, len(asked) // 3):
            with UnitOfWork(database, write=False) as uow:
                found = uow.links.links_for(connection_id, asked[:size])
                assert all(link.connection_id == connection_id for link in found.values())
                seen.append(set(found))
        return seen

    calls = {cid: _Call(partial(read, cid)) for cid in expected}
    for cid, call in calls.items():
        seen = call.result()
        assert isinstance(seen, list), seen
        for size, got in zip((len(asked), 7, 1_001, len(asked) // 3), seen, strict=True):
            assert got == expected[cid] & set(asked[:size]), f"{cid}, {size} records asked"


def test_reposting_a_large_batch_of_two_kinds_finds_every_link(database: Database, mapper: MapperClient) -> None:
    """Through a Post: a batch of 400 client bills and trust receipts, then the same batch again.
    Every record of the second must be found linked (a duplicate, nothing new stored): a link
    links_for missed would be written again."""
    _connect(database, "firm")
    poster = _poster(database, mapper, "firm")
    batch = [_bill(10_001 + i) for i in range(200)] + [_receipt(20_000 + 100 * i) for i in range(200)]
    first = poster.post_many("firm", batch)
    for answer in first:
        _accepted(answer, under="firm")
    before = _stored(database)
    assert before["link"] == 400

    again = poster.post_many("firm", batch)

    assert len(again) == 400
    for answer in again:
        assert isinstance(answer, PostOutcome) and answer.duplicate, answer
    assert _stored(database) == before


def test_links_for_takes_more_ids_of_one_kind_than_sqlites_default_variable_limit(database: Database) -> None:
    """40,000 ids of one kind in one call, more than SQLite's default limit of 32,766 variables (and
    below PostgreSQL's 65,535 parameters): every link of the connection among them, no other."""
    ours = [RecordRef(CLIENT_BILL, i) for i in range(7, 40_001, 7)]
    _insert_links(database, "ours", ours)
    _insert_links(database, "theirs", [RecordRef(CLIENT_BILL, i) for i in range(1, 40_001, 3)])
    asked = [RecordRef(CLIENT_BILL, i) for i in range(1, 40_001)]

    with UnitOfWork(database, write=False) as uow:
        found = uow.links.links_for("ours", asked)

    assert set(found) == set(ours)
    assert {link.connection_id for link in found.values()} == {"ours"}
