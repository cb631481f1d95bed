-- Deploy autodoctor:drop_dispatch_helpers to pg
-- requires: orphan_dispatch
-- requires: auto_assign_orphaned_sessions

BEGIN;

-- One orphan at a time, auto_assign_orphaned_sessions (v0.1.0) picked each orphan's
-- mechanic with _pick_mechanic, which walked _nearest_mechanics. The set-based rework
-- matches a batch with _nearest_available_mechanics instead, and claim_orphaned_session
-- names its mechanic: nothing calls these two any more. Revert brings them back as
-- v0.1.0 created them.
DROP FUNCTION autodoctor._pick_mechanic;
DROP FUNCTION autodoctor._nearest_mechanics;

COMMIT;
