"""The pre-integration backfill: open client bills that predate the connection, then their
payments, posted through the one posting path (Poster.post_many) with the mapper's
`pre_integration_backfill` flag, and recorded as one operation whose progress is read from the
links. Running it again finds the same content already posted and queues nothing new."""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink_common.errors import ErrorCode, FieldViolation, XerolinkError, bounded, invalid_argument, not_found
from xerolink_common.money import cents_to_str
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import backfill_tables as bt
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow
from xerolink_poster.domain import backfill_progress as bp
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer.connections import get_connection
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.errors_json import error_json
from xerolink_poster.service_layer.posting import Poster
from xerolink_poster.service_layer.posting_values import ItemFailure, PostOutcome, mapping_context, validate_transaction
from xerolink_poster.service_layer.preflight_checks import require_preflight
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

MAX_BILLS = 1000
MAX_TRANSACTIONS = 5000
# Transactions per post_many call: one mapper batch and one registry transaction each.
CHUNK = 500

log = logging.getLogger(__name__)

OPEN = "open"
BILL_KIND = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT_KIND = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT


@dataclass(frozen=True)
class BillInput:
    """One bill of the request, transport-free: status is Actionstep's ("open", "closed", ...)."""

    bill: transaction_pb2.Transaction
    status: str
    # Actionstep's totalDue in cents; None when not sent.
    total_due_cents: int | None
    total_due_currency: str
    payments: Sequence[transaction_pb2.Transaction]


@dataclass
class _Item:
    bill_index: int
    transaction: transaction_pb2.Transaction
    record: RecordRef
    # Where the request holds it: "bills[0].bill", "bills[0].payments[1]".
    path: str
    outcome: str = ""
    posting_id: str = ""
    error: str | None = None


@dataclass
class _Group:
    index: int
    bill: _Item
    payments: list[_Item] = field(default_factory=list)

    def items(self) -> list[_Item]:
        return [self.bill, *self.payments]


@dataclass(frozen=True)
class ItemView:
    row: bt.BackfillItemRow
    state: LinkState | None
    # The stored refusal, or the link's last error.
    error: str | None


@dataclass(frozen=True)
class BackfillView:
    row: bt.BackfillRow
    items: list[ItemView]
    progress: bp.Progress


def _kind_of(transaction: transaction_pb2.Transaction) -> int:
    name = transaction.WhichOneof("kind")
    return common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{name.upper()}") if name else 0


def _record(transaction: transaction_pb2.Transaction) -> RecordRef:
    return RecordRef(_kind_of(transaction), transaction.header.id)


def _refuse(item: _Item, code: ErrorCode, reason: str, message: str, violations: Sequence[FieldViolation] = ()) -> None:
    item.outcome = bp.REFUSED
    item.error = error_json(code, reason, message, [(_in_request(item, v.field), v.description) for v in violations])


def _in_request(item: _Item, field: str) -> str:
    """A field the mapper or the posting path named in one transaction ("transaction.header.id",
    "transactions[3].header.id"), named where the request holds it ("bills[0].payments[1].header.id")."""
    for prefix in ("transaction.", "transactions["):
        if field.startswith(prefix):
            rest = field[len(prefix) :] if prefix == "transaction." else field.partition("].")[2]
            return f"{item.path}.{rest}" if rest else item.path
    return field


def _bill_problem(bill: BillInput, connected: tuple[int, int]) -> tuple[Reason, str] | None:
    """(reason, sentence) when the bill itself cannot be backfilled."""
    tx = bill.bill
    number = tx.client_bill.bill_number or f"bill {tx.header.id}"
    if tx.WhichOneof("kind") != "client_bill":
        return (
            Reason.NOT_A_CLIENT_BILL,
            "only client bills are backfilled; post other transactions with PostTransaction",
        )
    if bill.status != OPEN:
        why = {
            "closed": "is closed (fully paid): nothing is due, so it is not backfilled; enter it in Xero by hand "
            "if its history is needed there",
            "draft": "is a draft: post it in Actionstep and it reaches Xero as a new transaction",
            "deleted": "is deleted in Actionstep: there is nothing to post",
        }.get(bill.status, "has no status: send its Actionstep status (only open bills are backfilled)")
        return Reason.BILL_NOT_OPEN, f"{number} {why}"
    if not tx.header.HasField("posted_at"):
        return Reason.POSTED_AT_REQUIRED, f"{number} has no posted_at: send when it was posted in Actionstep"
    if (tx.header.posted_at.seconds, tx.header.posted_at.nanos) >= connected:
        return (
            Reason.NOT_PRE_INTEGRATION,
            f"{number} was posted after the integration was connected: post it with PostTransaction, not the backfill",
        )
    if bill.total_due_cents is None:
        return Reason.TOTAL_DUE_REQUIRED, f"{number} has no total_due: send Actionstep's totalDue for the bill"
    if bill.total_due_currency and bill.total_due_currency != tx.header.currency_code:
        return (
            Reason.TOTAL_DUE_CURRENCY,
            f"{number}'s total_due is not in the bill's currency {tx.header.currency_code}",
        )
    return None


def _payments_problem(bill: BillInput) -> tuple[Reason, str] | None:
    tx = bill.bill
    paid = sum(p.client_bill_payment.amount.units for p in bill.payments)
    total = tx.client_bill.totals.inclusive.units
    due = bill.total_due_cents or 0
    if total - paid != due:
        return (
            Reason.PAYMENTS_DO_NOT_MATCH_TOTAL_DUE,
            f"{tx.client_bill.bill_number or tx.header.id}: the total {cents_to_str(total)} less the payments "
            f"sent ({cents_to_str(paid)}) is {cents_to_str(total - paid)}, but Actionstep's totalDue is "
            f"{cents_to_str(due)}; send every payment of the bill (and only those) so the Xero invoice ends "
            "with the same amount due",
        )
    return None


def _payment_problem(
    payment: transaction_pb2.Transaction, bill_id: int, path: str, sent: Counter[int]
) -> tuple[Reason, str, FieldViolation] | None:
    """(reason, sentence, the field at fault) when the payment cannot go with its bill; `sent`:
    how many times the request names each payment."""
    if payment.WhichOneof("kind") != "client_bill_payment":
        return (
            Reason.NOT_A_BILL_PAYMENT,
            "only payments of the bill (client_bill_payment) go with it",
            FieldViolation(f"{path}.kind", "client_bill_payment"),
        )
    if payment.client_bill_payment.bill_id != bill_id:
        return (
            Reason.PAYMENT_OF_ANOTHER_BILL,
            f"the payment is for bill {payment.client_bill_payment.bill_id}, not {bill_id}: send it with its own bill",
            FieldViolation(f"{path}.client_bill_payment.bill_id", f"{bill_id}, the id of the bill it is sent with"),
        )
    if sent[payment.header.id] > 1:
        # Counted twice against the totalDue while posted once: the invoice would owe too much.
        return (
            Reason.DUPLICATE_PAYMENT,
            f"payment {payment.header.id} appears {sent[payment.header.id]} times in the request; send it once, "
            "with its own bill",
            FieldViolation(f"{path}.header.id", "a payment the request names once"),
        )
    return None


def _check_request(bills: Sequence[BillInput]) -> None:
    if not bills:
        raise invalid_argument(
            Reason.NO_BILLS, "send the open bills to backfill", [FieldViolation("bills", "at least one bill")]
        )
    count = sum(1 + len(b.payments) for b in bills)
    if len(bills) > MAX_BILLS or count > MAX_TRANSACTIONS:
        raise invalid_argument(
            Reason.BACKFILL_TOO_LARGE,
            f"at most {MAX_BILLS} bills and {MAX_TRANSACTIONS} transactions per backfill; split it into several "
            "backfills (running one again is harmless)",
            [FieldViolation("bills", f"{len(bills)} bills, {count} transactions")],
        )
    for index, bill in enumerate(bills):
        validate_transaction(bill.bill, f"bills[{index}].bill")
        for p, payment in enumerate(bill.payments):
            validate_transaction(payment, f"bills[{index}].payments[{p}]")


def _groups(bills: Sequence[BillInput], connection: ConnectionRow) -> list[_Group]:
    """Every item with its refusal when the request itself shows it cannot be backfilled; a bill
    and its payments are refused together, so Xero never gets a bill with the wrong amount due."""
    context = mapping_context(connection)
    connected = (context.connected_at.seconds, context.connected_at.nanos)
    seen: set[int] = set()
    sent = Counter(p.header.id for b in bills for p in b.payments if p.WhichOneof("kind") == "client_bill_payment")
    groups = []
    for index, bill in enumerate(bills):
        group = _Group(index, _Item(index, bill.bill, _record(bill.bill), f"bills[{index}].bill"))
        group.payments = [
            _Item(index, p, _record(p), f"bills[{index}].payments[{n}]") for n, p in enumerate(bill.payments)
        ]
        groups.append(group)
        problem = _bill_problem(bill, connected)
        if problem is None and bill.bill.header.id in seen:
            problem = (Reason.DUPLICATE_BILL, f"bill {bill.bill.header.id} appears twice in the request; send it once")
        seen.add(bill.bill.header.id)
        payment_problems = [
            _payment_problem(p.transaction, bill.bill.header.id, f"bills[{index}].payments[{n}]", sent)
            for n, p in enumerate(group.payments)
        ]
        if problem is None and not any(payment_problems):
            problem = _payments_problem(bill)
            if problem is None:
                continue
        for item, own in zip(group.payments, payment_problems, strict=True):
            if own is not None:
                _refuse(item, ErrorCode.INVALID_ARGUMENT, own[0], own[1], [own[2]])
        _refuse_group(group, *(problem or _PAYMENT_REFUSED))
    return groups


_PAYMENT_REFUSED = (Reason.PAYMENT_REFUSED, "a payment sent with it is refused; see the payment")


def _refuse_group(group: _Group, reason: Reason, sentence: str) -> None:
    """Refuses the bill for `reason`, and with it each of its payments not refused for its own."""
    _refuse(group.bill, ErrorCode.FAILED_PRECONDITION, reason, sentence)
    for item in group.payments:
        if not item.outcome:
            _refuse(item, ErrorCode.FAILED_PRECONDITION, Reason.BILL_REFUSED, "refused with its bill")


def _apply(items: list[_Item], outcomes: Sequence[PostOutcome | ItemFailure]) -> None:
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, ItemFailure):
            error = bounded(outcome.error)  # stored with the backfill and answered with every read of it
            _refuse(item, error.code, error.reason, error.message, error.field_violations)
        elif outcome.posting is None:
            decision = outcome.decision
            _refuse(item, ErrorCode.FAILED_PRECONDITION, decision.reason_code, decision.reason)
        else:
            item.outcome = bp.ALREADY_DONE if outcome.duplicate else bp.ACCEPTED
            item.posting_id = outcome.posting.posting_id


# Failures that say nothing of the transaction, only that the mapper or the registry could not
# answer now: the start stops there (BACKFILL_INTERRUPTED once something was queued) instead of
# recording the transaction refused.
_TRANSIENT = (ErrorCode.UNAVAILABLE, ErrorCode.ABORTED)


def _refuse_unpostable(poster: Poster, connection_id: str, groups: list[_Group]) -> None:
    """Asks what posting the payments of the bills still to post would answer, recording nothing
    (the mapper's and the registry's refusals): a payment that would be refused refuses its bill
    with it before the bill is posted. Posted alone, the bill would owe its whole total in Xero
    while Actionstep's totalDue is less."""
    waiting = [(group, item) for group in groups if not group.bill.outcome for item in group.payments]
    refused: set[int] = set()
    for group, item in waiting:
        paid_in, billed_in = item.transaction.header.currency_code, group.bill.transaction.header.currency_code
        if paid_in != billed_in:
            # Xero reads a payment's Amount in its invoice's currency (Payment in Xero's OpenAPI
            # description): the dispatcher would reject it once the bill is in Xero, owing all.
            sentence = f"the payment is in {paid_in} and its bill in {billed_in}: Xero would read it as {billed_in}"
            _refuse(item, ErrorCode.FAILED_PRECONDITION, Reason.DOCUMENT_IN_ANOTHER_CURRENCY, sentence)
            refused.add(group.index)
    waiting = [(group, item) for group, item in waiting if not item.outcome]
    for start in range(0, len(waiting), CHUNK):
        chunk = waiting[start : start + CHUNK]
        said = poster.refusals(connection_id, [i.transaction for _, i in chunk], pre_integration_backfill=True)
        for (group, item), refusal in zip(chunk, said, strict=True):
            if isinstance(refusal, XerolinkError):
                if refusal.code in _TRANSIENT:
                    raise refusal  # nothing is posted yet: the start fails whole, to be sent again
                error = bounded(refusal)
                _refuse(item, error.code, error.reason, error.message, error.field_violations)
            elif refusal is not None:
                _refuse(item, ErrorCode.FAILED_PRECONDITION, refusal.reason_code, refusal.reason)
            else:
                continue
            refused.add(group.index)
    for group in groups:
        if group.index in refused:
            _refuse_group(group, *_PAYMENT_REFUSED)


def _post(poster: Poster, connection_id: str, items: list[_Item], actor: str, queued: list[_Item]) -> None:
    """Posts `items` a chunk at a time (each chunk committed on its own); adds to `queued` the
    items each chunk queued."""
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        outcomes = poster.post_many(connection_id, [i.transaction for i in chunk], actor, pre_integration_backfill=True)
        _apply(chunk, outcomes)
        queued.extend(i for i in chunk if i.outcome == bp.ACCEPTED)
        for outcome in outcomes:
            if isinstance(outcome, ItemFailure) and outcome.error.code in _TRANSIENT:
                # Not the transaction's refusal (a division's connection lost its mapper, say):
                # recorded REFUSED, sending the request again would answer that record for ever.
                raise outcome.error


def _interrupted(error: XerolinkError, queued: Sequence[_Item], request_id: str) -> XerolinkError:
    """The error of a start that stopped after some of its transactions were queued: it says
    so (the error it stopped at said nothing was recorded), and how to finish it."""
    return XerolinkError(
        error.code,
        Reason.BACKFILL_INTERRUPTED,
        f"the backfill stopped after {len(queued)} of its transactions were queued for Xero ({error.reason}: the "
        "rest could not be posted); "
        "no backfill was recorded yet: send the same request again"
        f"{f' (request_id {request_id!r})' if request_id else ''} to finish it, "
        "which finds what was queued instead of posting it twice",
        metadata={"queued": str(len(queued)), "stopped_at": str(error.reason)},
    )


def start_backfill(
    poster: Poster, connection_id: str, bills: Sequence[BillInput], request_id: str = "", actor: str = "caller"
) -> str:
    """Posts the bills, then the payments of the bills that were posted; returns the backfill id."""
    db = poster.db
    connection = get_connection(db, connection_id)
    fingerprint = request_fingerprint(bills)
    if request_id:
        with UnitOfWork(db, write=False) as uow:
            earlier = uow.backfills.backfill_by_request(connection_id, request_id)
        if earlier is not None:
            return _same_request(earlier, request_id, fingerprint)
    _check_request(bills)
    require_preflight(db, connection_id)
    groups = _groups(bills, connection)
    _refuse_unpostable(poster, connection_id, groups)
    if request_id:
        recorded = _claim_request(db, connection_id, request_id, fingerprint)
        if recorded:
            return recorded
    queued: list[_Item] = []
    try:
        _post(poster, connection_id, [g.bill for g in groups if not g.bill.outcome], actor, queued)
        payments = []
        for group in groups:
            for item in group.payments:
                if item.outcome:
                    continue
                if group.bill.outcome == bp.REFUSED:
                    sentence = "its bill was refused; see the bill"
                    _refuse(item, ErrorCode.FAILED_PRECONDITION, Reason.BILL_REFUSED, sentence)
                else:
                    payments.append(item)
        # After the bills: a payment whose bill is not linked yet waits for it in the outbox.
        _post(poster, connection_id, payments, actor, queued)
    except XerolinkError as err:
        if not queued:
            if request_id:  # this call holds the request_id's claim (_claim_request)
                # Nothing was posted by this call: it lets go of its hold. The claim goes with
                # the last hold, so a start of the request that queued something (and never lets
                # go), or one still running, keeps the request_id for the request.
                _drop_hold(db, connection_id, request_id, fingerprint)
            raise
        raise _interrupted(err, queued, request_id) from err
    return _record_backfill(db, connection_id, request_id, fingerprint, groups, posted=bool(queued))


def request_fingerprint(bills: Sequence[BillInput]) -> str:
    """What a backfill request asks for: its bills, their status and due amounts, and payments."""
    digest = hashlib.sha256()
    for item in bills:
        parts = [item.bill, *item.payments]
        head = f"{item.status}|{item.total_due_cents}|{item.total_due_currency}|{len(parts)}".encode()
        for chunk in (head, *(p.SerializeToString(deterministic=True) for p in parts)):
            digest.update(len(chunk).to_bytes(8, "big"))
            digest.update(chunk)
    return digest.hexdigest()


def _same_request(earlier: bt.BackfillRow, request_id: str, fingerprint: str, posted: bool = False) -> str:
    """The backfill a reused request_id started, when it names the same request (AIP-155);
    another request under it is refused and changes nothing, unless it was recorded while this
    request's transactions were queued (`posted`): a start of a release that did not claim the
    request_id (_claim_request), still running during a rolling upgrade, and the refusal says
    so. Rows from before fingerprints were kept (empty) are taken as the same request, as they
    were answered then."""
    if earlier.fingerprint and earlier.fingerprint != fingerprint:
        what = (
            "its transactions were queued for Xero while another request under it was recorded first, so no "
            "backfill follows them: send the same request again under a new request_id to follow it (what was "
            "queued is found, not posted twice)"
            if posted
            else "nothing was posted: send a new request_id for a new request (reuse one only to retry the same "
            "request)"
        )
        raise XerolinkError(
            ErrorCode.ALREADY_EXISTS,
            Reason.REQUEST_ID_REUSED,
            f"request_id {request_id!r} was already used for backfill {earlier.backfill_id} with other bills; {what}",
            field_violations=[
                FieldViolation(
                    "request_id",
                    f"already used for backfill {earlier.backfill_id}; a new request needs a new request_id",
                )
            ],
            metadata={"request_id": request_id, "first_backfill": earlier.backfill_id},
        )
    return earlier.backfill_id


def _claim_request(db: Database, connection_id: str, request_id: str, fingerprint: str) -> str:
    """Claims the request_id for this request before anything of it is posted. Posted first and
    recorded after, two requests under one request_id both reached Xero, and after a start that
    stopped part-way another request could take the request_id from it. Returns the backfill
    already recorded under it for this request, or "" when the start goes on holding the claim
    (it made it, or joined an earlier or concurrent start of the same request); another request
    holding it, or recorded under it, is refused with nothing of this one posted."""

    def claim(uow: UnitOfWork) -> str:
        # Claims and records of one connection's request_ids one at a time, as _record_backfill.
        uow.connections.lock_connection(connection_id)
        earlier = uow.backfills.backfill_by_request(connection_id, request_id)
        if earlier is not None:  # recorded since the look-up at the start
            return _same_request(earlier, request_id, fingerprint)
        if uow.backfills.claim_request(connection_id, request_id, fingerprint, now_us()) == fingerprint:
            return ""
        raise XerolinkError(
            ErrorCode.ALREADY_EXISTS,
            Reason.REQUEST_ID_REUSED,
            f"request_id {request_id!r} is held by another request (other bills, or the same bills in another "
            "order), which is being started or stopped part-way: sending that request again, as it was sent, "
            "finishes it; nothing of this request was posted by this call: send a new request_id for a new "
            "request (reuse one only to retry the same request)",
            field_violations=[
                FieldViolation("request_id", "held by another request; a new request needs a new request_id")
            ],
            metadata={"request_id": request_id},
        )

    return run_in_transaction(db, claim)


def _drop_hold(db: Database, connection_id: str, request_id: str, fingerprint: str) -> None:
    """Lets go of the hold on the request_id's claim of a start that posted nothing. Best
    effort: the caller must see why the start failed, and a hold left behind keeps the
    request_id only for the request that failed, which sending it again finishes."""

    def drop(uow: UnitOfWork) -> None:
        uow.connections.lock_connection(connection_id)  # one at a time with the claims
        uow.backfills.drop_hold(connection_id, request_id, fingerprint)

    try:
        run_in_transaction(db, drop)
    except Exception:  # the start's own error is the answer
        log.warning("could not free request_id %r of connection %s", request_id, connection_id, exc_info=True)


def _record_backfill(
    db: Database, connection_id: str, request_id: str, fingerprint: str, groups: list[_Group], posted: bool
) -> str:
    backfill_id = uuid.uuid4().hex

    def write(uow: UnitOfWork) -> str:
        if request_id:
            # Starts under one request_id record one at a time: on PostgreSQL each would
            # otherwise find none before either commits (the index is not unique).
            uow.connections.lock_connection(connection_id)
            earlier = uow.backfills.backfill_by_request(connection_id, request_id)
            if earlier is not None:  # a concurrent start of the same request won
                return _same_request(earlier, request_id, fingerprint, posted)
            uow.backfills.release_request(connection_id, request_id, fingerprint)
        backfill = bt.BackfillRow(
            backfill_id=backfill_id,
            connection_id=connection_id,
            request_id=request_id,
            bills=len(groups),
            fingerprint=fingerprint,
            create_us=now_us(),
        )
        items = [item for group in groups for item in group.items()]
        rows = [
            bt.BackfillItemRow(
                backfill_id=backfill_id,
                seq=seq,
                bill_index=item.bill_index,
                kind=item.record.kind,
                record_id=item.record.id,
                outcome=item.outcome,
                posting_id=item.posting_id,
                error=item.error,
            )
            for seq, item in enumerate(items)
        ]
        uow.backfills.add_backfill(backfill, rows)
        return backfill_id

    return run_in_transaction(db, write)


_BACKFILL_ID = re.compile(r"^[A-Za-z0-9-]{1,40}$")


def backfill_id_of(name: str) -> str:
    prefix = "backfills/"
    if not name.startswith(prefix) or not _BACKFILL_ID.fullmatch(name[len(prefix) :]):
        raise invalid_argument(
            Reason.INVALID_BACKFILL_NAME,
            "name must be 'backfills/{backfill_id}' as StartBackfill returned it",
            [FieldViolation("name", "backfills/{id}")],
        )
    return name[len(prefix) :]


def get_backfill(db: Database, backfill_id: str) -> BackfillView:
    with UnitOfWork(db, write=False) as uow:
        row = uow.backfills.get_backfill(backfill_id)
        if row is None:
            raise not_found(Reason.BACKFILL_NOT_FOUND, f"no backfill {backfill_id}; start one with StartBackfill")
        rows = uow.backfills.items_of(backfill_id)
        tracked = sorted({RecordRef(r.kind, r.record_id) for r in rows if r.outcome != bp.REFUSED})
        # A division's bills are posted under its own connection when the routing says so: their
        # links are under one connection of the firm group (never two, see routing_changes.py).
        started = uow.connections.get_connection(row.connection_id)
        group = started.firm_group if started is not None else ""
        links: dict[RecordRef, LinkRow] = {}
        for connection_id in [row.connection_id, *uow.connections.firm_members(group)]:
            for record, found in uow.links.links_for(connection_id, tracked).items():
                links.setdefault(record, found)
    items = []
    for r in rows:
        link = links.get(RecordRef(r.kind, r.record_id)) if r.outcome != bp.REFUSED else None
        state = LinkState(link.state) if link is not None and link.state else None
        items.append(ItemView(r, state, r.error if link is None else link.last_error))
    states = [bp.ItemState(i.row.bill_index, i.row.kind == BILL_KIND, i.row.outcome, i.state) for i in items]
    return BackfillView(row, items, bp.progress(states))


def watch_backfill(
    db: Database, backfill_id: str, changes: StateChanges, is_cancelled: Callable[[], bool], poll: float = 0.1
) -> Iterator[BackfillView]:
    """Yields the backfill now and after every change of its counts, until it is done."""
    last: bp.Progress | None = None
    seen = changes.version
    while not is_cancelled():
        view = get_backfill(db, backfill_id)
        if view.progress != last:
            last = view.progress
            yield view
        if view.progress.done:
            return
        seen = changes.wait(seen, poll)
        time.sleep(0)
