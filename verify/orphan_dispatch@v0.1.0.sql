-- Verify autodoctor:orphan_dispatch on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regprocedure('autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid)') IS NOT NULL,
        '_assign_orphan must exist';
    ASSERT to_regproc('autodoctor._pick_mechanic') IS NOT NULL, '_pick_mechanic must exist';
    ASSERT to_regproc('autodoctor._nearest_mechanics') IS NOT NULL, '_nearest_mechanics must exist';
END
$$;

ROLLBACK;
