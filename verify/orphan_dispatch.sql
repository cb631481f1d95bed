-- Verify autodoctor:orphan_dispatch on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regprocedure('autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid)') IS NOT NULL,
        '_assign_orphan must exist';
    ASSERT to_regprocedure('autodoctor._pick_mechanic(autodoctor.session_type, extensions.geography, uuid, text)') IS NOT NULL,
        '_pick_mechanic must exist';
END
$$;

ROLLBACK;
