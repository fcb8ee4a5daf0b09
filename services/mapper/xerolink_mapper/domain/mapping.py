"""What each supported kind becomes in Xero. One Actionstep transaction may become several
operations, in the order the poster performs them; references to other Actionstep records are
left as RecordKeys for the poster to resolve through its link registry."""

from __future__ import annotations

from xerolink_mapper.domain import chart as chart_checks
from xerolink_mapper.domain import tax_rates as tax_checks
from xerolink_mapper.domain.allocations import ALLOCATION_FUNCTIONS
from xerolink_mapper.domain.decisions import decide
from xerolink_mapper.domain.kinds import banking, documents, journals, settlements, trust
from xerolink_mapper.domain.mapping_job import KindMapper, MappingJob
from xerolink_mapper.domain.model import Kind, MappingContext, RecordKey, Transaction
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.validation import check_context, check_header
from xerolink_mapper.domain.xero import Decision, MapOutcome

# ALLOCATION_FUNCTIONS (allocations.py) lists xerolink_common.allocation_functions.AllocationFunction in order.
__all__ = ["ALLOCATION_FUNCTIONS", "MAPPED_KINDS", "map_transaction"]

_MAPPERS: dict[Kind, KindMapper] = {
    **documents.MAPPERS,
    **settlements.MAPPERS,
    **trust.MAPPERS,
    **banking.MAPPERS,
    **journals.MAPPERS,
}
MAPPED_KINDS = frozenset(_MAPPERS)


def map_transaction(tx: Transaction, ctx: MappingContext) -> MapOutcome:
    """Decides, and when supported maps, one transaction. Raises XerolinkError
    (INVALID_ARGUMENT / FAILED_PRECONDITION) with every problem found; never guesses."""
    problems = Problems()
    check_context(ctx, problems)
    check_header(tx.header, ctx, problems)
    problems.raise_if_any()
    record = RecordKey(tx.kind, tx.header.id)
    decision: Decision = decide(tx, ctx)
    if not decision.supported:
        return MapOutcome(record, decision, (), 0, tx.header.currency_code)
    job = MappingJob(tx, ctx, problems)
    operations, total = _MAPPERS[tx.kind](job, tx.body)
    if ctx.chart is not None and not problems:
        chart_checks.check_operations(operations, ctx.chart, ctx.chart_usable, problems)
    if ctx.tax_rates is not None and not problems:
        tax_checks.check_operations(operations, ctx.tax_rates, ctx.chart, problems)
    problems.raise_if_any()
    return MapOutcome(record, decision, tuple(operations), total, tx.header.currency_code)
