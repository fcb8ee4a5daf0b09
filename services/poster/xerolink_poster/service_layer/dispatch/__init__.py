"""The dispatcher: per Xero tenant, one worker in one process at a time (a lease row in the
database), claiming outbox entries, batching elements of one endpoint into one call, and keeping
under Xero's limits before Xero has to refuse.

Exactly once: before a create call the entries are marked uncertain in the database; the answer
clears the mark. An entry found marked (a timeout, a dropped connection, a crash between call
and commit, an answer that cannot be matched to what was sent) is looked up in Xero by the tag
naming its Actionstep record, in a field Xero keeps for the type, before anything is re-created;
an object another link holds is never adopted. Only an element Xero explicitly refused fails.
Quick retries of the same call carry the same Idempotency-Key, named by the records, versions and
operations the call carries, so Xero replays them and never mistakes one record for another.

One job per module: `supervisor` (the dispatcher, its tenant leases and sweeps), `tenant_loop`
(a tenant's worker: claims and jobs), `gate` (the one place Xero's limits are enforced and calls
are made), `preparing`, `lookups`, `contacts`, `creating`, `results` (what a job writes back),
`answers` (the one classification of Xero's answers), with `work`, `settings`, `shared` and
`state_changes` holding what they pass between them."""
