"""Reconcile: a mixin of the poster's servicer (docs/drift.md, Reconciliation). Thin: the work is
in service_layer/reconciliation.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import grpc
from xerolink.poster.v1 import drift_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink_common.errors import FieldViolation, invalid_argument
from xerolink_common.grpc_errors import translate_errors
from xerolink_common.reasons import Reason
from xerolink_common.security import require_connection

from xerolink_poster.domain import reconciliation as dom
from xerolink_poster.service_layer.connections import require_connection_id
from xerolink_poster.service_layer.posting import Poster
from xerolink_poster.service_layer.reconciliation import Cancelled, Reconciliation, Report


def _date(value: date_pb2.Date, name: str, present: bool, violations: list[FieldViolation]) -> dt.date | None:
    if not present:
        violations.append(FieldViolation(name, "required: a date such as {year: 2026, month: 7, day: 31}"))
        return None
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError:
        violations.append(FieldViolation(name, f"{value.year}-{value.month}-{value.day} is not a calendar date"))
        return None


def period_of(request: drift_pb2.ReconcileRequest) -> tuple[dt.date, dt.date]:
    """from_date and to_date, both required valid dates, from_date on or before to_date."""
    violations: list[FieldViolation] = []
    first = _date(request.from_date, "from_date", request.HasField("from_date"), violations)
    last = _date(request.to_date, "to_date", request.HasField("to_date"), violations)
    if first is not None and last is not None and first > last:
        violations.append(FieldViolation("to_date", f"{last} is before from_date {first}: it must be on or after it"))
    elif first is not None and last is not None:
        violations += [FieldViolation(name, why) for name, why in dom.period_problems(first, last).items()]
    if violations or first is None or last is None:
        raise invalid_argument(
            Reason.INVALID_RECONCILE_REQUEST, "the reconcile request is not valid; fix the fields listed", violations
        )
    return first, last


def _money(amount: Decimal, currency: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=int((amount * 100).to_integral_value()))


def reconcile_response(report: Report, currency: str) -> drift_pb2.ReconcileResponse:
    accounts = [
        drift_pb2.AccountReconciliation(
            account_code=a.code,
            account_name=a.name,
            posted=_money(a.posted, currency),
            xero=_money(a.xero, currency),
            difference=_money(a.difference, currency),
            explanations=[
                drift_pb2.ReconcileExplanation(
                    link=e.link,
                    xero_id=e.xero_id,
                    object_type=e.object_type,  # type: ignore[arg-type]
                    amount=_money(e.amount, currency),
                    reason=e.reason,
                    drift=e.drift,
                )
                for e in a.explanations
            ],
            unexplained=_money(a.unexplained, currency),
        )
        for a in report.accounts
    ]
    response = drift_pb2.ReconcileResponse(accounts=accounts, reconciled=report.reconciled, sources=report.sources)
    if report.trust is not None:
        t = report.trust
        response.trust.CopyFrom(
            drift_pb2.TrustReconciliation(
                matters=[
                    drift_pb2.MatterTrustBalance(action_id=action, balance=_money(balance, currency))
                    for action, balance in t.matters.items()
                ],
                posted_total=_money(t.posted_total, currency),
                liability_account_code=t.liability_code,
                xero_liability=_money(t.xero_liability, currency),
                bank_account_code=t.bank_code,
                xero_bank=_money(t.xero_bank, currency),
                posted_bank=_money(t.posted_bank, currency),
                reconciled=t.reconciled,
            )
        )
    return response


class ReconcileRpcs:
    """Needs `reconciliation`, set by bootstrap."""

    reconciliation: Reconciliation
    poster: Poster

    @translate_errors
    def Reconcile(
        self, request: drift_pb2.ReconcileRequest, context: grpc.ServicerContext
    ) -> drift_pb2.ReconcileResponse:
        require_connection_id(request.connection_id)
        require_connection(request.connection_id)
        first, last = period_of(request)
        self.poster.require_known_connection(request.connection_id)
        try:
            report = self.reconciliation.reconcile(request.connection_id, first, last, lambda: not context.is_active())
        except Cancelled:
            # The caller cancelled (or its deadline passed): gRPC answers it CANCELLED or
            # DEADLINE_EXCEEDED itself and drops whatever is returned here.
            return drift_pb2.ReconcileResponse()
        return reconcile_response(report, report.currency)
