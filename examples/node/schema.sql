-- Bank example: everything the database side needs.  Run once, by a role that
-- may create roles and owns (or is superuser over) the eventstore extension,
-- in a database where CREATE EXTENSION eventstore has been run.
-- The Python and Node examples ship the same file.

-- Two application roles: the tellers append commands' events, the mailer
-- only consumes the outbox (a consumer belongs to the role that uses it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bank_teller') THEN
        CREATE ROLE bank_teller LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bank_mailer') THEN
        CREATE ROLE bank_mailer LOGIN;
    END IF;
END $$;
SELECT eventstore.grant_access('bank_teller', 'writer');
SELECT eventstore.grant_access('bank_mailer', 'consumer');

CREATE SCHEMA bank;
GRANT USAGE ON SCHEMA bank TO bank_teller;

-- The read model: one row per account, maintained inside every append.
CREATE TABLE bank.balances (
    account text   PRIMARY KEY,
    cents   bigint NOT NULL,
    version bigint NOT NULL
);
GRANT SELECT ON bank.balances TO bank_teller;

-- A synchronous projection: it runs in the appending transaction, as its
-- owner (the role running this file), so tellers need no write right on
-- bank.balances and cannot change a balance around it; its search_path is
-- pinned, as for a SECURITY DEFINER function.  Raising vetoes the append: no event, no
-- balance change, no outbox row.  The overdraft rule lives here, so every
-- client in every language gets it.
CREATE FUNCTION bank.project_balance(e eventstore.events) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        delta bigint := CASE e.event_type
                            WHEN 'Deposited' THEN (e.data->>'cents')::bigint
                            WHEN 'Withdrawn' THEN -(e.data->>'cents')::bigint
                            ELSE 0 END;
        balance bigint;
    BEGIN
        INSERT INTO bank.balances AS b (account, cents, version)
        VALUES (e.stream_id, delta, e.stream_version)
        ON CONFLICT (account) DO UPDATE SET cents = b.cents + delta, version = e.stream_version
        RETURNING b.cents INTO balance;
        IF balance < 0 THEN
            RAISE EXCEPTION 'insufficient funds in %', e.stream_id
                USING ERRCODE = 'check_violation',
                      DETAIL = format('The balance would be %s cents.', balance);
        END IF;
    END
    $$;
SELECT eventstore.register_projection('bank_balance', 'bank.project_balance(eventstore.events)',
                                      ARRAY['AccountOpened', 'Deposited', 'Withdrawn']);

-- Every withdrawal goes to the outbox; the relay worker publishes it and
-- NOTIFYs channel bank_withdrawals.
SELECT eventstore.add_route('bank_withdrawals', event_types => ARRAY['Withdrawn'],
                            categories => ARRAY['account']);
