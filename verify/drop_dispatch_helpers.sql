-- Verify autodoctor:drop_dispatch_helpers on pg

BEGIN;

DO $$
BEGIN
    ASSERT NOT EXISTS (SELECT 1 FROM pg_proc
                        WHERE pronamespace = 'autodoctor'::regnamespace
                          AND proname IN ('_pick_mechanic', '_nearest_mechanics')),
        '_pick_mechanic and _nearest_mechanics must be gone';
END
$$;

ROLLBACK;
