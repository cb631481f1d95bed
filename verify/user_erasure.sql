-- Verify autodoctor:user_erasure on pg

BEGIN;

DO $$
BEGIN
    ASSERT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                    WHERE tgrelid = 'auth.users'::regclass
                      AND tgname = 'autodoctor_on_auth_user_deleted'),
        'auth.users must have the erasure trigger';
    ASSERT (SELECT confdeltype FROM pg_catalog.pg_constraint
             WHERE conrelid = 'autodoctor.sessions'::regclass
               AND conname = 'sessions_mechanic_id_fkey') = 'n',
        'sessions.mechanic_id must be SET NULL on delete';
    ASSERT (SELECT prosecdef FROM pg_catalog.pg_proc
             WHERE oid = 'autodoctor._track_mechanic_load()'::regprocedure),
        '_track_mechanic_load must not depend on the privileges of whoever fires it';
END
$$;

ROLLBACK;
