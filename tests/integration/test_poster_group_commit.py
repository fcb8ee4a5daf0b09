"""Group commit of concurrent Posts, on SQLite and on PostgreSQL: Posts that arrive together
share one mapper call and one transaction, yet each keeps its own answer, idempotency and
errors, and a database failure fails the whole group without leaving any of it behind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from xerolink.actionstep.v1 import transaction_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.tables import AuditRow, LinkRow, OutboxRow, PostingRow
from xerolink_poster.service_layer.posting import GroupSettings, Poster
from xerolink_poster.service_layer.posting_values import PostOutcome

from tests.fixtures.poster import accepting_poster

# Long enough for every thread of a test to arrive before the group closes.
WINDOW = 0.5


@pytest.fixture
def poster(database: Database, mapper_target: str) -> Iterator[Poster]:
    mapper = MapperClient(mapper_target)
    poster = accepting_poster(database, mapper, GroupSettings(window=WINDOW, max_size=64))
    yield poster
    mapper.close()


Post = Callable[[], PostOutcome]


def together(posts: list[Post]) -> list[PostOutcome | XerolinkError]:
    """Runs the posts from as many threads at once; each one's outcome or error, in order."""
    results: list[PostOutcome | XerolinkError | None] = [None] * len(posts)
    barrier = threading.Barrier(len(posts))

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = posts[index]()
        except XerolinkError as err:
            results[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(posts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def post_of(poster: Poster, transaction: transaction_pb2.Transaction, request_id: str = "") -> Post:
    return lambda: poster.post("firm-1", transaction, request_id, actor="caller:test")


def count(db: Database, model: Any) -> int:
    with db.read.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model.__table__)).scalar_one())


def outcome(result: PostOutcome | XerolinkError) -> PostOutcome:
    assert isinstance(result, PostOutcome), result
    return result


def test_identical_posts_in_one_group_make_one_link_posting_and_outbox_entry(
    poster: Poster, database: Database
) -> None:
    results = [outcome(r) for r in together([post_of(poster, samples.client_bill(7)) for _ in range(6)])]

    assert poster.writing is not None and poster.writing.largest == 6, "the posts were not written as one group"
    assert len({r.posting.posting_id for r in results if r.posting}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 5
    assert {r.link.state for r in results if r.link} == {"pending"}
    assert (count(database, LinkRow), count(database, PostingRow)) == (1, 1)
    assert (count(database, OutboxRow), count(database, AuditRow)) == (1, 1)


def test_one_request_id_twice_in_a_group_is_answered_with_the_first_posting(poster: Poster, database: Database) -> None:
    results = together(
        [
            post_of(poster, samples.client_bill(21), request_id="req-1"),
            post_of(poster, samples.client_bill(21), request_id="req-1"),
            post_of(poster, samples.client_bill(22), request_id="req-2"),
        ]
    )

    first, again, other = (outcome(r) for r in results)
    assert first.posting and again.posting and other.posting
    assert again.posting.posting_id == first.posting.posting_id
    assert other.posting.posting_id != first.posting.posting_id
    assert count(database, PostingRow) == 2


def test_one_request_id_for_two_bills_in_a_group_accepts_the_first_and_refuses_the_other(
    poster: Poster, database: Database
) -> None:
    results = together(
        [
            post_of(poster, samples.client_bill(23), request_id="req-3"),
            post_of(poster, samples.client_bill(24), request_id="req-3"),
        ]
    )

    assert poster.writing is not None and poster.writing.largest == 2, "the posts were not written as one group"
    accepted = [r for r in results if isinstance(r, PostOutcome)]
    refused = [r for r in results if isinstance(r, XerolinkError)]
    assert len(accepted) == 1 and len(refused) == 1, results
    assert accepted[0].posting is not None and not accepted[0].duplicate
    assert refused[0].code == ErrorCode.ALREADY_EXISTS and refused[0].reason == "REQUEST_ID_REUSED"
    assert f"links/client-bill/{accepted[0].record.id}" in refused[0].field_violations[0].description
    assert (count(database, LinkRow), count(database, PostingRow), count(database, OutboxRow)) == (1, 1, 1)


def test_a_failing_item_does_not_fail_the_others_in_its_group(poster: Poster, database: Database) -> None:
    pending = outcome(poster.post("firm-1", samples.client_bill(30)))
    assert pending.link is not None and pending.link.state == "pending"
    unbalanced = samples.client_bill(31)
    unbalanced.client_bill.totals.inclusive.units += 1
    changed = samples.client_bill(30, [samples.line("Advice", "200", "GST", 10000, 1000)])
    payment = samples.sample_transactions(32)["client_bill_payment"]

    good, refused, in_progress, waiting = together(
        [
            post_of(poster, samples.client_bill(33)),
            post_of(poster, unbalanced),
            post_of(poster, changed),
            post_of(poster, payment),
        ]
    )

    assert poster.writing is not None and poster.writing.largest == 3  # the unbalanced bill stopped at the mapper
    assert outcome(good).link is not None and outcome(good).link.state == "pending"  # type: ignore[union-attr]
    assert isinstance(refused, XerolinkError) and refused.code == ErrorCode.INVALID_ARGUMENT
    assert refused.field_violations
    assert isinstance(in_progress, XerolinkError) and in_progress.reason == "POSTING_IN_PROGRESS"
    waiting_link = outcome(waiting).link
    assert waiting_link is not None and waiting_link.state == "waiting"
    assert "DEPENDENCY_NOT_LINKED" in (waiting_link.last_error or "")
    with database.read.connect() as conn:
        records = sorted(conn.execute(select(LinkRow.__table__.c.record_id)).scalars())  # type: ignore[attr-defined]
        fingerprint = conn.execute(
            select(LinkRow.__table__.c.fingerprint).where(LinkRow.__table__.c.record_id == 30)  # type: ignore[attr-defined]
        ).scalar_one()
    assert records == sorted([30, 33, waiting_link.record_id])
    assert fingerprint == pending.fingerprint  # the refused change left the pending link as it was
    assert count(database, OutboxRow) == 3


def _refuse_links_of_record(db: Database, record_id: int) -> Callable[[], None]:
    """A trigger that makes the database itself refuse a link row: a real database error in the
    middle of a group's transaction. Returns the undo."""
    with db.write.begin() as conn:
        if db.is_sqlite:
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_link BEFORE INSERT ON link WHEN NEW.record_id = {record_id} "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_link() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.record_id = {record_id} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text("CREATE TRIGGER refuse_link BEFORE INSERT ON link FOR EACH ROW EXECUTE FUNCTION refuse_link()")
            )

    def undo() -> None:
        with db.write.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_link" if db.is_sqlite else "DROP TRIGGER refuse_link ON link"))

    return undo


def test_a_database_error_fails_every_post_of_the_group_and_stores_none_of_it(
    poster: Poster, database: Database
) -> None:
    undo = _refuse_links_of_record(database, 42)

    results = together([post_of(poster, samples.client_bill(record)) for record in (41, 42, 43)])

    assert poster.writing is not None and poster.writing.largest == 3
    for result in results:
        assert isinstance(result, XerolinkError), result
        assert (result.code, result.reason) == (ErrorCode.UNAVAILABLE, "REGISTRY_WRITE_FAILED")
        assert "nothing of it was stored" in result.message
    for model in (LinkRow, PostingRow, OutboxRow, AuditRow):
        assert count(database, model) == 0, model.__name__
    undo()
    again = [outcome(r) for r in together([post_of(poster, samples.client_bill(r)) for r in (41, 42, 43)])]
    assert all(r.link is not None and r.link.state == "pending" and not r.duplicate for r in again)
    assert count(database, OutboxRow) == 3


def test_a_post_reads_of_its_connection_only_what_it_checks(poster: Poster, database: Database) -> None:
    """The write holds the connection's row against change and checks its firm group, routing and
    ledgers. It loaded the whole row, sealed tokens and all, a fifth of a Post's CPU."""
    poster.require_known_connection("firm-1")  # the Poster's own cache of the connection, read first
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        result = outcome(poster.post("firm-1", samples.client_bill(31), actor="caller:test"))
    finally:
        event.remove(Engine, "before_cursor_execute", capture)

    assert result.posting is not None and not result.duplicate
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM connection" in s]
    assert reads, "the write no longer reads the connection it holds"
    assert not [s for s in reads if "token_box" in s or "access_token" in s], reads
