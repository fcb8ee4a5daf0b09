"""Reconcile (docs/drift.md, Reconciliation): per Xero account, the movement xerolink posted in a
period (the ledger effect of its snapshots, domain/reconciliation.py) against the movement Xero's
Trial Balance reports, each difference traced to what explains it: an open drift (Xero's current
object against the snapshot), an object left in Xero by an unlink (orphaned), and the remainder.

Xero is read through the tenant's worker lent by the dispatcher (as corrections do), so the reads
share the tenant's rate budget and lease with posting: first the linked objects that have no
snapshot (service_layer/snapshot_adoption.py), then GET Organisation (its financial year end),
GET Accounts (the system accounts and classes), GET Reports/TrialBalance at each date
report_dates names, and each drifted object (with the payments on it xerolink did not make)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.allocation_functions import AllocationFunction
from xerolink_common.errors import unavailable
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.drift_tables import DriftRow, XeroSnapshotRow
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain import reconciliation as dom
from xerolink_poster.domain.records import RecordRef, link_name
from xerolink_poster.service_layer import snapshot_adoption
from xerolink_poster.service_layer.connections import get_connection, require_connection_id
from xerolink_poster.service_layer.correction_xero import CorrectionXero, XeroTrouble
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.posting_values import mapping_context
from xerolink_poster.service_layer.tenant_access import borrowed_tenant
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger("xerolink_poster.reconciliation")

# Object type -> Xero collection, for reading a drifted object as Xero holds it now.
_RESOURCES = {
    dom.INVOICE: "Invoices",
    dom.CREDIT_NOTE: "CreditNotes",
    dom.PAYMENT: "Payments",
    dom.BANK_TRANSACTION: "BankTransactions",
    dom.BANK_TRANSFER: "BankTransfers",
    dom.MANUAL_JOURNAL: "ManualJournals",
}
# The snapshots whose Type says what a payment on them settles (an overpayment's refund names the
# Overpayment, whose Type is RECEIVE- or SPEND-OVERPAYMENT).
_PAID_DOCUMENTS = (dom.INVOICE, dom.CREDIT_NOTE, dom.BANK_TRANSACTION, dom.OVERPAYMENT)
_TAX_SYSTEM_ACCOUNTS = ("GST", "VAT", "SALESTAX")
_PROFIT_CLASSES = ("REVENUE", "EXPENSE")
# Ledgers that hold trust money (MappingContext.ledgers): all but OFFICE.
_TRUST_LEDGERS = (
    mapper_pb2.ORGANISATION_LEDGERS_UNSPECIFIED,
    mapper_pb2.ORGANISATION_LEDGERS_OFFICE_AND_TRUST,
    mapper_pb2.ORGANISATION_LEDGERS_TRUST,
)
DRIFT_PAGE = 500


@dataclass(frozen=True)
class TrustResult:
    matters: dict[int, Decimal]
    liability_code: str
    xero_liability: Decimal
    bank_code: str
    xero_bank: Decimal
    posted_bank: Decimal

    @property
    def posted_total(self) -> Decimal:
        return sum(self.matters.values(), dom.ZERO)

    @property
    def reconciled(self) -> bool:
        # The liability (a credit balance) holds the matters' money; the bank (a debit balance) what
        # xerolink moved through it, which also holds interest and lacks funds moved to statutory
        # or advanced funds accounts.
        return self.xero_liability == self.posted_total and self.xero_bank == self.posted_bank


@dataclass
class Report:
    accounts: list[dom.AccountResult]
    trust: TrustResult | None
    sources: list[str] = field(default_factory=list)
    currency: str = ""

    @property
    def reconciled(self) -> bool:
        return all(a.difference == 0 for a in self.accounts) and (self.trust is None or self.trust.reconciled)


class Cancelled(Exception):
    """The caller went away: the reconciliation stops before its next Xero call."""


class _Reader:
    """Xero's answers reconciliation needs, each call through the tenant's worker."""

    def __init__(self, xero: CorrectionXero, cancelled: Callable[[], bool]) -> None:
        self.xero = xero
        self.cancelled = cancelled
        self.sources: list[str] = []

    def get(self, path: str, collection: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        if self.cancelled():
            raise Cancelled(path)
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        self.sources.append(f"GET {path}{'?' + query if query else ''}")
        answer = self.xero.caller.call(self.xero.creds, "GET", path, params=params)
        if answer.status == 404:
            return []
        if not answer.ok or not isinstance(answer.body, dict):
            raise XeroTrouble(Reason.XERO_LOOKUP_FAILED, f"Xero answered {answer.status} to GET {path}")
        items = answer.body.get(collection)
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


class Reconciliation:
    def __init__(self, db: Any, dispatcher: Dispatcher | None, lease_wait: float = 10.0) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.lease_wait = lease_wait

    def reconcile(
        self, connection_id: str, first: dt.date, last: dt.date, cancelled: Callable[[], bool] = lambda: False
    ) -> Report:
        require_connection_id(connection_id)
        connection = get_connection(self.db, connection_id)
        try:
            with borrowed_tenant(
                self.dispatcher, connection, self.lease_wait, "reconcile on a poster that runs it"
            ) as (worker, creds):
                reader = _Reader(CorrectionXero(worker, creds), cancelled)
                return self._reconcile(connection, first, last, reader)
        except XeroTrouble as trouble:
            raise unavailable(
                trouble.reason, f"{trouble.message}; reconcile again", retry_after_seconds=2.0
            ) from trouble

    def _reconcile(self, connection: ConnectionRow, first: dt.date, last: dt.date, reader: _Reader) -> Report:
        cid = connection.connection_id
        # Objects linked before snapshots were kept count as posted only once adopted; the answer
        # is never given while some are not.
        left = snapshot_adoption.adopt_missing(self.db, cid, reader.get)
        if left:
            raise unavailable(
                Reason.SNAPSHOTS_NOT_ADOPTED,
                f"{left} objects linked before snapshots were kept are still to be read from Xero (at most "
                f"{snapshot_adoption.ADOPT_READS} reads a reconcile, within the organisation's rate budget); what "
                "xerolink posted to them cannot be counted until then: reconcile again",
                retry_after_seconds=60.0,
            )
        organisation = (reader.get("Organisation", "Organisations") or [{}])[0]
        end_day = int(organisation.get("FinancialYearEndDay") or 31)
        end_month = int(organisation.get("FinancialYearEndMonth") or 12)
        chart = reader.get("Accounts", "Accounts")
        by_system = {str(a.get("SystemAccount") or ""): str(a.get("Code") or "") for a in chart}
        system = dom.SystemAccounts(
            receivable=by_system.get("DEBTORS", ""),
            payable=by_system.get("CREDITORS", ""),
            tax=next((by_system[s] for s in _TAX_SYSTEM_ACCOUNTS if s in by_system), ""),
        )
        codes_by_id = {str(a.get("AccountID") or "").lower(): str(a.get("Code") or "") for a in chart}
        names = {str(a.get("Code") or ""): str(a.get("Name") or "") for a in chart}
        profit_codes = [str(a.get("Code") or "") for a in chart if a.get("Class") in _PROFIT_CLASSES]
        balances: dict[dt.date, dict[str, dom.TrialBalanceRow]] = {}
        for day in dom.report_dates(first, last, end_day, end_month):
            report = (reader.get("Reports/TrialBalance", "Reports", {"date": day.isoformat()}) or [{}])[0]
            balances[day] = dom.parse_trial_balance(report, codes_by_id)
            names.update({code: row.name for code, row in balances[day].items() if code not in names})
        xero = dom.xero_movement(
            balances, first, last, end_day, end_month, profit_codes, by_system.get("RETAINEDEARNINGS", "")
        )
        period = (first.isoformat(), last.isoformat())
        with UnitOfWork(self.db, write=False) as uow:
            every = uow.drift.snapshots_until(cid, "9999-12-31")
            snapshots = [s for s in every if period[0] <= s.doc_date <= period[1]]
            # The documents payments pay may be dated before the period.
            documents = [s for s in every if s.object_type in _PAID_DOCUMENTS]
            orphaned = {o.xero_id for o in _orphans(uow, cid)}
            drifts = _open_drifts(uow, cid)
            link_ids = {s.link_id for s in every} | {d.link_id for d in drifts}
            links = {i: uow.links.get_link_by_id(i) for i in sorted(link_ids)}
            known = {s.xero_id: s for s in uow.drift.snapshots_by_xero_ids(cid, [d.xero_id for d in drifts]).values()}
            actions = uow.matters.actions_of_links(sorted(link_ids))
            journals = uow.matters.journal_matters_of_links(sorted(link_ids))
            options = {key.lower(): o.action_id for o in _options(uow, cid) for key in (o.tracking_option_id, o.name)}

        def name_of(link_id: int) -> str:
            link = links.get(link_id)
            return link_name(cid, RecordRef(link.kind, link.record_id)) if link is not None else ""

        def effect(object_type: int, doc: Mapping[str, Any] | None) -> dom.Effect:
            return dom.ledger_effect(object_type, doc, system) if dom.in_period(doc, *period) else {}

        types_by_id = dom.document_types([(s.xero_id, json.loads(s.document)) for s in documents])
        posted: dict[str, Decimal] = {}
        causes: list[dom.Cause] = []
        for snap in snapshots:
            doc = dom.with_payment_type(json.loads(snap.document), types_by_id)
            if snap.active:
                moved = effect(snap.object_type, doc)
                if dom.imbalance(moved):
                    # Xero accepts no unbalanced object: its part is left in the difference, unexplained.
                    log.warning(
                        "reconcile connection=%s link=%s xero_id=%s: what xerolink posted does not balance by %s",
                        cid,
                        name_of(snap.link_id),
                        snap.xero_id,
                        dom.imbalance(moved),
                    )
                dom.add(posted, moved)
            elif snap.xero_id in orphaned:
                # As Xero holds it now: a corrector deletes or voids an orphan (docs/unlinking.md),
                # and a deleted or voided object moves nothing (reconciliation's status rules).
                now = _as_xero_holds_it(reader, snap.object_type, snap.xero_id, types_by_id)
                if now is None:
                    now = doc
                causes.append(
                    dom.Cause(
                        name_of(snap.link_id), snap.xero_id, snap.object_type, "orphaned", effect(snap.object_type, now)
                    )
                )
        causes += self._drift_causes(drifts, known, reader, effect, name_of, types_by_id)
        accounts = dom.compare(posted, xero, causes, names)
        until_end = [s for s in every if s.active and s.doc_date <= period[1]]
        trust = self._trust(connection, until_end, (actions, journals), options, balances[last], system, types_by_id)
        return Report(accounts, trust, reader.sources, mapping_context(connection).base_currency_code)

    def _drift_causes(
        self,
        drifts: list[DriftRow],
        known: Mapping[str, XeroSnapshotRow],
        reader: _Reader,
        effect: Callable[[int, Mapping[str, Any] | None], dom.Effect],
        name_of: Callable[[int], str],
        types_by_id: Mapping[str, str],
    ) -> list[dom.Cause]:
        """Each drifted object's part: its effect as Xero holds it now minus as posted, plus the
        payments on it xerolink did not make. One cause per object (several drifts on one object
        are one change), named by its first open drift."""
        out: list[dom.Cause] = []
        seen: set[str] = set()
        for drift in drifts:
            snap = known.get(drift.xero_id.lower())
            resource = _RESOURCES.get(drift.object_type)
            if snap is None or resource is None or drift.xero_id in seen:
                continue
            seen.add(drift.xero_id)
            current = _as_xero_holds_it(reader, drift.object_type, drift.xero_id, types_by_id)
            change: dict[str, Decimal] = {}
            dom.add(change, effect(drift.object_type, current))
            posted_doc = dom.with_payment_type(json.loads(snap.document), types_by_id)
            dom.add(change, effect(drift.object_type, posted_doc), -1)
            if current is not None and drift.object_type in (dom.INVOICE, dom.CREDIT_NOTE):
                for payment in current.get("Payments") or []:
                    payment_id = str(payment.get("PaymentID") or "").lower()
                    if payment_id and payment_id not in known and _not_linked(self.db, drift, payment_id):
                        made = _first(reader.get(f"Payments/{payment_id}", "Payments"))
                        dom.add(change, effect(dom.PAYMENT, made))
            name = f"connections/{drift.connection_id}/drifts/{drift.id}"
            out.append(dom.Cause(name_of(drift.link_id), drift.xero_id, drift.object_type, drift.kind, change, name))
        return out

    def _trust(
        self,
        connection: ConnectionRow,
        until_end: list[XeroSnapshotRow],
        matters: tuple[Mapping[int, int], Mapping[int, tuple[int, int]]],
        options: Mapping[str, int],
        at_end: Mapping[str, dom.TrialBalanceRow],
        system: dom.SystemAccounts,
        types_by_id: Mapping[str, str],
    ) -> TrustResult | None:
        """`matters`: each link's matter (its record's header action), and each trust journal's
        paying and receiving matters (dom.line_matter)."""
        actions, journals = matters
        context = mapping_context(connection)
        liability = context.account_allocation.get(AllocationFunction.TRUST_LIABILITY, "")
        bank = context.account_allocation.get(AllocationFunction.TRUST_BANK, "")
        if context.ledgers not in _TRUST_LEDGERS or not liability or not bank:
            return None
        lines: list[tuple[int, Decimal]] = []
        bank_moved: dict[str, Decimal] = {}
        for snap in until_end:
            doc = dom.with_payment_type(json.loads(snap.document), types_by_id)
            for option, amount in dom.trust_lines(doc, snap.object_type, liability):
                journal = journals.get(snap.link_id) if snap.object_type == dom.MANUAL_JOURNAL else None
                lines.append(
                    (options.get(option) or dom.line_matter(journal, amount) or actions.get(snap.link_id, 0), amount)
                )
            dom.add(bank_moved, {bank: dom.ledger_effect(snap.object_type, doc, system).get(bank, dom.ZERO)})
        liability_row, bank_row = at_end.get(liability), at_end.get(bank)
        return TrustResult(
            dom.trust_balances(lines),
            liability,
            -(liability_row.ytd if liability_row else dom.ZERO),
            bank,
            bank_row.ytd if bank_row else dom.ZERO,
            bank_moved.get(bank, dom.ZERO),
        )


def _not_linked(db: Any, drift: DriftRow, payment_id: str) -> bool:
    """Whether xerolink holds no snapshot of the payment: one Xero (or a person) made."""
    with UnitOfWork(db, write=False) as uow:
        return uow.drift.get_snapshot(drift.connection_id, payment_id.lower()) is None


def _as_xero_holds_it(
    reader: _Reader, object_type: int, xero_id: str, types_by_id: Mapping[str, str]
) -> dict[str, Any] | None:
    """The object read from Xero now, its payments typed (None when Xero answers nothing or the
    type is not one reconciliation reads)."""
    resource = _RESOURCES.get(object_type)
    read = _first(reader.get(f"{resource}/{xero_id}", resource)) if resource is not None else None
    return dom.with_payment_type(read, types_by_id) if read is not None else None


def _first(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return items[0] if items else None


def _open_drifts(uow: UnitOfWork, connection_id: str) -> list[DriftRow]:
    out: list[DriftRow] = []
    before: int | None = None
    while True:
        page = uow.drift.list_drifts(connection_id, "open", [], None, before, DRIFT_PAGE)
        out += page
        if len(page) < DRIFT_PAGE:
            return sorted(out, key=lambda d: d.id or 0)
        before = page[-1].id or 0


def _orphans(uow: UnitOfWork, connection_id: str) -> list[Any]:
    out: list[Any] = []
    after = 0
    while True:
        page = list(uow.links.list_orphans(connection_id, None, 0, after, 500))
        out += page
        if len(page) < 500:
            return out
        after = page[-1].id or 0


def _options(uow: UnitOfWork, connection_id: str) -> list[Any]:
    out: list[Any] = []
    after = 0
    while True:
        page = list(uow.matters.list_options(connection_id, after, 500))
        out += page
        if len(page) < 500:
            return out
        after = page[-1].action_id
