"""The crash suite at full size: a generated firm's month of mixed transactions posted to a real
`xerolink-poster` process that is killed with SIGKILL several times and started again, with Xero
failing as it does in production if asked. Prints the figures and every problem found; exits 1
when any check fails. The checks are those of tests/crash (see tests/crash/harness.py).

    python bench/crash_suite.py --transactions 10000 --kills 10                         # calm Xero
    python bench/crash_suite.py --transactions 10000 --kills 10 --faults all --storms 6  # under fire
    python bench/crash_suite.py --transactions 10000 --kills 10 --database postgresql+psycopg://...
    python bench/crash_suite.py --quick --json                                           # smoke

Faults: none, 5xx (10% of calls answer 503), latency (20% slowed 0.2 s, 2% beyond the poster's
timeout), drop (10% of writes commit and lose their answer), garble (10% of writes commit and answer 200
with every element mangled), all (the five together); --forget-keys: the emulator keeps no
Idempotency-Key, as after Xero's window; storms
refuse every call with 429 + Retry-After for 1.5 s at random moments.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the harness lives with the tests
    sys.path.insert(0, str(ROOT))

from tests.crash.harness import FAULT_SETS, CrashPlan, run  # noqa: E402
from tests.fixtures.processes import child_env, console_script, free_port, wait_for_port  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=10_000, help="size of the generated month (about)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--faults", choices=sorted(FAULT_SETS), default="none")
    parser.add_argument("--storms", type=int, default=0, help="429 storms during the run")
    parser.add_argument(
        "--forget-keys", action="store_true", help="Xero keeps no Idempotency-Key (its window has passed)"
    )
    parser.add_argument(
        "--kill-gap",
        type=float,
        help="at most this many seconds between a restart and the next kill (default: spread over the run)",
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--database", help="registry URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--minute-seconds", type=float, default=0.5, help="length of Xero's rate-limit minute")
    parser.add_argument("--quick", action="store_true", help="a small run that only checks the script works")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if args.quick:
        args.transactions, args.kills = 120, 2
    workdir = Path(tempfile.mkdtemp(prefix="xerolink-crash-"))
    plan = CrashPlan(
        transactions=args.transactions,
        seed=args.seed,
        kills=args.kills,
        faults=args.faults,
        storms=args.storms,
        forget_keys=args.forget_keys,
        database_url=args.database or f"sqlite:///{workdir / 'registry.db'}",
        workdir=workdir,
        minute_seconds=args.minute_seconds,
        # About 25 transactions settle a second: spread the kills over acceptance and dispatch.
        kill_gap=args.kill_gap or max(2.5, args.transactions / 25 / max(args.kills, 1)),
    )
    mapper_port = free_port()
    env = child_env(XEROLINK_MAPPER_ADDRESS=f"127.0.0.1:{mapper_port}", XEROLINK_LOG_LEVEL="WARNING")
    with open(workdir / "mapper.log", "wb") as log:
        mapper = subprocess.Popen(console_script("xerolink-mapper"), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(mapper_port, proc=mapper)
            result = run(plan, f"127.0.0.1:{mapper_port}", free_port())
        finally:
            mapper.terminate()
            mapper.wait(15)
    print(
        f"{result.generated} transactions generated, {result.accepted} accepted "
        f"({result.post_retries} requests repeated after a kill) in {result.accept_seconds:.1f}s; "
        f"settled after {result.settle_seconds:.1f}s: {result.linked} LINKED, {result.failed} FAILED"
    )
    print(f"kills: {len(result.kills)} ({'; '.join(result.summary()['kills'])})")
    print(f"faults hit: {result.fault_hits}; 429 storms: {result.storms}")
    print(
        f"Xero holds {result.xero_objects} tagged objects and {result.allocations} allocations; "
        f"{result.accounts_checked} account balances compared with the ledger model"
    )
    print(f"problems: {len(result.problems)}")
    for problem in result.problems:
        print(f"  - {problem}")
    print(f"logs: {workdir}")
    if args.json:
        print(json.dumps(result.summary()))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
