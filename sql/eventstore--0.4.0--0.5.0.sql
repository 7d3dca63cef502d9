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

-- relay_status gains waiting_since: when the database began waiting for a
-- background worker slot (NULL while it has a worker or needs none).  The
-- view is made again with the privileges it had (grant_access gives admins
-- SELECT on it).  Grants run by this script would count as the extension's
-- own initial privileges, which pg_dump leaves out: the view's entry in
-- pg_init_privs is put back as it was, so they are dumped as before.
DO $$
DECLARE
    init aclitem[] := (SELECT i.initprivs FROM pg_catalog.pg_init_privs i
                        WHERE i.objoid OPERATOR(pg_catalog.=) 'eventstore.relay_status'::regclass
                          AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
                          AND i.objsubid OPERATOR(pg_catalog.=) 0);
    grants text[] := ARRAY(
        SELECT pg_catalog.format('GRANT %s ON eventstore.relay_status TO %s%s', a.privilege_type,
                                 CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                                 CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
         WHERE c.oid OPERATOR(pg_catalog.=) 'eventstore.relay_status'::regclass
           AND a.grantee OPERATOR(pg_catalog.<>) c.relowner);
    g text;
BEGIN
    DROP VIEW eventstore.relay_status;
    DROP FUNCTION eventstore.relay_status();
    CREATE FUNCTION eventstore.relay_status(
            OUT database text, OUT pid integer, OUT state text, OUT published_total bigint,
            OUT pending bigint, OUT oldest_pending_age interval,
            OUT last_error text, OUT last_error_at timestamptz, OUT waiting_since timestamptz)
        RETURNS SETOF record
        LANGUAGE c VOLATILE
        AS 'MODULE_PATHNAME', 'eventstore_relay_status';
    CREATE VIEW eventstore.relay_status AS SELECT * FROM eventstore.relay_status();
    FOREACH g IN ARRAY grants LOOP
        EXECUTE g;
    END LOOP;
    DELETE FROM pg_catalog.pg_init_privs i
     WHERE i.objoid OPERATOR(pg_catalog.=) 'eventstore.relay_status'::regclass
       AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass;
    IF init IS NOT NULL THEN
        INSERT INTO pg_catalog.pg_init_privs (objoid, classoid, objsubid, privtype, initprivs)
        VALUES ('eventstore.relay_status'::regclass, 'pg_catalog.pg_class'::regclass, 0, 'e', init);
    END IF;
END
$$;

-- == Consumers, routes and enqueue =========================================

-- == Immutability ==========================================================
