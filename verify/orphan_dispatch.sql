-- Verify autodoctor:orphan_dispatch on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regprocedure('autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid)') IS NOT NULL,
        '_assign_orphan must exist';
END
$$;

ROLLBACK;
