-- eventstore 0.4.0 -> 0.5.0: hardening (issue 10).
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.5.0'" to load this file. \quit

-- == Append, horizon and reads =============================================

-- == Registries and handlers ===============================================

-- == Snapshots and folds ===================================================

-- == Relay, dump and restore ===============================================

-- relay_state keeps one row, made when the extension is created, and is a
-- config table so that pg_dump carries the relay's cursor.  pg_restore runs
-- CREATE EXTENSION (which makes the row) and then COPYs the dumped row in:
-- this trigger merges an inserted row into the existing one, keeping the
-- higher cursor, instead of failing on relay_state_pkey (which aborted a
-- --single-transaction or --exit-on-error restore and left the cursor at 0,
-- so every restored row would have been published again).
CREATE FUNCTION eventstore._relay_state_merge() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        UPDATE eventstore.relay_state s
           SET last_published_id = GREATEST(s.last_published_id, NEW.last_published_id)
         WHERE s.singleton;
        IF FOUND THEN
            RETURN NULL;
        END IF;
        RETURN NEW;
    END
    $$;
REVOKE ALL ON FUNCTION eventstore._relay_state_merge() FROM PUBLIC;
CREATE TRIGGER relay_state_merge BEFORE INSERT ON eventstore.relay_state
    FOR EACH ROW EXECUTE FUNCTION eventstore._relay_state_merge();

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================
