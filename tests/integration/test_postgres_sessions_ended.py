"""A poster on PostgreSQL whose sessions the server ends while they sit in the poster's pools: a
restart or failover of the server, an administrator's pg_terminate_backend, a pooler or firewall
dropping idle connections. The next caller and the dispatcher must get fresh sessions, not the
dead ones (the pools test a connection before handing it out, adapters/database.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_settled
from tests.fixtures.postgres import end_sessions

pytestmark = pytest.mark.postgres


def _post(stub: poster_grpc.PosterServiceStub, record_id: int) -> poster_pb2.Posting:
    request = poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(record_id))
    posting: poster_pb2.Posting = stub.PostTransaction(request, timeout=30).posting
    return posting


@dataclass
class Posted:
    stub: poster_grpc.PosterServiceStub
    invoices: Callable[[], int]  # how many invoices the organisation holds in Xero
    first: poster_pb2.Posting


@pytest.fixture
def posted(poster_factory: PosterFactory, emulator_factory: EmulatorFactory) -> Posted:
    """A poster on PostgreSQL whose first bill is linked, so its pools hold sessions."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory(settings()))
    _, org = connect(stub, emulator)
    first = _post(stub, 1)
    assert wait_settled(stub, first.name).state == poster_pb2.LINK_STATE_LINKED
    return Posted(stub, lambda: len(emulator.state.organisation(org["tenant_id"]).objects["Invoices"]), first)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_posts_reads_and_the_drain_go_on_after_the_server_ended_every_session(posted: Posted, outsider: Engine) -> None:
    stub, first = posted.stub, posted.first
    assert end_sessions(outsider) > 0, "the poster held no session to end"

    # A caller's reads and write, then the dispatcher's work, each on a pooled session now dead.
    read = stub.GetPosting(poster_pb2.GetPostingRequest(name=first.name), timeout=30)
    assert read.posting.posting_id == first.posting_id
    second = _post(stub, 2)
    assert wait_settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED
    assert posted.invoices() == 2, "each bill once in Xero"


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_sessions_ended_again_and_again_while_the_dispatcher_polls_kill_no_thread_and_lose_no_bill(
    posted: Posted, outsider: Engine
) -> None:
    """Sessions ended in the middle of the dispatcher's statements (its workers poll the idle
    queue): a worker ends its turn and hands the tenant back, and the dispatcher serves the
    tenant again once it has work. No thread dies with the error."""
    ended = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        ended += end_sessions(outsider)
        time.sleep(0.01)
    assert ended > 0

    second = _post(posted.stub, 2)
    assert wait_settled(posted.stub, second.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    assert posted.invoices() == 2, "each bill once in Xero"
