-- Deploy autodoctor:pending_customer_index to pg
-- requires: session_requests

BEGIN;

-- The pending requests by customer. create_session_request and submit_intake count the
-- caller's pending, unexpired requests to hold them to settings.max_pending_requests
-- (change pending_request_cap). Without this index the count walks the customer's whole
-- history through session_requests_customer_id_idx and reads every row of it from the
-- heap, so a create costs more the more requests its customer ever made (about 0.37 ms of
-- the 1.08 ms a create took in the benchmark, at 20 requests per customer). Here it reads
-- the customer's pending entries only: at most max_pending_requests of them, plus those
-- past their expiry that expire_stale_requests() has not swept yet.
--
-- Only pending rows are in it: an accept, a cancel or an expiry adds no entry here (their
-- new row versions are not pending); a create adds one. Built in the change's transaction,
-- as pending_market_index is: a SHARE lock on session_requests until COMMIT while the heap
-- is scanned once (writers wait; readers go on); the index holds the pending rows only.
CREATE INDEX session_requests_pending_customer_idx
    ON autodoctor.session_requests (customer_id)
    WHERE status = 'pending';

COMMENT ON INDEX autodoctor.session_requests_pending_customer_idx IS
    'Pending requests by customer, for the pending-request cap of create_session_request '
    'and submit_intake.';

COMMIT;
