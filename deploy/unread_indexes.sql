-- Deploy autodoctor:unread_indexes to pg
-- requires: session_requests
-- requires: sessions

BEGIN;

-- Every index is written by every insert and by every update that is not HOT, and the
-- accept's update of its request is not HOT (status, mechanic_id and session_id change).
-- These two were written on the hot paths and read by no statement:
--
-- * session_requests (session_id) WHERE session_id IS NOT NULL: every lookup of a request
--   by its session asks for the pending one and goes through
--   session_requests_one_pending_per_session_idx; this one would only serve the deferred
--   foreign key's check when a session is deleted, which nothing does (sessions are
--   history; an erased user's sessions lose the user's identity, not the row). Every
--   accept wrote an entry.
-- * The payment key UNIQUE (stripe_session_id, market) indexed every session, paid or not,
--   all the unpaid ones under one (NULL, market) key. It becomes a unique index of the
--   paid sessions only: the same rule (two unpaid sessions never conflicted, NULLs being
--   distinct) without an entry for each session an accept creates.
--
-- (session_requests (plan_code) stays, although it too serves only a foreign key's check,
-- when a plan is deleted: Supabase's database linter flags a foreign key without an index,
-- and its entries cost little, the plans being few: equal keys share a posting list.)
--
-- DROP INDEX takes an ACCESS EXCLUSIVE lock on its table for a moment; the new unique
-- index is built in this transaction (a SHARE lock on sessions while it reads the paid
-- sessions), as pending_customer_index was.
DROP INDEX autodoctor.session_requests_session_id_idx;

ALTER TABLE autodoctor.sessions DROP CONSTRAINT sessions_stripe_session_id_key;
CREATE UNIQUE INDEX sessions_stripe_session_id_key
    ON autodoctor.sessions (stripe_session_id, market)
    WHERE stripe_session_id IS NOT NULL;

COMMENT ON INDEX autodoctor.sessions_stripe_session_id_key IS
    'A payment pays for one session: unique over the paid sessions, ending with market as '
    'Citus requires.';

COMMIT;
