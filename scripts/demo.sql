-- The eventstore demo: append, a conflict, reads.
CREATE EXTENSION eventstore;

-- Open an account: expected version 0 means "this stream must not exist yet".
SELECT * FROM eventstore.append('account-42', 0, ARRAY[
    eventstore.event('AccountOpened', '{"owner": "Ada"}'),
    eventstore.event('Deposited', '{"amount": 100}')]);

-- Another writer that read the stream at version 1 loses the race:
-- SQLSTATE ES409, nothing written.
\set VERBOSITY verbose
SELECT * FROM eventstore.append_event('account-42', 1, 'Withdrawn', '{"amount": 30}');

\set VERBOSITY default
-- With the right expected version it goes through.
SELECT * FROM eventstore.append_event('account-42', 2, 'Withdrawn', '{"amount": 30}');
SELECT * FROM eventstore.append_event('account-7', NULL, 'AccountOpened', '{"owner": "Grace"}');

-- Reads: one stream, its current version, the category, the global log.
SELECT stream_version, event_type, data FROM eventstore.read_stream('account-42');
SELECT eventstore.stream_version('account-42') AS version;
SELECT global_position, stream_id, event_type FROM eventstore.read_category('account');
SELECT global_position, stream_id, stream_version, event_type FROM eventstore.read_all(0, 10);

-- A synchronous projection: the balance read model is updated in the
-- appending transaction, and vetoes a withdrawal that would overdraw.
CREATE TABLE account_balance (account text PRIMARY KEY, balance numeric NOT NULL);
CREATE FUNCTION project_balance(e eventstore.events) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    delta numeric := CASE e.event_type WHEN 'Deposited' THEN (e.data->>'amount')::numeric
                                       WHEN 'Withdrawn' THEN -(e.data->>'amount')::numeric END;
    new_balance numeric;
BEGIN
    INSERT INTO account_balance AS b VALUES (e.stream_id, delta)
    ON CONFLICT (account) DO UPDATE SET balance = b.balance + delta
    RETURNING balance INTO new_balance;
    IF new_balance < 0 THEN
        RAISE EXCEPTION 'insufficient funds in %', e.stream_id USING ERRCODE = 'check_violation';
    END IF;
END $$;
CREATE FUNCTION reset_balance() RETURNS void LANGUAGE sql AS $$ TRUNCATE account_balance $$;
SELECT eventstore.register_projection('balance', 'project_balance(eventstore.events)',
                                      ARRAY['Deposited', 'Withdrawn'], 'reset_balance()');
SELECT eventstore.rebuild_projection('balance') AS replayed;
SELECT * FROM account_balance;
SELECT * FROM eventstore.append_event('account-42', 3, 'Withdrawn', '{"amount": 500}');
SELECT eventstore.stream_version('account-42') AS still_version_3, balance
  FROM account_balance WHERE account = 'account-42';

-- The outbox: a route, an append, and the relay's NOTIFY (the background
-- worker publishes within milliseconds; relay_once is the same code path).
SELECT eventstore.add_route('accounts', categories => ARRAY['account']);
LISTEN accounts;
SELECT * FROM eventstore.append_event('account-42', 3, 'Deposited', '{"amount": 20}');
SELECT pg_sleep(0.5);
SELECT id, channel, global_position, published_at IS NOT NULL AS published FROM eventstore.outbox;

-- Events are immutable.
DELETE FROM eventstore.events;

-- Another store (a table of type eventstore.event_store): the same stream
-- id is a stream of its own there, with its own versions.
CREATE SCHEMA billing;
SELECT eventstore.create_store('billing.events');
SELECT * FROM eventstore.append_event('account-42', 0, 'Invoiced', '{"amount": 5}', store => 'billing.events');
SELECT eventstore.stream_version('account-42') AS default_store_version,
       eventstore.stream_version('account-42', 'billing.events') AS billing_store_version;

-- What an operator sees: counters since the server started, and the read horizon.
SELECT database, store, appends, events, conflicts, vetoes FROM eventstore.stats ORDER BY store;
SELECT counter, newest, horizon, in_flight FROM eventstore.horizon_status;
