-- Deploy autodoctor:appschema to pg
-- requires: auth_shim

BEGIN;

CREATE SCHEMA autodoctor;

COMMENT ON SCHEMA autodoctor IS
    'autodoctor-db: the session-request lifecycle of an on-demand mechanic marketplace.';

-- anon gets nothing; authenticated and service_role reach the schema. Every function
-- revokes EXECUTE from PUBLIC where it is created (per-schema default privileges cannot
-- take back the global PUBLIC grant) and is granted to the one role that needs it.
GRANT USAGE ON SCHEMA autodoctor TO authenticated, service_role;

-- _guard_data_loss: called by the revert script of every change that drops a table holding
-- data. Refuses (55000, data_loss) when any of the tables has a row, naming each with its
-- row count, unless the reverting session consents with autodoctor.allow_data_loss = on:
--     PGOPTIONS='-c autodoctor.allow_data_loss=on' sqitch revert
-- The refusal rolls back that change's revert; changes reverted before it (functions,
-- views) come back with `sqitch deploy`.
CREATE OR REPLACE FUNCTION autodoctor._guard_data_loss(
    VARIADIC tables regclass[]
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
    v_table regclass;
    v_rows bigint;
    v_held text[] := ARRAY[]::text[];
BEGIN
    FOREACH v_table IN ARRAY tables LOOP
        -- Counted up to a million: enough to say what is at stake, quickly.
        EXECUTE format('SELECT count(*) FROM (SELECT FROM %s LIMIT 1000001) AS t', v_table) INTO v_rows;
        IF v_rows > 0 THEN
            v_held := v_held || format('%s (%s%s)', v_table,
                                       CASE WHEN v_rows > 1000000 THEN 'over 1000000' ELSE v_rows::text END,
                                       CASE WHEN v_rows = 1 THEN ' row' ELSE ' rows' END);
        END IF;
    END LOOP;
    IF cardinality(v_held) = 0 THEN
        RETURN;
    END IF;
    IF lower(coalesce(current_setting('autodoctor.allow_data_loss', true), '')) IN ('on', 'true', 'yes', '1') THEN
        RAISE WARNING 'autodoctor.allow_data_loss is on: dropping %', array_to_string(v_held, ', ');
        RETURN;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '55000',
        MESSAGE = format('revert refused: it would drop %s', array_to_string(v_held, ', ')),
        DETAIL = 'data_loss',
        HINT = 'Nothing of this change was reverted and the data is intact; `sqitch deploy` restores '
            || 'what was reverted before it. To drop the data anyway, consent explicitly: '
            || 'PGOPTIONS=''-c autodoctor.allow_data_loss=on'' sqitch revert';
END
$$;

COMMENT ON FUNCTION autodoctor._guard_data_loss(regclass[]) IS
    'Private: refuses a revert that would drop rows (55000 data_loss) unless autodoctor.allow_data_loss is on.';
REVOKE ALL ON FUNCTION autodoctor._guard_data_loss(regclass[]) FROM PUBLIC;

COMMIT;
