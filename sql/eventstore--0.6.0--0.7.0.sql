-- eventstore 0.6.0 -> 0.7.0
\echo Use "ALTER EXTENSION eventstore UPDATE TO '0.7.0'" to load this file. \quit

-- == Subscriptions ==========================================================

-- Wake-ups (subscription.c, relay.c): a consumer LISTENs on its
-- subscription's channel; the relay worker NOTIFYs it when events of the
-- subscription pass the read horizon.  Appends cache the subscriptions
-- (a registry, like routes) to know when to ask for the worker.
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore._registry_changed();

-- The NOTIFY channel of a subscription: eventstore_sub_<name>, or for a name
-- longer than 48 bytes eventstore_sub_<md5 of the name> (a channel has at
-- most 63 bytes).
CREATE FUNCTION eventstore.subscription_channel(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT 'eventstore_sub_' OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 48 THEN name
                    ELSE pg_catalog.md5(name) END
    $$;
COMMENT ON FUNCTION eventstore.subscription_channel(text) IS
    'The channel the relay NOTIFYs when events of the subscription pass the read horizon.';

-- Called by the relay pass (relay.c) when the log horizon it publishes moves
-- from after to upto: NOTIFY the channel of every subscription with an event
-- in (after, upto], payload upto (the horizon: poll sees every event up to
-- it).  A jump of more than 10,000 positions (the first pass, a restore:
-- log_horizon starts at 0) wakes every subscription without looking.
CREATE FUNCTION eventstore._subscription_wake(after bigint, upto bigint) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        s record;
        hit boolean;
        woken integer := 0;
    BEGIN
        FOR s IN SELECT x.name, x.categories, x.event_types, x.store FROM eventstore.subscriptions x
                  ORDER BY x.name COLLATE "C" LOOP
            IF upto OPERATOR(pg_catalog.-) after OPERATOR(pg_catalog.>) 10000 THEN
                hit := true;
            ELSIF s.store OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass THEN
                -- the default store: a static query, planned once per session
                hit := EXISTS (SELECT FROM eventstore.events e
                                WHERE e.global_position OPERATOR(pg_catalog.>) after
                                  AND e.global_position OPERATOR(pg_catalog.<=) upto
                                  AND (s.categories IS NULL
                                       OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY (s.categories))
                                  AND (s.event_types IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY (s.event_types)));
            ELSE
                EXECUTE pg_catalog.format($q$
                    SELECT EXISTS (SELECT FROM %s e
                                    WHERE e.global_position OPERATOR(pg_catalog.>) $1
                                      AND e.global_position OPERATOR(pg_catalog.<=) $2
                                      AND ($3 IS NULL
                                           OR pg_catalog.split_part(e.stream_id, '-', 1) OPERATOR(pg_catalog.=) ANY ($3))
                                      AND ($4 IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY ($4)))
                    $q$, s.store)
                   INTO hit USING after, upto, s.categories, s.event_types;
            END IF;
            IF hit THEN
                PERFORM pg_catalog.pg_notify(eventstore.subscription_channel(s.name), upto::text);
                woken := woken OPERATOR(pg_catalog.+) 1;
            END IF;
        END LOOP;
        RETURN woken;
    END
    $$;
REVOKE ALL ON FUNCTION eventstore._subscription_wake(bigint, bigint) FROM PUBLIC;

-- == Lifecycle ==============================================================

-- == Consistency across streams (DCB) =======================================

-- == Append path ============================================================
