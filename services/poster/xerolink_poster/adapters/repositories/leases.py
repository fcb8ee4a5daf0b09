"""The leases repository: which poster holds each Xero tenant, the calls it made under the lease,
and the app's calls a minute across every poster on the database."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import bindparam, case, delete, func, or_, text, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from xerolink_poster.adapters.repositories.bulk import expire_loaded
from xerolink_poster.adapters.tables import AppCallBucketRow, TenantLeaseRow
from xerolink_poster.domain.rate_limits import app_bucket_of, app_bucket_size
from xerolink_poster.domain.stored_rows import HeldLease, LeaseForCall, PriorLease


class SqlLeaseRepository:
    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self._session = session
        self._is_sqlite = is_sqlite

    def get_lease(self, tenant_id: str) -> TenantLeaseRow | None:
        return self._session.get(TenantLeaseRow, tenant_id)

    def acquire_lease(self, tenant_id: str, holder: str, now_us: int, ttl_us: int) -> HeldLease | None:
        """Takes or renews the tenant's lease when it is free, expired or already ours: one
        statement, returning the lease as a value (None: another poster holds it)."""
        got = self._session.execute(
            _TAKE_LEASE_SQLITE if self._is_sqlite else _TAKE_LEASE_POSTGRES,
            {"tenant": tenant_id, "taker": holder, "now_us": now_us, "until_us": now_us + ttl_us},
        ).first()
        if got is None:
            return None
        self._expire_held(tenant_id)
        return HeldLease(*got)

    def prior_lease(self, tenant_id: str) -> PriorLease | None:
        """The tenant's lease row before this poster takes or renews it (None: never leased).
        Locked on PostgreSQL until the transaction ends, so that no poster takes the lease and
        claims between this read and the caller's `acquire_lease`."""
        row = self._session.execute(
            _PRIOR_LEASE if self._is_sqlite else _PRIOR_LEASE_LOCKED, {"tenant_id": tenant_id}
        ).first()
        return None if row is None else PriorLease(row.holder, row.expires_us)

    def _expire_held(self, tenant_id: str) -> None:
        """The session's copy of the lease row, if a caller read one in this unit, is stale after a
        Core statement changed the row."""
        expire_loaded(self._session, TenantLeaseRow, [tenant_id])

    def held_by_others(self, tenant_ids: Sequence[str], holder: str, now_us: int) -> set[str]:
        """Which of these tenants another poster holds a live lease on."""
        if not tenant_ids:
            return set()
        held = self._session.exec(
            select(TenantLeaseRow.tenant_id).where(
                col(TenantLeaseRow.tenant_id).in_(list(tenant_ids)),
                col(TenantLeaseRow.holder) != holder,
                col(TenantLeaseRow.expires_us) >= now_us,
            )
        )
        return set(held)

    def release_lease(self, tenant_id: str, holder: str, claims_left: bool = False) -> None:
        """Gives the lease back: expiry 0 says no claim of the holder is left, so the next holder
        need not void any; `claims_left` (a job could not put its work back) writes an expiry
        long past instead, and the next holder voids the claims as after a crash."""
        expires = _CLAIMS_LEFT_EXPIRY if claims_left else 0
        self._session.execute(_RELEASE_LEASE, {"tenant": tenant_id, "giver": holder, "expires": expires})
        self._expire_held(tenant_id)

    def limit_lock_wait(self, ms: int) -> None:
        """For the rest of this transaction, a lock is waited for at most `ms` (PostgreSQL's
        lock_timeout; 0 changes nothing), then the transaction fails with 55P03
        (database.lock_wait_ended). SQLite's one writer is waited for as its busy timeout says."""
        if ms and not self._is_sqlite:
            self._session.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": str(ms)})

    def lease_for_call(self, tenant_id: str, holder: str, now_us: int) -> LeaseForCall | None:
        """Before each Xero call: the lease's call log, if `holder` still holds it at `now_us`, the
        row read as values, locked on PostgreSQL until the transaction ends. None: the lease was
        lost, do not call. The call is then logged in it (`log_call`), so whoever holds the
        tenant next knows this call happened."""
        lease = self._session.execute(
            _LEASE_FOR_CALL if self._is_sqlite else _LEASE_FOR_CALL_LOCKED, {"tenant_id": tenant_id}
        ).first()
        if lease is None or lease.holder != holder or lease.expires_us < now_us:
            return None
        return LeaseForCall(lease.minute_log, lease.day_started_us, lease.day_calls)

    def log_call(
        self, tenant_id: str, lease: LeaseForCall, at_us: int, ttl_us: int, minute_us: int, day_us: int
    ) -> None:
        """Logs a call made at `at_us` in the lease read by `lease_for_call` in this transaction,
        renewing the lease from then: one UPDATE."""
        log = [t for t in json.loads(lease.minute_log) if t > (at_us - minute_us) / 1e6]
        log.append(at_us / 1e6)
        day_started_us, day_calls = lease.day_started_us, lease.day_calls
        if at_us - day_started_us >= day_us:
            day_started_us, day_calls = at_us, 0
        self._session.execute(
            _CALL_RECORDED,
            {
                "key": tenant_id,
                "minute_log": json.dumps(log),
                "day_started_us": day_started_us,
                "day_calls": day_calls + 1,
                "expires_us": at_us + ttl_us,
            },
        )
        self._expire_held(tenant_id)

    def block_tenant(self, tenant_id: str, until_us: int) -> None:
        self._session.execute(
            update(TenantLeaseRow)
            .where(col(TenantLeaseRow.tenant_id) == tenant_id)
            .values(
                blocked_until_us=func.max(TenantLeaseRow.blocked_until_us, until_us)
                if self._is_sqlite
                else func.greatest(TenantLeaseRow.blocked_until_us, until_us)
            )
        )

    def count_app_call(self, now_us: int, window_us: int, moved: Mapping[int, int] | None = None) -> int:
        """Counts one call of the app in the bucket of `now_us` (a sixtieth of the window) and
        returns the app's calls in the window, this one included, from every poster on this
        database; first writes `moved`, earlier calls moved to their answers' buckets
        (add_app_calls). Concurrent counters queue: on PostgreSQL on a transaction-level
        advisory lock (counters in different buckets touch different rows, and under READ
        COMMITTED neither would see the other's uncommitted call: both could pass the ceiling
        together), on SQLite on the write lock. Each then sees the others' committed calls."""
        self.add_app_calls(moved or {})
        self._lock_app_minute()
        self._add_app_calls(now_us, window_us, 1)
        # The oldest bucket counts whole, though part of it has left the window: never fewer.
        since = now_us - window_us - app_bucket_size(window_us)
        total = self._session.execute(_APP_CALLS_SINCE, {"since": since}).scalar()
        return int(total or 0)

    def add_app_calls(self, deltas: Mapping[int, int]) -> None:
        """Adds calls to buckets of the app's shared minute (negative: takes them away), in one
        statement: the moves of calls answered in a later bucket than they were counted in
        (rate_limits.AppCallMoves). Under the app minute's lock, as every write of its buckets:
        two transactions writing buckets in different orders would deadlock."""
        if deltas:
            self._lock_app_minute()
            self._session.execute(
                _ADD_APP_CALLS_SQLITE if self._is_sqlite else _ADD_APP_CALLS_POSTGRES,
                [{"bucket": bucket, "added": calls} for bucket, calls in sorted(deltas.items())],
            )

    def _lock_app_minute(self) -> None:
        """PostgreSQL: the app minute's advisory lock, until the transaction ends (taken again
        in one transaction, it is held already). SQLite: the write transaction holds the file."""
        if not self._is_sqlite:
            self._session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APP_MINUTE_LOCK})

    def _add_app_calls(self, at_us: int, window_us: int, calls: int) -> None:
        self._session.execute(
            _ADD_APP_CALLS_SQLITE if self._is_sqlite else _ADD_APP_CALLS_POSTGRES,
            {"bucket": app_bucket_of(at_us, window_us), "added": calls},
        )

    def purge_app_calls(self, before_us: int) -> None:
        table = AppCallBucketRow.__table__  # type: ignore[attr-defined]
        self._session.execute(delete(table).where(table.c.bucket_us < before_us))


# The statements every Xero call or lease runs, built once as Core statements: building one and
# its cache key each time, through the ORM, cost more than running it.
_LEASES: Any = TenantLeaseRow.__table__  # type: ignore[attr-defined]
_BUCKETS: Any = AppCallBucketRow.__table__  # type: ignore[attr-defined]


def _take_lease(dialect: Any) -> Any:
    """INSERT the lease, or take it over when it is free, expired or already the holder's,
    returning it (nothing when another poster holds it). The holder's own renewal never moves
    the expiry back: one that took its time, then waited for the row while the holder's call
    logged and renewed it from later, would otherwise leave it expired while the call is at Xero,
    for another poster to take."""
    statement = dialect.insert(_LEASES).values(
        tenant_id=bindparam("tenant"),
        holder=bindparam("taker"),
        expires_us=bindparam("until_us"),
        minute_log="[]",
        day_calls=0,
        day_started_us=bindparam("now_us"),
        blocked_until_us=0,
    )
    return statement.on_conflict_do_update(
        index_elements=[_LEASES.c.tenant_id],
        set_={
            "holder": statement.excluded.holder,
            "expires_us": case(
                (
                    _LEASES.c.holder == statement.excluded.holder,
                    (func.max if dialect is sqlite else func.greatest)(
                        _LEASES.c.expires_us, statement.excluded.expires_us
                    ),
                ),
                else_=statement.excluded.expires_us,
            ),
        },
        where=or_(_LEASES.c.expires_us < bindparam("now_us"), _LEASES.c.holder == statement.excluded.holder),
    ).returning(*(_LEASES.c[f.name] for f in fields(HeldLease)))


def _add_calls(dialect: Any) -> Any:
    statement = dialect.insert(_BUCKETS).values(bucket_us=bindparam("bucket"), calls=bindparam("added"))
    return statement.on_conflict_do_update(
        index_elements=[_BUCKETS.c.bucket_us], set_={"calls": _BUCKETS.c.calls + statement.excluded.calls}
    )


_TAKE_LEASE_SQLITE, _TAKE_LEASE_POSTGRES = _take_lease(sqlite), _take_lease(postgresql)
# A lease handed back: expired, and marked so (0) for whoever takes it next (PriorLease), or,
# when its holder's claims may be left, expired long ago (1), as a lease that ran out.
_CLAIMS_LEFT_EXPIRY = 1
_RELEASE_LEASE = (
    update(_LEASES)
    .where(_LEASES.c.tenant_id == bindparam("tenant"), _LEASES.c.holder == bindparam("giver"))
    .values(expires_us=bindparam("expires"))
)
_ADD_APP_CALLS_SQLITE, _ADD_APP_CALLS_POSTGRES = _add_calls(sqlite), _add_calls(postgresql)
_APP_CALLS_SINCE = core_select(func.sum(_BUCKETS.c.calls)).where(_BUCKETS.c.bucket_us > bindparam("since"))
_LEASE_FOR_CALL = core_select(
    _LEASES.c.holder, _LEASES.c.expires_us, _LEASES.c.minute_log, _LEASES.c.day_started_us, _LEASES.c.day_calls
).where(_LEASES.c.tenant_id == bindparam("tenant_id"))
_LEASE_FOR_CALL_LOCKED = _LEASE_FOR_CALL.with_for_update()
_PRIOR_LEASE = core_select(_LEASES.c.holder, _LEASES.c.expires_us).where(_LEASES.c.tenant_id == bindparam("tenant_id"))
_PRIOR_LEASE_LOCKED = _PRIOR_LEASE.with_for_update()
_CALL_RECORDED = (
    update(_LEASES)
    .where(_LEASES.c.tenant_id == bindparam("key"))
    .values(
        minute_log=bindparam("minute_log"),
        day_started_us=bindparam("day_started_us"),
        day_calls=bindparam("day_calls"),
        expires_us=bindparam("expires_us"),
    )
)

# Any fixed number: the key every poster's app-minute counter locks on (migrations use another).
_APP_MINUTE_LOCK = 0x78656C61
