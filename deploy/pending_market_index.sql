-- Deploy autodoctor:pending_market_index to pg
-- requires: session_requests

BEGIN;

-- The pending requests by market: the index of the request policy's open-request arm
-- (change request_policy_estimates), whose index condition is the caller's market as a
-- mechanic. A caller who is not an active mechanic has no market, so that condition
-- matches nothing and reads no page of the queue; a mechanic reads the queue of their
-- market only.
--
-- The predicate is written coalesce(status = 'pending', false), not status = 'pending',
-- because it must be the very expression the policy tests (that is how the planner proves
-- the index usable for it), and the policy writes it so on purpose: the planner has no
-- statistics for that expression and estimates it at one half, where it would count the
-- pending fraction a second time under a view that already selects pending requests
-- (request_policy_estimates says why that matters). For every row it is status = 'pending'
-- (status is NOT NULL).
--
-- Built in the change's transaction (CREATE INDEX CONCURRENTLY cannot run in one): it
-- takes a SHARE lock on session_requests until COMMIT, so reads go on and writes (create,
-- accept, cancel, expire) wait while the heap is scanned once. The index holds the pending
-- rows only, so the build is that scan and a small sort: 0.15 to 0.4 s at 1,000,000
-- requests (152 MB of heap in memory, 50,000 pending), plus the time to read the heap where
-- it is not cached. The policy that uses it is changed in the next change, in a
-- transaction of its own, so no reader waits behind this build.
CREATE INDEX session_requests_pending_market_idx
    ON autodoctor.session_requests (market)
    WHERE coalesce(status = 'pending', false);

COMMENT ON INDEX autodoctor.session_requests_pending_market_idx IS
    'Pending requests by market, for the open-request arm of the policy '
    'session_requests_select_authenticated (same predicate expression).';

COMMIT;
