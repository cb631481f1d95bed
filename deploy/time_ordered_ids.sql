-- Deploy autodoctor:time_ordered_ids to pg
-- requires: session_requests
-- requires: sessions
-- requires: intakes

BEGIN;

-- _uuid_v7: a UUID of version 7 (RFC 9562): the first 48 bits are the Unix time in
-- milliseconds, then the version, 74 random bits and the variant. PostgreSQL 15 has no
-- uuidv7() (it came in 18), and the pg_uuidv7 extension is not packaged for it here; this
-- is the usual SQL form: a random version-4 uuid with its first six bytes overwritten by
-- the clock and its version nibble turned from 4 into 7 (bits 52 and 53).
--
-- Why: a random (version-4) key lands on a random leaf of its B-tree. After every
-- checkpoint the first change to each leaf writes a full-page image of it (8 kB) to the
-- WAL, so at a million rows nearly every insert paid one for its primary key alone.
-- Time-ordered keys all land on the rightmost leaf, which the previous insert already
-- touched. Ids stay unguessable (74 random bits); they reveal their creation time to
-- the millisecond, which the rows' own created_at column already tells whoever can read them.
-- Existing rows keep their ids: a uuid is a uuid, and nothing orders by id.
--
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined (it sets search_path) is parsed
-- and planned again by every statement that calls it, which cost 25 us per INSERT using the
-- default, against 4 us here (the expression's plan is cached for the session).
CREATE FUNCTION autodoctor._uuid_v7()
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
PARALLEL SAFE
SET search_path = ''
AS $$
BEGIN
    RETURN encode(
        set_bit(
            set_bit(
                overlay(uuid_send(gen_random_uuid())
                        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                         * 1000)::bigint) FROM 3)
                        FROM 1 FOR 6),
                52, 1),
            53, 1),
        'hex')::uuid;
END
$$;

COMMENT ON FUNCTION autodoctor._uuid_v7() IS
    'A time-ordered UUID (version 7: Unix milliseconds, then 74 random bits), the default '
    'id of new requests, sessions and intakes.';
REVOKE ALL ON FUNCTION autodoctor._uuid_v7() FROM PUBLIC;

-- Only the default changes: a catalog update, no table rewrite, no row touched.
ALTER TABLE autodoctor.session_requests ALTER COLUMN id SET DEFAULT autodoctor._uuid_v7();
ALTER TABLE autodoctor.sessions ALTER COLUMN id SET DEFAULT autodoctor._uuid_v7();
ALTER TABLE autodoctor.intakes ALTER COLUMN id SET DEFAULT autodoctor._uuid_v7();

COMMIT;
