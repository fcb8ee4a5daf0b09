"""The look-ups after a lost answer, grouped (`where=Reference=="t1" OR Reference=="t2" OR ...`),
attacked from outside as real Xero, a proxy in front of it, or a careless caller could: hostile
references (quotes, " OR ", "&&", "%", unicode, 200 characters), jobs mixing every collection and
tagged field, groups that split exactly at Xero's URL limit, answers listing decoys (another
record's tag, a case- or space-different tag, the wrong type or amount, DELETED and VOIDED copies,
an object another link holds), answers paged past 100 and past the look-up's page cap, look-ups
that fail, are rate-limited, lost or garbled, and records posted again while uncertain.

Whatever happens: nothing is created twice, nothing is lost, each record is linked to the object
carrying its own tag, failures are retried (never failed nor read as "none found"), and no look-up
sends a URL over 2,091 characters or a `where` the emulator refuses. Each test runs on SQLite and
PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.xero_client import url_length, value_length
from xerolink_poster.service_layer.dispatch.lookups import LOOKUP_PAGES, _order, _paging_length
from xerolink_poster.service_layer.dispatch.where_groups import OR, or_groups

from tests.fixtures.contacts import XERO_ORIGIN, XERO_URL_MAX, Handler, intercept, post_all, settle, wait
from tests.fixtures.lookups import ID_FIELD, answer_listing, live_objects
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, xero_objects

LINKED = poster_pb2.LINK_STATE_LINKED
# Where each collection's objects carry the record's tag (xero_payloads' module doc).
TAG_FIELDS = ("Reference", "InvoiceNumber", "CreditNoteNumber", "Narration")


# -- helpers -----------------------------------------------------------------------------------
def _kind_of(transaction: transaction_pb2.Transaction) -> int:
    name = transaction.WhichOneof("kind") or ""
    return int(common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{name.upper()}"))


def _linked_ids(stub: poster_grpc.PosterServiceStub, transaction: transaction_pb2.Transaction) -> list[str]:
    record = common_pb2.RecordKey(kind=_kind_of(transaction), id=transaction.header.id)  # type: ignore[arg-type]
    link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
    return [o.xero_id for o in link.xero_objects]


def _link_error(stub: poster_grpc.PosterServiceStub, transaction: transaction_pb2.Transaction) -> str:
    record = common_pb2.RecordKey(kind=_kind_of(transaction), id=transaction.header.id)  # type: ignore[arg-type]
    link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
    return str(link.last_error.message)


def _bill(record_id: int, reference: str = "") -> transaction_pb2.Transaction:
    bill = samples.client_bill(record_id)
    if reference:
        bill.header.reference = reference
    return bill


def _payment(record_id: int, bill_id: int, cents: int, reference: str = "") -> transaction_pb2.Transaction:
    return transaction_pb2.Transaction(
        header=samples.header(record_id, reference=reference),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=bill_id, amount=samples.money(cents)),
    )


def _fit(text: str, units: int = 200) -> str:
    """`text` cut to the mapper's 200 UTF-16 units of a reference."""
    while len(text.encode("utf-16-le")) // 2 > units:
        text = text[:-1]
    return text


def _tag_of(item: dict[str, Any]) -> str:
    for name in TAG_FIELDS:
        value = item.get(name)
        if isinstance(value, str) and "[AS-" in value:
            return value
    lines = item.get("LineItems") or []
    return str(lines[0].get("Description", "")) if lines else ""


def _is_lookup(request: Request, resource: str = "") -> bool:
    path = request.path.rstrip("/")
    listed = path.endswith(f"/{resource}") if resource else path.rsplit("/", 1)[-1] in ID_FIELD
    return request.method == "GET" and listed and bool(request.param("where"))


def _target_at_xero(request: Request) -> str:
    return XERO_ORIGIN + request.target


class Recorder:
    """Every look-up the poster made (URL as at Xero, `where`, page, status answered), behind
    an optional change of the emulator's answer."""

    def __init__(self, emulator: EmulatorServer, change: Callable[[Request, Handler], Response] | None = None) -> None:
        self.seen: list[tuple[str, str, str, int]] = []
        self.writes: list[str] = []  # create calls to the collections looked up in
        self.lock = threading.Lock()
        self.change = change
        intercept(emulator, self._handle)

    def _handle(self, request: Request, handle: Handler) -> Response:
        if request.method in ("PUT", "POST") and request.path.rstrip("/").rsplit("/", 1)[-1] in ID_FIELD:
            with self.lock:
                self.writes.append(f"{request.method} {request.path.rstrip('/').rsplit('/', 1)[-1]}")
        if not _is_lookup(request):
            return handle(request)
        response = self.change(request, handle) if self.change else handle(request)
        with self.lock:
            self.seen.append(
                (_target_at_xero(request), request.param("where") or "", request.param("page") or "", response.status)
            )
        return response

    def of(self, resource: str) -> list[tuple[str, str, str, int]]:
        with self.lock:
            return [s for s in self.seen if f"/{resource}?" in s[0]]

    def assert_within_xero(self) -> None:
        with self.lock:
            seen = list(self.seen)
        too_long = [(len(url), url[:120]) for url, _, _, _ in seen if len(url) > XERO_URL_MAX]
        assert not too_long, f"look-ups over Xero's {XERO_URL_MAX} characters: {too_long}"
        refused = [(status, where[:200]) for _, where, _, status in seen if status in (400, 404)]
        assert not refused, f"look-ups the emulator refused: {refused}"
        over = [where.count(OR) + 1 for _, where, _, _ in seen if where.count(OR) + 1 > 50]
        assert not over, f"look-ups of more than 50 records: {over}"


def _assert_each_linked_to_its_own(
    stub: poster_grpc.PosterServiceStub,
    emulator: EmulatorServer,
    tenant_id: str,
    resource: str,
    transactions: Sequence[transaction_pb2.Transaction],
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> dict[int, dict[str, Any]]:
    """Exactly one live object per record in `resource` (those `keep` selects), each record linked
    to the one carrying its own tag; returns each record's object."""
    made = [i for i in live_objects(xero_objects(emulator, tenant_id, resource)) if keep(i)]
    by_id = {str(i[ID_FIELD[resource]]): i for i in made}
    tags = Counter(_tag_of(i) for i in made)
    doubled = {t: n for t, n in tags.items() if n > 1}
    assert not doubled, f"created twice in {resource}: {doubled}"
    assert len(made) == len(transactions), f"{len(made)} {resource} in Xero for {len(transactions)} records"
    mine: dict[int, dict[str, Any]] = {}
    for t in transactions:
        ids = [i for i in _linked_ids(stub, t) if i in by_id]
        assert len(ids) == 1, f"record {t.header.id} linked to {_linked_ids(stub, t)}, not one of Xero's {resource}"
        item = by_id[ids[0]]
        assert f"-{t.header.id}]" in _tag_of(item), f"record {t.header.id} linked to {_tag_of(item)!r}"
        mine[t.header.id] = item
    return mine


def _drop_first(emulator: EmulatorServer, resource: str, count: int = 1) -> FaultRule:
    rule = FaultRule("drop_after_commit", count=count, methods=("PUT",), path_contains=resource)
    emulator.faults.add(rule)
    return rule


def _setup(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, **dispatcher: Any
) -> tuple[EmulatorServer, poster_grpc.PosterServiceStub, str]:
    # No idempotent replay to hide a wrong "none found": only the look-up stands between a lost
    # answer and a second object.
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, **dispatcher)))
    _, org = connect(stub, emulator)
    return emulator, stub, str(org["tenant_id"])


# -- hostile references ------------------------------------------------------------------------
HOSTILE = [
    'He said "pay" OR Reference=="x',
    "Smith OR Jones",
    "A && B AND C",
    "100% of fees %25 %zz",
    'a+b=c&page=3&where=Type=="ACCPAY"',
    "Müller & Søn — Gebühr €",
    "学費 請求書 😀🧾",
    "back\\slash 'single' #hash ?q",
    "  padded  ",
    "x" * 200,
    "€" * 200,
    "😀" * 100,
    'Reference=="" OR Reference==""',
    '(a) || (b) Guid("x")',
]


def test_hostile_references_are_each_found_once_after_a_lost_answer(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """References carrying the `where` syntax itself, escapes, unicode and Xero's full length:
    every grouped look-up within Xero's URL and accepted, every bill created once and linked to
    its own invoice."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory)
    bills = [_bill(31_000 + n, reference) for n, reference in enumerate(HOSTILE)]
    dropped = _drop_first(emulator, "Invoices")
    recorder = Recorder(emulator)

    assert settle(stub, bills) == [LINKED] * len(bills)

    assert dropped.hits == 1
    assert recorder.of("Invoices"), "no look-up after the lost answer"
    recorder.assert_within_xero()
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Invoices", bills)


def test_references_that_spread_a_look_up_over_many_gets_stay_within_the_url_and_are_each_found(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Sixty bills whose references are 200 characters, ASCII and three-byte unicode: a look-up
    of all of them is many GETs, each as long as Xero serves and no longer."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, batch_size=100)
    references = [_fit(f"{n:03d}" + ("abcdefghij" if n % 2 else "€äß😀-") * 40) for n in range(60)]
    bills = [_bill(32_000 + n, r) for n, r in enumerate(references)]
    dropped = _drop_first(emulator, "Invoices")
    recorder = Recorder(emulator)

    assert settle(stub, bills) == [LINKED] * len(bills)

    assert dropped.hits == 1
    gets = recorder.of("Invoices")
    assert len(gets) >= 2, "sixty long references cannot fit one URL"
    recorder.assert_within_xero()
    asked = Counter(where.count("[AS-") for _, where, _, _ in gets)
    assert sum(n * c for n, c in asked.items()) >= len(bills), f"records not looked up: {asked}"
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Invoices", bills)


def test_groups_split_exactly_at_xeros_url_limit() -> None:
    """A group whose URL at Xero is exactly 2,091 characters is one GET; one character more is two.
    And a group never holds more than the most asked for."""
    base = "http://h:1"  # shorter than Xero's own host: the limit is measured at Xero
    fixed = url_length(base, "Invoices", "where") + _paging_length("Invoices")  # as LookUps counts it

    def clause(n: int, width: int) -> str:
        return f'Reference=="{"x" * width}{n:02d}"'

    first = clause(0, 1)
    spare = XERO_URL_MAX - fixed - value_length(first) - value_length(OR)
    exact = clause(1, spare - value_length(clause(1, 0)))
    assert fixed + value_length(first) + value_length(OR) + value_length(exact) == XERO_URL_MAX
    assert or_groups(fixed, [first, exact], 50) == [[0, 1]]
    over = clause(1, spare - value_length(clause(1, 0)) + 1)
    assert or_groups(fixed, [first, over], 50) == [[0], [1]]
    # The URL httpx sends for the exact group, at Xero's host, is the limit.
    where = OR.join([first, exact])
    params = {"where": where, "order": _order("Invoices"), "page": str(LOOKUP_PAGES)}  # as _list_all sends it
    sent = httpx.URL(f"{XERO_ORIGIN}/api.xro/2.0/Invoices", params=params)
    assert len(str(sent)) == XERO_URL_MAX
    # Fifty-one short clauses: two groups, of fifty and one.
    short = [clause(n, 0) for n in range(51)]
    assert [len(g) for g in or_groups(fixed, short, 50)] == [50, 1]
    # A clause the URL cannot hold even alone still gets its own group (never merged into another).
    huge = clause(0, 3000)
    assert or_groups(fixed, [first, huge, first], 50) == [[0], [1], [2]]


# -- every collection and tagged field in one job ----------------------------------------------
MIXED_KINDS = (
    "client_bill",
    "supplier_invoice",
    "credit_note",
    "supplier_credit",
    "trust_receipt",
    "trust_payment",
    "trust_interest",
    "trust_transfer",
    "statutory_funds",
    "trust_journal",
    "client_bill_payment",
    "supplier_invoice_payment",
    "invoice_paid_from_trust",
)
# What each kind creates: (collection, which of its objects, Type when the collection mixes them).
CREATES: dict[str, list[tuple[str, str]]] = {
    "client_bill": [("Invoices", "ACCREC")],
    "supplier_invoice": [("Invoices", "ACCPAY")],
    "credit_note": [("CreditNotes", "ACCRECCREDIT")],
    "supplier_credit": [("CreditNotes", "ACCPAYCREDIT")],
    "trust_receipt": [("BankTransactions", "")],
    "trust_payment": [("BankTransactions", "")],
    "trust_interest": [("BankTransactions", "")],
    "trust_transfer": [("BankTransfers", "")],
    "statutory_funds": [("BankTransfers", "")],
    "trust_journal": [("ManualJournals", "")],
    "client_bill_payment": [("Payments", "")],
    "supplier_invoice_payment": [("Payments", "")],
    "invoice_paid_from_trust": [("BankTransactions", ""), ("Payments", "")],
}


def test_a_job_of_every_collection_and_tagged_field_with_every_answer_lost_is_created_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Three records of each kind the poster creates, in one job: sales and purchase invoices
    (Reference and InvoiceNumber in one collection), both credit notes, bank transactions, bank
    transfers, journals, payments of bills and of supplier bills, a record creating a bank
    transaction and a payment with one tag. The first answers to each collection are lost:
    each record's object is found once, under its own tag, and nothing is created twice."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, batch_size=100)
    sets = [samples.sample_transactions(41_000 + 100 * n) for n in range(3)]
    transactions = [s[kind] for s in sets for kind in MIXED_KINDS]
    for resource in ("Invoices", "CreditNotes", "Payments", "BankTransactions", "BankTransfers", "ManualJournals"):
        _drop_first(emulator, resource, count=2)
    recorder = Recorder(emulator)

    states = settle(stub, transactions)

    assert states == [LINKED] * len(transactions), [
        (t.WhichOneof("kind"), _link_error(stub, t)) for t, s in zip(transactions, states, strict=True) if s != LINKED
    ]
    looked = {r for r in ID_FIELD if recorder.of(r)}
    assert looked == set(ID_FIELD), f"never looked up: {set(ID_FIELD) - looked}"
    recorder.assert_within_xero()
    expected: dict[tuple[str, str], list[transaction_pb2.Transaction]] = {}
    for t in transactions:
        for key in CREATES[t.WhichOneof("kind") or ""]:
            expected.setdefault(key, []).append(t)
    for (resource, kind), records in expected.items():

        def of_kind(item: dict[str, Any], kind: str = kind) -> bool:
            return not kind or item.get("Type") == kind

        _assert_each_linked_to_its_own(stub, emulator, tenant, resource, records, keep=of_kind)


# -- what the grouped answer lists -------------------------------------------------------------
def _fake_id() -> str:
    return str(uuid.uuid4())


def _decoys(item: dict[str, Any], id_field: str, field: str, held: str) -> list[dict[str, Any]]:
    """Objects a look-up for `item`'s tag may list that are not the record's own."""
    tag = str(item[field])
    return [
        {**item, id_field: _fake_id(), "Status": "DELETED"},
        {**item, id_field: _fake_id(), "Status": "VOIDED"},
        {**item, id_field: _fake_id(), field: tag.lower()},
        {**item, id_field: _fake_id(), field: tag.upper()},
        {**item, id_field: _fake_id(), field: f"{tag} #2"},
        {**item, id_field: _fake_id(), field: f"Copy of {tag}"},
        {**item, id_field: _fake_id(), field: tag[:-1]},
        {**item, id_field: held},  # the firm retagged another record's invoice with this tag
    ]


def test_a_grouped_answer_full_of_decoys_links_each_bill_to_its_own_invoice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Each grouped look-up's answer lists, before every record's invoice, copies of it that are
    not it: DELETED and VOIDED, its tag in other case, with more before or after or a character
    less, a purchase invoice (wrong Type) carrying its tag, and another record's invoice under
    its tag; then every invoice asked for, reversed and twice. Only the record's own may be taken."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory)
    other = _bill(33_999)
    assert settle(stub, [other]) == [LINKED]
    [held] = _linked_ids(stub, other)
    bills = [_bill(33_000 + n, f"Matter {n} OR Reference") for n in range(12)]

    def decoyed(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if response.status != 200 or not _is_lookup(request, "Invoices"):
            return response
        real = json.loads(response.body)["Invoices"]
        listed: list[dict[str, Any]] = []
        for item in real:
            listed += _decoys(item, "InvoiceID", "Reference", held)
            listed.append({**item, "InvoiceID": _fake_id(), "Type": "ACCPAY"})
        listed += list(reversed(real)) + real
        return answer_listing(response, "Invoices", listed)

    dropped = _drop_first(emulator, "Invoices")
    recorder = Recorder(emulator, decoyed)

    states = settle(stub, bills)

    assert dropped.hits == 1 and recorder.of("Invoices")
    assert states == [LINKED] * len(bills), [_link_error(stub, b) for b in bills]
    recorder.assert_within_xero()
    _assert_each_linked_to_its_own(
        stub, emulator, tenant, "Invoices", [*bills, other], keep=lambda i: i.get("Type") == "ACCREC"
    )
    assert _linked_ids(stub, other) == [held]


def test_payments_listed_with_the_right_tag_and_the_wrong_amount_or_deleted_are_never_adopted(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Payments are grouped by Reference alone; the amount their old `where` asked for is now
    checked on each listed payment. An answer listing, before each real payment, a payment of
    its tag with another amount (as 100 or 100.0 of a 100.00), a DELETED one of its amount, a
    payment of another tag with its amount, and one of its tag whose amount cannot be read:
    each record takes its own payment only."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory)
    assert settle(stub, [_bill(34_000)]) == [LINKED]
    payments = [_payment(34_100 + n, 34_000, 100 * (n + 1), f"Instalment {n}") for n in range(15)]

    def decoyed(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if response.status != 200 or not _is_lookup(request, "Payments"):
            return response
        real = json.loads(response.body)["Payments"]
        listed: list[dict[str, Any]] = []
        for n, item in enumerate(real):
            amount = Decimal(str(item["Amount"]))
            listed += [
                {**item, "PaymentID": _fake_id(), "Amount": float(amount + 1)},
                {**item, "PaymentID": _fake_id(), "Amount": str(amount * 100)},
                {**item, "PaymentID": _fake_id(), "Status": "DELETED"},
                {**item, "PaymentID": _fake_id(), "Amount": "garbled"},
                {**real[(n + 1) % len(real)], "PaymentID": _fake_id(), "Amount": item["Amount"]},
            ]
        return answer_listing(response, "Payments", listed + real)

    dropped = _drop_first(emulator, "Payments")
    recorder = Recorder(emulator, decoyed)

    states = settle(stub, payments)

    assert dropped.hits == 1 and recorder.of("Payments")
    assert states == [LINKED] * len(payments), [_link_error(stub, p) for p in payments]
    recorder.assert_within_xero()
    mine = _assert_each_linked_to_its_own(stub, emulator, tenant, "Payments", payments)
    for p in payments:
        assert Decimal(str(mine[p.header.id]["Amount"])) * 100 == p.client_bill_payment.amount.units


# -- paging --------------------------------------------------------------------------------------
def _asked(where: str) -> list[str]:
    """The tags a grouped `where` asks for."""
    return re.findall(r'=="([^"]*)"', where)


def _paged_with_padding(padding: int, resource: str = "Invoices") -> Callable[[Request, Handler], Response]:
    """Xero's answer to the look-up, paged by 100 as Xero pages it, listing first `padding`
    objects the `where` selects too (Xero's == ignores case: the asked tags in lower case, as a
    firm's import may have written them) and then the records' own."""
    id_field = ID_FIELD[resource]

    def paged(request: Request, handle: Handler) -> Response:
        page = request.param("page")
        if not _is_lookup(request, resource):
            return handle(request)
        # The records' own, whole (fewer than a page), as Xero's first page lists them.
        first = {k: v for k, v in request.query.items() if k.lower() != "page"}
        response = handle(dataclasses.replace(request, query={**first, "page": ["1"]}))
        if response.status != 200:
            return response
        real = json.loads(response.body)[resource]
        template = real[0] if real else {}
        tags = _asked(request.param("where") or "")
        pad = [
            {**template, id_field: _fake_id(), "Reference": tags[n % len(tags)].lower(), "Status": "AUTHORISED"}
            for n in range(padding)
        ]
        everything = pad + real
        start = (int(page) - 1) * 100 if page else 0
        return answer_listing(response, resource, everything[start : start + 100] if page else everything)

    return paged


def test_an_answer_paged_over_several_pages_finds_each_bill_on_whichever_page_it_is(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """250 other objects listed before the records' own, over three pages and a bit: the look-up
    reads every page and finds each bill."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory)
    bills = [_bill(35_000 + n) for n in range(20)]
    dropped = _drop_first(emulator, "Invoices")
    recorder = Recorder(emulator, _paged_with_padding(250))

    assert settle(stub, bills) == [LINKED] * len(bills)

    assert dropped.hits == 1
    pages = Counter(page for _, _, page, _ in recorder.of("Invoices"))
    assert {"1", "2", "3"} <= set(pages), pages
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Invoices", bills)


def test_an_answer_with_more_pages_than_the_look_up_reads_is_never_taken_as_none_found(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """A grouped `where` selects whatever Xero's case-insensitive == selects for up to fifty tags;
    when the answer still has a full page after the last page the look-up reads, what the pages
    after it hold is unknown. Read as "none found", each payment listed past the cap is created
    twice (a bill, whose number Xero keeps unique, is refused and failed instead)."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory)
    assert settle(stub, [_bill(36_000)]) == [LINKED]
    payments = [_payment(36_100 + n, 36_000, 100 * (n + 1)) for n in range(5)]
    dropped = _drop_first(emulator, "Payments")
    padded = _paged_with_padding(100 * LOOKUP_PAGES, "Payments")
    padding = {"on": True}
    in_progress: dict[str, bool] = {}

    def until_switched_off(request: Request, handle: Handler) -> Response:
        # Switched off between look-ups only: a look-up's pages all come from one listing (an
        # answer that changed between its pages is another case).
        where = request.param("where") or ""
        if request.param("page") in (None, "1"):
            in_progress[where] = padding["on"]
        return padded(request, handle) if in_progress.get(where, padding["on"]) else handle(request)

    recorder = Recorder(emulator, until_switched_off)
    names = post_all(stub, payments)

    # Time for a whole look-up and, wrongly, creating again; then the padding goes.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(recorder.writes) < 2:
        if str(LOOKUP_PAGES) in {page for _, _, page, _ in recorder.of("Payments")}:
            break
        time.sleep(0.05)
    padding["on"] = False
    states = wait(stub, names)

    assert dropped.hits == 1 and recorder.of("Payments")
    pages = {page for _, _, page, _ in recorder.of("Payments")}
    assert str(LOOKUP_PAGES) in pages, f"pages read: {sorted(pages, key=int)}"
    assert states == [LINKED] * len(payments), [_link_error(stub, p) for p in payments]
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Payments", payments)
    assert recorder.writes == ["PUT Payments"], f"created again after a look-up cut short: {recorder.writes}"


# -- failing look-ups ----------------------------------------------------------------------------
def _failing(kind: str) -> Callable[[Request, Response], Response]:
    def fail(request: Request, response: Response) -> Response:
        if kind == "server-error":
            return Response(503, b'{"Title":"Service Unavailable"}', {"Content-Type": "application/json"})
        if kind == "rate-limited":
            return Response(
                429,
                b'{"Title":"Too Many Requests"}',
                {"Content-Type": "application/json", "Retry-After": "1", "X-Rate-Limit-Problem": "minute"},
            )
        if kind == "lost":
            return Response(200, b"", {}, drop_connection=True)
        if kind == "html":
            return Response(200, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"})
        body = json.loads(response.body)
        if kind == "garbled-item":
            body["Payments"] = [*body["Payments"][:-1], "garbled"]
        elif kind == "no-list":
            del body["Payments"]
        elif kind == "not-a-list":
            body["Payments"] = {"Payment": body["Payments"]}
        return Response(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    return fail


FAILURES = ["server-error", "rate-limited", "lost", "html", "garbled-item", "no-list", "not-a-list"]


def test_every_way_a_grouped_look_up_fails_is_retried_for_all_its_records_and_nothing_is_created_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Twenty payments, their answer lost; each way a grouped look-up can fail (a 5xx, a 429, a
    lost answer, an HTML page, a list with one garbled payment, no list, an object for a list)
    answers it in turn. Each failure retries every record of the GET, still uncertain: none is
    failed, none is read as "none found" (created twice), and each is found once Xero answers."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, max_attempts=20)
    assert settle(stub, [_bill(37_000)]) == [LINKED]
    payments = [_payment(37_100 + n, 37_000, 100 * (n + 1)) for n in range(20)]
    failures = list(FAILURES)

    def failing(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not _is_lookup(request, "Payments") or response.status != 200 or not failures:
            return response
        return _failing(failures.pop(0))(request, response)

    dropped = _drop_first(emulator, "Payments")
    recorder = Recorder(emulator, failing)

    states = settle(stub, payments)

    assert dropped.hits == 1
    assert not failures, f"look-ups never made to meet: {failures}"
    assert states == [LINKED] * len(payments), [_link_error(stub, p) for p in payments]
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Payments", payments)
    assert recorder.writes == ["PUT Payments"], f"created again after a failed look-up: {recorder.writes}"
    recorder.assert_within_xero()


def test_a_missing_second_page_retries_the_whole_group_and_never_takes_the_first_page_as_all(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The answer runs to two pages; the second fails (a 503, then a page that is no JSON). The
    records listed on the second page must not be taken as "none found"."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, max_attempts=20)
    assert settle(stub, [_bill(38_000)]) == [LINKED]
    payments = [_payment(38_100 + n, 38_000, 100 * (n + 1)) for n in range(10)]
    paged = _paged_with_padding(120, "Payments")
    broken = [Response(503, b"{}", {}), Response(200, b"<html>upstream</html>", {"Content-Type": "text/html"})]

    def second_page_fails(request: Request, handle: Handler) -> Response:
        if _is_lookup(request, "Payments") and request.param("page") == "2" and broken:
            return broken.pop(0)
        return paged(request, handle)

    dropped = _drop_first(emulator, "Payments")
    recorder = Recorder(emulator, second_page_fails)

    states = settle(stub, payments)

    assert dropped.hits == 1 and not broken
    assert states == [LINKED] * len(payments), [_link_error(stub, p) for p in payments]
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Payments", payments)
    assert recorder.writes == ["PUT Payments"], f"created again after a failed page: {recorder.writes}"


# -- a careless caller -----------------------------------------------------------------------------
def test_records_posted_again_while_their_look_ups_fail_are_created_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The answer to twenty payments is lost and their look-ups fail for a while; the caller,
    seeing nothing linked, posts the same records again, twice, then Xero answers. Each payment
    is in Xero once, linked to its record."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, max_attempts=50)
    assert settle(stub, [_bill(39_000)]) == [LINKED]
    payments = [_payment(39_100 + n, 39_000, 100 * (n + 1)) for n in range(20)]
    healthy = threading.Event()

    def down(request: Request, handle: Handler) -> Response:
        if _is_lookup(request, "Payments") and not healthy.is_set():
            return Response(503, b'{"Title":"Service Unavailable"}', {"Content-Type": "application/json"})
        return handle(request)

    dropped = _drop_first(emulator, "Payments")
    recorder = Recorder(emulator, down)
    first = post_all(stub, payments)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(recorder.of("Payments")) < 2:
        time.sleep(0.05)
    again = post_all(stub, payments)
    third = post_all(stub, list(reversed(payments)))
    time.sleep(0.5)
    healthy.set()

    assert wait(stub, first + again + third) == [LINKED] * (3 * len(payments))

    assert dropped.hits == 1 and len(recorder.of("Payments")) >= 2
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Payments", payments)
    assert recorder.writes == ["PUT Payments"], f"created again: {recorder.writes}"


def test_bills_changed_and_posted_again_while_uncertain_are_refused_and_each_is_created_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The answer to twelve bills is lost and their look-ups fail; the caller changes each bill's
    first line and posts it again. The change is refused while the bill is uncertain (its object
    may be in Xero), and once Xero answers each bill is one invoice, its own."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, max_attempts=50)
    bills = [_bill(39_500 + n, f"Matter {n}") for n in range(12)]
    healthy = threading.Event()

    def down(request: Request, handle: Handler) -> Response:
        if _is_lookup(request, "Invoices") and not healthy.is_set():
            return Response(503, b'{"Title":"Service Unavailable"}', {"Content-Type": "application/json"})
        return handle(request)

    dropped = _drop_first(emulator, "Invoices")
    recorder = Recorder(emulator, down)
    first = post_all(stub, bills)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(recorder.of("Invoices")) < 2:
        time.sleep(0.05)
    changed = []
    for b in bills:
        c = transaction_pb2.Transaction()
        c.CopyFrom(b)
        c.client_bill.lines[0].description = "Advice on lease, 2h (corrected)"
        changed.append(c)
    again = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=changed)
    ).results
    time.sleep(0.3)
    healthy.set()

    states = wait(stub, first)

    assert dropped.hits == 1 and len(recorder.of("Invoices")) >= 2
    assert [r.error.reason for r in again] == ["POSTING_IN_PROGRESS"] * len(bills), again
    assert states == [LINKED] * len(bills), [_link_error(stub, b) for b in bills]
    mine = _assert_each_linked_to_its_own(stub, emulator, tenant, "Invoices", bills)
    for b in bills:
        assert mine[b.header.id]["Reference"].startswith(f"{b.header.reference} [AS-CB-")
    assert recorder.writes == ["PUT Invoices"], f"created again: {recorder.writes}"


# -- a listed object that cannot be read -------------------------------------------------------------
def _mangle_id(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    if kind == "id-missing":
        return {k: v for k, v in item.items() if k != "PaymentID"}
    if kind == "id-null":
        return {**item, "PaymentID": None}
    if kind == "id-empty":
        return {**item, "PaymentID": ""}
    if kind == "id-number":
        return {**item, "PaymentID": 12345}
    return {**item, "PaymentID": "garbled"}


@pytest.mark.parametrize("kind", ["id-missing", "id-empty", "id-null", "id-number", "id-garbled"])
def test_a_listed_payment_whose_id_was_mangled_is_neither_adopted_nor_read_as_none_found(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """The first answer to the grouped look-up lists the three payments asked for, each carrying
    its tag and amount, but the first with its PaymentID mangled on the way (missing, empty,
    null, a number, not a GUID). Xero names every object it lists: such an answer was garbled
    and says nothing of what Xero holds, so the GET must be made again. Taken as "none found" the
    payment is created twice; adopted, its record is linked to an id Xero never issued."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, max_attempts=20)
    assert settle(stub, [_bill(40_000)]) == [LINKED]
    payments = [_payment(40_100 + n, 40_000, 100 * (n + 1)) for n in range(3)]
    victim = f"{payments[0].header.reference} [AS-CBP-{payments[0].header.id}]"
    mangled: list[str] = []

    def mangle_first(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not _is_lookup(request, "Payments") or response.status != 200 or mangled:
            return response
        real = json.loads(response.body)["Payments"]
        mangled.append(request.param("where") or "")
        return answer_listing(
            response, "Payments", [_mangle_id(kind, i) if i["Reference"] == victim else i for i in real]
        )

    dropped = _drop_first(emulator, "Payments")
    recorder = Recorder(emulator, mangle_first)

    states = settle(stub, payments)

    assert dropped.hits == 1 and mangled
    assert states == [LINKED] * len(payments), [_link_error(stub, p) for p in payments]
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Payments", payments)
    assert recorder.writes == ["PUT Payments"], f"created again after a mangled answer: {recorder.writes}"


@pytest.mark.parametrize("mangling", ["amount-missing", "amount-null", "amount-text", "type-missing", "type-null"])
def test_a_listed_object_whose_checked_field_was_mangled_is_never_read_as_none_found(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, mangling: str
) -> None:
    """What the old `where` asked Xero (`Type=="ACCREC"`, `Amount==1.00`) is now read off each
    listed object. The first answer lists the record's own object, with its tag, but that field
    mangled on the way (missing, null, not a number). Such an answer proves nothing about the
    record: it must be looked up again, never taken as "none found" and created again."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, max_attempts=20)
    field, how = mangling.split("-")
    resource = "Payments" if field == "amount" else "Invoices"
    if resource == "Payments":
        assert settle(stub, [_bill(41_000)]) == [LINKED]
        records = [_payment(41_100 + n, 41_000, 100 * (n + 1)) for n in range(3)]
        victim = "AS-41100 [AS-CBP-41100]"
    else:
        records = [_bill(41_200 + n) for n in range(3)]
        victim = "AS-41200 [AS-CB-41200]"
    key = field.capitalize()
    mangled: list[str] = []

    def mangle(item: dict[str, Any]) -> dict[str, Any]:
        if item.get("Reference") != victim:
            return item
        if how == "missing":
            return {k: v for k, v in item.items() if k != key}
        return {**item, key: None if how == "null" else "one hundred"}

    def mangle_first(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not _is_lookup(request, resource) or response.status != 200 or mangled:
            return response
        mangled.append(request.param("where") or "")
        return answer_listing(response, resource, [mangle(i) for i in json.loads(response.body)[resource]])

    dropped = _drop_first(emulator, resource)
    recorder = Recorder(emulator, mangle_first)

    states = settle(stub, records)

    assert dropped.hits == 1 and mangled and victim in mangled[0]
    assert recorder.writes == [f"PUT {resource}"], f"created again after a mangled answer: {recorder.writes}"
    assert states == [LINKED] * len(records), [_link_error(stub, r) for r in records]
    _assert_each_linked_to_its_own(
        stub, emulator, tenant, resource, records, keep=lambda i: resource == "Payments" or i.get("Type") == "ACCREC"
    )


def test_a_lost_answer_to_a_hundred_and_twenty_bills_is_looked_up_fifty_at_most_a_get(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Short tags fit many to a URL: the GETs then hold fifty records at most, every record is
    asked for, and each bill is found once."""
    emulator, stub, tenant = _setup(poster_factory, emulator_factory, batch_size=150)
    bills = [_bill(42_000 + n, "R") for n in range(120)]
    dropped = _drop_first(emulator, "Invoices")
    recorder = Recorder(emulator)

    assert settle(stub, bills) == [LINKED] * len(bills)

    assert dropped.hits == 1
    recorder.assert_within_xero()
    asked = Counter(tag for _, where, _, _ in recorder.of("Invoices") for tag in _asked(where))
    assert set(asked) == {f"R [AS-CB-{b.header.id}]" for b in bills}, "records never looked up"
    assert 3 <= len(recorder.of("Invoices")) <= 6, len(recorder.of("Invoices"))
    _assert_each_linked_to_its_own(stub, emulator, tenant, "Invoices", bills)
    assert recorder.writes == ["PUT Invoices"], recorder.writes
