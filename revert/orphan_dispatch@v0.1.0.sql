-- Revert autodoctor:orphan_dispatch from pg

BEGIN;

-- By name: the geography type's schema depends on where PostGIS lives.
DROP FUNCTION autodoctor._pick_mechanic;
DROP FUNCTION autodoctor._nearest_mechanics;
DROP FUNCTION autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid);

COMMIT;
