"""WatchPosting's stream against a real registry: one message per change a caller can see."""

from __future__ import annotations

import json
import threading
import time

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import LinkRow, PostingRow
from xerolink_poster.domain.states import Event
from xerolink_poster.service_layer import queries
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.registry_rows import unreachable_connection


def _pending_link(uow: UnitOfWork) -> int:
    uow.connections.add_connection(unreachable_connection())
    now = now_us()
    link = uow.links.add_link(
        LinkRow(
            connection_id="c1",
            kind=1,
            record_id=7,
            link_group=1,
            state="",
            fingerprint="f" * 64,
            posting_id="p7",
            create_us=now,
            update_us=now,
        )
    )
    uow.links.add_posting(
        PostingRow(
            posting_id="p7",
            connection_id="c1",
            kind=1,
            record_id=7,
            link_id=link.id,
            fingerprint="f" * 64,
            decision=b"",
            state="",
            create_us=now,
        )
    )
    uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us(), "posting p7")
    return link.id or 0


def _touch(db: Database, link_id: int, **changes: object) -> None:
    def write(uow: UnitOfWork) -> None:
        link = uow.links.get_link_by_id(link_id)
        assert link is not None
        for name, value in changes.items():
            setattr(link, name, value)
        link.update_us = now_us()
        uow.links.save(link)

    run_in_transaction(db, write)


def test_a_write_that_changes_nothing_a_caller_sees_sends_no_second_message(database: Database) -> None:
    link_id = run_in_transaction(database, _pending_link)
    changes = StateChanges()
    stop = threading.Event()
    seen: list[tuple[str, int, str | None]] = []
    first = threading.Event()

    def watch() -> None:
        for view in queries.watch_posting(database, "p7", changes, stop.is_set, poll=0.02):
            assert view.link is not None
            seen.append((view.posting.state, view.link.attempts, view.link.last_error))
            first.set()

    watcher = threading.Thread(target=watch)
    watcher.start()

    def settled(count: int) -> None:
        deadline = time.monotonic() + 5
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # ten polls: a message that should not come would have come by now

    settled(1)
    _touch(database, link_id)  # a lease or bookkeeping write: only update_us moves
    changes.notify()
    settled(1)
    assert len(seen) == 1
    _touch(database, link_id, attempts=1)  # a retry the caller can see
    changes.notify()
    settled(2)
    error = json.dumps(
        {"code": 14, "reason": "XERO_UNAVAILABLE", "message": "Xero answered 503", "field_violations": []}
    )
    _touch(database, link_id, last_error=error)
    changes.notify()
    settled(3)

    def post(uow: UnitOfWork) -> None:
        link = uow.links.get_link_by_id(link_id)
        assert link is not None
        uow.links.change_state(link, Event.POSTED, "dispatcher:a", now_us())

    run_in_transaction(database, post)
    changes.notify()
    watcher.join(5)
    stop.set()
    assert not watcher.is_alive()  # a settled posting ends the stream
    assert seen == [("pending", 0, None), ("pending", 1, None), ("pending", 1, error), ("linked", 1, error)]


def test_a_read_sees_the_posting_and_its_link_at_one_moment(database: Database) -> None:
    """A view is read in two statements. A state change committed between them must not show a
    pending posting with a linked link: on PostgreSQL each statement of a read-committed
    transaction sees its own moment, and the watcher sent that torn view as a change."""
    link_id = run_in_transaction(database, _pending_link)
    with UnitOfWork(database, write=False) as uow:
        posting = uow.links.get_posting("p7")
        assert posting is not None and posting.state == "pending"

        def post(writer: UnitOfWork) -> None:
            link = writer.links.get_link_by_id(link_id)
            assert link is not None
            writer.links.change_state(link, Event.POSTED, "dispatcher:a", now_us())

        run_in_transaction(database, post)
        link = uow.links.get_link_by_id(link_id)
        assert link is not None
        assert link.state == posting.state == "pending"
    assert queries.get_posting(database, "p7").posting.state == "linked"
