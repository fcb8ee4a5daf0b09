"""The poster killed with SIGKILL at random moments, several times, while a firm's month is posted
and dispatched, then started again: afterwards every accepted transaction is linked or failed
with a reason, none is missing, and Xero holds exactly one object per Actionstep record and
generation. See tests/crash/harness.py for what is checked, and docs/evidence.md.

CI runs small months; the full size (10,000 transactions and more kills) is

    python bench/crash_suite.py --transactions 10000 --kills 10 --faults all --storms 6

XEROLINK_CRASH_TRANSACTIONS and XEROLINK_CRASH_SEED change the CI sizes and month."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.crash.harness import CrashPlan, CrashResult, run
from tests.fixtures.processes import free_port

TRANSACTIONS = int(os.environ.get("XEROLINK_CRASH_TRANSACTIONS", "300"))
SEED = int(os.environ.get("XEROLINK_CRASH_SEED", "20261122"))


def _run(plan: CrashPlan, mapper_process_target: str) -> CrashResult:
    result = run(plan, mapper_process_target, free_port())
    print("\ncrash run: " + json.dumps(result.summary()))
    return result


def _assert_held(result: CrashResult, kills: int) -> None:
    assert not result.problems, "\n".join(result.problems[:20])
    assert result.accepted == result.generated
    assert result.linked + result.failed == result.accepted
    assert len(result.kills) == kills
    assert any(k.mode == "at_commit" for k in result.kills), "a kill must land between a write and its answer"


def test_a_poster_killed_again_and_again_loses_nothing_and_duplicates_nothing(
    mapper_process_target: str, tmp_path: Path
) -> None:
    plan = CrashPlan(
        transactions=TRANSACTIONS,
        seed=SEED,
        kills=4,
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        workdir=tmp_path,
    )
    result = _run(plan, mapper_process_target)
    _assert_held(result, plan.kills)
    # Xero only failed by dying with the poster: everything links, and the money is exact.
    assert result.linked == result.generated
    assert result.accounts_checked > 10


def test_kills_under_fire_with_server_errors_latency_dropped_answers_and_429_storms(
    mapper_process_target: str, tmp_path: Path
) -> None:
    plan = CrashPlan(
        transactions=TRANSACTIONS * 2 // 3,
        seed=SEED + 1,
        kills=3,
        faults="all",
        storms=2,
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        workdir=tmp_path,
    )
    result = _run(plan, mapper_process_target)
    _assert_held(result, plan.kills)
    assert result.fault_hits > 0 and result.storms == 2
    if result.linked == result.generated:
        assert result.accounts_checked > 10


def test_kills_with_garbled_answers_after_xero_has_forgotten_every_idempotency_key(
    mapper_process_target: str, tmp_path: Path
) -> None:
    """Answers mangled after commit, and no Idempotency-Key kept (Xero's window has passed): only
    the look-up by each record's tag, in a field Xero keeps, prevents a duplicate."""
    plan = CrashPlan(
        transactions=TRANSACTIONS // 2,
        seed=SEED + 3,
        kills=3,
        faults="garble",
        forget_keys=True,
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        workdir=tmp_path,
    )
    result = _run(plan, mapper_process_target)
    _assert_held(result, plan.kills)
    assert result.fault_hits > 0
    assert result.linked == result.generated
    assert result.accounts_checked > 10


@pytest.mark.postgres
def test_kills_with_the_registry_on_postgresql(mapper_process_target: str, postgres_url: str, tmp_path: Path) -> None:
    plan = CrashPlan(
        transactions=TRANSACTIONS // 2,
        seed=SEED + 2,
        kills=3,
        faults="drop",
        database_url=postgres_url,
        workdir=tmp_path,
    )
    result = _run(plan, mapper_process_target)
    _assert_held(result, plan.kills)
    assert result.linked == result.generated
