"""An entry the dispatcher cannot process (a bug its data reaches) must fail alone: the entries
claimed in its batch are posted, each once, and nothing of it is marked as perhaps in Xero, since
nothing of it was sent. Real poster and emulator over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from xerolink.actionstep.v1 import transaction_pb2, trust_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters import xero_payloads

from tests.fixtures.contacts import post_all, wait
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for
from tests.fixtures.recorded_xero import RecordedXero, tagged, tags
from tests.fixtures.stored_rows import link_row, outbox_rows

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED


def _receipt(record_id: int) -> transaction_pb2.Transaction:
    """A trust receipt of 5,000.00: a RECEIVE bank transaction, nothing unique to it in Xero but
    its tag, so one sent twice is deposited twice."""
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
    )


@pytest.mark.parametrize("poison_at", [0, 5, 9])
def test_an_entry_the_dispatcher_cannot_process_fails_alone_and_its_batch_is_posted(
    poster_factory: PosterFactory,
    emulator_factory: EmulatorFactory,
    monkeypatch: pytest.MonkeyPatch,
    poison_at: int,
) -> None:
    """Ten trust receipts are accepted together and claimed in one batch. Building one of them
    for Xero raises (a bug reached through its data) every time, before any call is sent. Before,
    the whole batch failed with it each time and all ten were given up after their attempts,
    marked "outcome unknown" though never sent: nine receipts never deposited."""
    emulator = emulator_factory()
    app = poster_factory(settings(max_attempts=3, http_timeout=2.0))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipts = [_receipt(70_000 + poison_at * 100 + n) for n in range(10)]
    ids = [r.header.id for r in receipts]
    poison = ids[poison_at]
    element_of = xero_payloads.element_of

    def buggy(operation: Any, reference: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if poison in tags(reference):
            raise ValueError("a bug this record's data reaches")
        return element_of(operation, reference, *args, **kwargs)

    monkeypatch.setattr(xero_payloads, "element_of", buggy)
    xero = RecordedXero(emulator, lambda request, handle: None)
    names = post_all(stub, receipts)
    states = dict(zip(ids, wait(stub, names), strict=True))

    assert states == {r: FAILED if r == poison else LINKED for r in ids}
    deposited = tagged(emulator, org["tenant_id"], "BankTransactions")
    assert deposited == {r: 1 for r in ids if r != poison}, "each healthy receipt deposited exactly once"
    assert poison not in {r for call in xero.created("BankTransactions") for r in call}
    # Failed visibly with its reason, and not as perhaps in Xero: it was never sent.
    link = link_row(app, poison)
    error = json.loads(link.last_error or "{}")
    assert error["reason"] == Reason.DISPATCH_ERROR
    assert "a bug this record's data reaches" in error["message"]
    assert not link.outcome_unknown
    assert [row.uncertain for row in outbox_rows(app, poison)] == [False]
