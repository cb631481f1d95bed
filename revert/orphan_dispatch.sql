-- Revert autodoctor:orphan_dispatch from pg

BEGIN;

DROP FUNCTION autodoctor._pick_mechanic(autodoctor.session_type, extensions.geography, uuid, text);
DROP FUNCTION autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid);

COMMIT;
