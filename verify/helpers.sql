-- Verify autodoctor:helpers on pg

BEGIN;

DO $$
BEGIN
    ASSERT autodoctor._point(NULL, NULL) IS NULL, '_point(NULL, NULL) must be NULL';
    ASSERT autodoctor._point(48.85, 2.35) IS NOT NULL, '_point must build a point';
    ASSERT autodoctor._within(autodoctor._point(48.85, 2.35), autodoctor._point(48.86, 2.35), 2000),
        '_within must measure on the spheroid';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor._caller()', 'execute'),
        '_caller must not be executable by authenticated';
END
$$;

ROLLBACK;
