-- Verify autodoctor:appschema on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_schema_privilege('authenticated', 'autodoctor', 'usage'),
        'authenticated must have USAGE on schema autodoctor';
    ASSERT NOT has_schema_privilege('anon', 'autodoctor', 'usage'),
        'anon must not have USAGE on schema autodoctor';
END
$$;

ROLLBACK;
