-- Verify autodoctor:extensions on pg

BEGIN;

SELECT extensions.st_makepoint(0, 0)::extensions.geography;

DO $$
BEGIN
    ASSERT has_schema_privilege('authenticated', 'extensions', 'usage'),
        'authenticated must have USAGE on schema extensions';
END
$$;

ROLLBACK;
