"""Taking and renewing a tenant's lease, and voiding the claims its last holder may have left:
shared by the supervisor, which takes leases, and the tenant workers, which renew them."""

from __future__ import annotations

from xerolink_poster.domain.stored_rows import HeldLease
from xerolink_poster.service_layer.unit_of_work import UnitOfWork


def take_lease(uow: UnitOfWork, tenant: str, holder: str, now: int, ttl_us: int) -> HeldLease | None:
    """The tenant's lease, taken; None when another poster holds it. No worker of this process
    runs the tenant (a closing one is still alive, and is never replaced), and no other poster
    may. Claims left on its entries by a holder that did not hand it back belong to a dead or
    deposed claimer, and are voided. A lease handed back left none in flight, and voiding reads
    every ready entry of the tenant: at every turn, in a deep backlog, that grew with the queue."""
    prior = uow.leases.prior_lease(tenant)
    lease = uow.leases.acquire_lease(tenant, holder, now, ttl_us)
    if lease is None:
        return None
    if prior is None or not prior.handed_back:
        uow.outbox.release_claims(tenant)
    return lease


def renew_lease(uow: UnitOfWork, tenant: str, holder: str, now: int, ttl_us: int) -> HeldLease | None:
    """A worker's lease, renewed; None when another poster holds it now. When another poster held
    it since the worker last renewed it (it took the tenant over while this one was paused, then
    died or gave it back), the renewal takes it over as `take_lease` would, and voids the claims
    that poster left: the worker's own were voided when the other took over."""
    prior = uow.leases.prior_lease(tenant)
    lease = uow.leases.acquire_lease(tenant, holder, now, ttl_us)
    if lease is None:
        return None
    if prior is not None and prior.holder != holder and not prior.handed_back:
        uow.outbox.release_claims(tenant)
    return lease
