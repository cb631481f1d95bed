-- Deploy autodoctor:mechanic_load to pg
-- requires: mechanics
-- requires: sessions

BEGIN;

-- A mechanic's load: how many of their sessions are scheduled, waiting or live. Kept by
-- a trigger on sessions for every write path (functions, old code writing the table),
-- so the capacity check and least-loaded dispatch read one number instead of counting.
ALTER TABLE autodoctor.mechanics
    ADD COLUMN active_sessions integer NOT NULL DEFAULT 0 CHECK (active_sessions >= 0);

COMMENT ON COLUMN autodoctor.mechanics.active_sessions IS
    'Sessions of this mechanic in scheduled, waiting or live (kept by a trigger on sessions).';

-- Deliberately not indexed: the counter changes with every accept, and leaving it out of
-- every index keeps those updates HOT (no index writes). Least-loaded dispatch reads the
-- few available mechanics through mechanics_available_idx and sorts them.

UPDATE autodoctor.mechanics m
   SET active_sessions = (SELECT count(*) FROM autodoctor.sessions s
                           WHERE s.mechanic_id = m.user_id
                             AND s.status IN ('scheduled', 'waiting', 'live'));

-- _track_mechanic_load: keeps mechanics.active_sessions and enforces capacity.
-- The increment is one UPDATE of the mechanic's row: its row lock serialises concurrent
-- assignments to one mechanic, so max_concurrent_sessions holds under any concurrency
-- (PT409 capacity_reached when one more session would exceed it).
CREATE OR REPLACE FUNCTION autodoctor._track_mechanic_load()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    v_old_counts boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.mechanic_id IS NOT NULL
                            AND OLD.status IN ('scheduled', 'waiting', 'live');
    v_new_counts boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.mechanic_id IS NOT NULL
                            AND NEW.status IN ('scheduled', 'waiting', 'live');
    v_load integer;
    v_max integer;
BEGIN
    IF v_old_counts AND v_new_counts AND OLD.mechanic_id = NEW.mechanic_id THEN
        RETURN NULL;
    END IF;
    IF v_old_counts THEN
        UPDATE autodoctor.mechanics m
           SET active_sessions = greatest(m.active_sessions - 1, 0)
         WHERE m.user_id = OLD.mechanic_id;
    END IF;
    IF v_new_counts THEN
        UPDATE autodoctor.mechanics m
           SET active_sessions = m.active_sessions + 1
         WHERE m.user_id = NEW.mechanic_id
        RETURNING m.active_sessions, m.max_concurrent_sessions INTO v_load, v_max;
        IF v_load > v_max THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'mechanic is at capacity',
                DETAIL = 'capacity_reached',
                HINT = format('Complete or cancel a session first (limit %s concurrent).', v_max);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION autodoctor._track_mechanic_load() IS
    'Private trigger: keeps mechanics.active_sessions; PT409 capacity_reached beyond the limit.';
REVOKE ALL ON FUNCTION autodoctor._track_mechanic_load() FROM PUBLIC;

CREATE TRIGGER sessions_track_mechanic_load
    AFTER INSERT OR DELETE OR UPDATE OF status, mechanic_id ON autodoctor.sessions
    FOR EACH ROW EXECUTE FUNCTION autodoctor._track_mechanic_load();

COMMIT;
