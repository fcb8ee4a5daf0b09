"""General journals: Actionstep journal lines summed into one Xero manual journal."""

from __future__ import annotations

from xerolink_mapper.domain.aggregation import describe, tax_type_for
from xerolink_mapper.domain.allocations import JOURNAL_WITHOUT_TAX_CODE
from xerolink_mapper.domain.mapping_job import PURCHASE_MAP, SALES_MAP, KindMapper, MappingJob
from xerolink_mapper.domain.model import GeneralJournalBody, Kind
from xerolink_mapper.domain.validation import money
from xerolink_mapper.domain.xero import JournalLine, LineAmountTypes, ManualJournal, Operation
from xerolink_mapper.domain.xero_fields import ACCOUNT_CODE, LINE_DESCRIPTION, NARRATION


def _general_journal(job: MappingJob, body: GeneralJournalBody) -> tuple[list[Operation], int]:
    """Lines summed per account, tax type, side and matter (debits and credits stay apart, so the
    journal's debit total is conserved; with reports by matter a line's matter is its own
    action_id, else the header's, and two matters are never summed; off, every matter is 0).
    Actionstep journal lines carry no tax amount: the journal is posted NoTax, debit lines' codes
    through the purchase map, credits' through the sales map."""
    path = f"{job.path}.lines"
    if not body.lines:
        job.problems.field(path, "has no lines: a journal needs at least two")
    sums: dict[tuple[str, str, bool, int], int] = {}
    texts: dict[tuple[str, str, bool, int], list[str]] = {}
    balance = 0
    debits = 0
    no_code: str | None = None
    for i, line in enumerate(body.lines):
        at = f"{path}[{i}]"
        amount = money(line.amount, f"{at}.amount", job.currency, job.problems, positive=False)
        if amount == 0:
            job.problems.field(f"{at}.amount", "is zero: a journal line must move money; remove it")
        if not line.gl_account:
            job.problems.field(f"{at}.gl_account", "is required: allocate the line to a general-ledger account")
        job.text(line.gl_account, f"{at}.gl_account", ACCOUNT_CODE)
        # Trust money moves only by the trust kinds; a general journal is the office's.
        job.kept_apart(line.gl_account, f"{at}.gl_account", trust=False)
        job.text(line.description, f"{at}.description", LINE_DESCRIPTION)
        debit = amount > 0
        if line.tax_code:
            tax_map, name = (
                (job.ctx.purchase_tax_code_map, PURCHASE_MAP) if debit else (job.ctx.tax_code_map, SALES_MAP)
            )
            tax_type = tax_type_for(line.tax_code, f"{at}.tax_code", tax_map, name, job.problems)
        else:
            if no_code is None:  # asked once, so a missing one is named once
                no_code = job.untaxed(JOURNAL_WITHOUT_TAX_CODE)
            tax_type = no_code
        matter = (line.action_id or job.matter) if job.tracking else 0
        key = (line.gl_account, tax_type, debit, matter)
        sums[key] = sums.get(key, 0) + amount
        texts.setdefault(key, []).append(line.description)
        balance += amount
        debits += max(amount, 0)
    if balance != 0:
        job.problems.field(path, f"do not balance: debits minus credits is {balance} cents; a journal sums to zero")
    lines = tuple(
        JournalLine(key[0], describe(texts[key], body.narration or key[0]), amount, key[1], 0, key[3])
        for key, amount in sums.items()
    )
    if not body.narration:
        job.problems.field(f"{job.path}.narration", "is required: Xero manual journals need a narration")
    job.text(body.narration, f"{job.path}.narration", NARRATION)
    journal = ManualJournal(body.narration, job.date, LineAmountTypes.NO_TAX, lines)
    return [Operation("manual-journal", journal)], debits


MAPPERS: dict[Kind, KindMapper] = {
    Kind.GENERAL_JOURNAL: _general_journal,  # type: ignore[dict-item]
}
