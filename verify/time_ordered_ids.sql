-- Verify autodoctor:time_ordered_ids on pg

BEGIN;

DO $$
DECLARE
    v_id uuid := autodoctor._uuid_v7();
BEGIN
    ASSERT substr(v_id::text, 15, 1) = '7', 'a _uuid_v7() id must be of version 7';
    ASSERT substr(v_id::text, 20, 1) IN ('8', '9', 'a', 'b'), 'and of the RFC variant';
    ASSERT (SELECT pg_get_expr(d.adbin, d.adrelid)
              FROM pg_attrdef d
              JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
             WHERE d.adrelid = 'autodoctor.sessions'::regclass AND a.attname = 'id')
           = 'autodoctor._uuid_v7()',
        'sessions.id must default to a time-ordered id';
END
$$;

ROLLBACK;
