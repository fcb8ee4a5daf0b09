"""The Accounting API resources under /api.xro/2.0/ (routing.handle serves them). Authentication,
limits, idempotency and faults are applied before this by the gateway."""
