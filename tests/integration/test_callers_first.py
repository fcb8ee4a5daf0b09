"""A transaction a caller waits for goes before the dispatcher's. While the dispatcher drained
200 organisations, a Post queued behind tens of its writes for SQLite's one writer (p99 7.9 s
at 100 Posts a second), and on PostgreSQL waited for a connection its threads held."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from xerolink_common.grpc_server import create_server
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.write_turns import WriteTurns, serve_callers_on_this_thread, serving_callers
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import wait_for
from tests.fixtures.threads import started


@dataclass
class Queued:
    """Three dispatcher writes queued behind a fourth holding the turn, on its release."""

    db: Database
    turns: WriteTurns
    order: list[str]
    threads: list[threading.Thread]

    def write(self, name: str) -> Callable[[], None]:
        """A write that notes `name` when it runs."""
        return lambda: run_in_transaction(self.db, lambda uow: self.order.append(name))


@contextmanager
def dispatcher_writes_queued(db: Database) -> Iterator[Queued]:
    """A dispatcher write holding the turn and three queued for it; released on leaving."""
    migrate(db)
    assert db.write_turns is not None
    queued = Queued(db, db.write_turns, [], [])
    holding, let_go = threading.Event(), threading.Event()

    def holder() -> None:
        with UnitOfWork(db):
            holding.set()
            let_go.wait(10)

    queued.threads.append(started(holder))
    assert holding.wait(5)
    for n in range(3):
        queued.threads.append(started(queued.write(f"dispatcher-{n}")))
    wait_for(lambda: queued.turns.waiting == (0, 3))
    try:
        yield queued
    finally:
        let_go.set()
        for thread in queued.threads:
            thread.join(10)


def test_on_sqlite_a_callers_write_goes_before_the_dispatchers_queued(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/registry.db")
    try:
        with dispatcher_writes_queued(db) as queued:
            queued.threads.append(started(queued.write("post"), callers=True))
            wait_for(lambda: queued.turns.waiting == (1, 3))
        assert queued.order == ["post", "dispatcher-0", "dispatcher-1", "dispatcher-2"]
    finally:
        db.dispose()


@pytest.mark.postgres
def test_on_postgres_a_callers_write_passes_the_dispatchers_which_take_turns(postgres_url: str) -> None:
    """PostgreSQL takes concurrent writers, but the process has one interpreter lock: with the
    dispatcher's threads all writing, a Post got a twentieth of it (p99 17 s at 100 Posts a
    second, one poster draining 200 organisations). The dispatcher's writes take turns; a
    caller's takes none, so it never waits for one of them, even one stuck on a lock another
    process holds."""
    db = open_database(postgres_url)
    try:
        with dispatcher_writes_queued(db) as queued:
            started(queued.write("post"), callers=True).join(5)
            assert queued.order == ["post"]  # while the turn is held and three wait for it
            assert queued.turns.waiting == (0, 3)
        assert queued.order == ["post", "dispatcher-0", "dispatcher-1", "dispatcher-2"]
    finally:
        db.dispose()


@pytest.mark.postgres
def test_on_postgres_a_caller_gets_a_connection_while_the_dispatcher_holds_them_all(postgres_url: str) -> None:
    db = open_database(postgres_url)
    held = []
    try:
        migrate(db)
        # Every connection of the shared pool (10 + 20 overflow) taken, as by a busy dispatcher.
        held = [db.write.connect() for _ in range(30)]
        assert db.write.pool.checkedout() == 30  # type: ignore[attr-defined]
        answered: list[object] = []

        def post() -> None:
            with UnitOfWork(db, write=False) as uow:
                answered.append(uow.connections.get_connection("nobody"))
            answered.append(run_in_transaction(db, lambda uow: uow.connections.get_connection("nobody")))

        began = time.monotonic()
        started(post, callers=True).join(10)
        assert answered == [None, None]
        assert time.monotonic() - began < 5  # the shared pool would have made it wait 30 s
    finally:
        for connection in held:
            connection.close()
        db.dispose()


def test_the_servers_threads_answer_callers() -> None:
    """create_server runs the initializer on the threads that answer calls (the poster passes
    serve_callers_on_this_thread, so its RPCs' transactions go first)."""

    def probe(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"caller" if serving_callers() else b"background"

    def register(server: grpc.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "probe.Probe", {"Check": grpc.unary_unary_rpc_method_handler(probe)}
        )
        server.add_generic_rpc_handlers((handler,))

    running = create_server("127.0.0.1:0", [register], [], thread_initializer=serve_callers_on_this_thread)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert channel.unary_unary("/probe.Probe/Check")(b"", timeout=10) == b"caller"
    finally:
        running.stop(0)
