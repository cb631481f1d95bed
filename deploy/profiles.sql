-- Deploy autodoctor:profiles to pg
-- requires: appschema
-- requires: auth_shim

BEGIN;

CREATE TABLE autodoctor.profiles (
    id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    full_name text CHECK (char_length(full_name) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE autodoctor.profiles IS
    'One per auth user, created by a trigger on auth.users. Never carries a role: '
    'a user becomes a mechanic only through register_mechanic.';

ALTER TABLE autodoctor.profiles ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.profiles TO authenticated, service_role;

CREATE POLICY profiles_select_authenticated ON autodoctor.profiles
    FOR SELECT TO authenticated
    USING (id = (SELECT auth.uid()));
COMMENT ON POLICY profiles_select_authenticated ON autodoctor.profiles IS
    'A user reads their own profile.';

CREATE POLICY profiles_select_service ON autodoctor.profiles
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY profiles_select_service ON autodoctor.profiles IS
    'The service role reads every profile.';

-- _handle_new_user: creates the profile of a new auth user.
-- Reads only full_name from raw_user_meta_data (users write that field themselves, so
-- nothing that grants a role or privilege is ever taken from it).
CREATE OR REPLACE FUNCTION autodoctor._handle_new_user()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    INSERT INTO autodoctor.profiles (id, full_name)
    VALUES (
        NEW.id,
        left(nullif(btrim(NEW.raw_user_meta_data ->> 'full_name'), ''), 200)
    )
    ON CONFLICT (id) DO NOTHING;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION autodoctor._handle_new_user() IS
    'Private trigger: creates the autodoctor.profiles row of each new auth.users row.';
REVOKE ALL ON FUNCTION autodoctor._handle_new_user() FROM PUBLIC;

CREATE TRIGGER autodoctor_on_auth_user_created
    AFTER INSERT ON auth.users
    FOR EACH ROW EXECUTE FUNCTION autodoctor._handle_new_user();

-- Users that existed before deploy get their profile too.
INSERT INTO autodoctor.profiles (id, full_name)
SELECT u.id, left(nullif(btrim(u.raw_user_meta_data ->> 'full_name'), ''), 200)
  FROM auth.users u
ON CONFLICT (id) DO NOTHING;

COMMIT;
