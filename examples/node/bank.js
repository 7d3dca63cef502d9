#!/usr/bin/env node
// Bank accounts on eventstore, with node-postgres (pg).
//
// Run against a fresh database that has the extension:
//   createdb bank && psql -d bank -c 'CREATE EXTENSION eventstore'
//   npm ci && PGDATABASE=bank node bank.js
// Connection settings come from the PG* environment variables (or
// DATABASE_URL); the setup runs as that user, the tellers and the mailer
// connect as the roles schema.sql creates.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

const CHANNEL = 'bank_withdrawals';
const LARGE = 100000; // cents: withdrawals from 1000.00 up are e-mailed
// Event ids are derived from the command id: a command sent twice produces
// the same ids, and the store recognises the second append as a retry.
const IDS = '6f1c3a52-36a4-4a1b-9d0e-2b8f3c4d5e6f';

const say = (line) => console.log(line);
const money = (cents) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;

// A name-based (version 5) UUID, as Python's uuid.uuid5(IDS, name).
function uuid5(name) {
  const h = crypto.createHash('sha1')
    .update(Buffer.from(IDS.replace(/-/g, ''), 'hex')).update(name).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

async function connect(user) {
  let config = {}; // pg reads PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD
  if (process.env.DATABASE_URL) {
    const url = new URL(process.env.DATABASE_URL);
    if (user) url.username = user;
    config = { connectionString: url.toString() };
  } else if (user) {
    config = { user };
  }
  const client = new Client(config);
  await client.connect();
  return client;
}

// -- the domain: state folded from a stream, and decisions -----------------

function evolve(state, type, data) {
  switch (type) {
    case 'AccountOpened': return { ...state, opened: true, owner: data.owner };
    case 'Deposited': return { ...state, cents: state.cents + data.cents };
    case 'Withdrawn': return { ...state, cents: state.cents - data.cents };
    default: return state;
  }
}

// Read a stream and fold it: the state and the version it reflects.
async function load(db, stream) {
  const { rows } = await db.query(
    'SELECT stream_version, event_type, data FROM eventstore.read_stream($1)', [stream]);
  let state = { opened: false, owner: '', cents: 0, version: 0 };
  for (const r of rows) { // data: jsonb arrives parsed; bigint arrives as a string
    state = { ...evolve(state, r.event_type, r.data), version: Number(r.stream_version) };
  }
  return state;
}

class Rejected extends Error {}

function decide(state, command) {
  if (command.kind === 'open') {
    if (state.opened) throw new Rejected('account already open');
    return [['AccountOpened', { owner: command.owner }]];
  }
  if (!state.opened) throw new Rejected('no such account');
  if (command.cents <= 0) throw new Rejected('amount must be positive');
  // No balance check here: the database's projection vetoes overdrafts.
  return [[command.kind === 'deposit' ? 'Deposited' : 'Withdrawn', { cents: command.cents }]];
}

const APPEND = `
SELECT stream_version, global_position
  FROM eventstore.append($1, $2, ARRAY(
       SELECT eventstore.event(t, d, NULL, i)
         FROM unnest($3::text[], $4::jsonb[], $5::uuid[]) WITH ORDINALITY AS e(t, d, i, n)
        ORDER BY n))`;

// events: [eventId, type, data] triples; returns the new stream version.
async function append(db, stream, expected, events) {
  const { rows } = await db.query({
    name: 'bank-append', // a named prepared statement: parsed once per connection
    text: APPEND,
    values: [stream, expected, events.map((e) => e[1]), events.map((e) => e[2]), events.map((e) => e[0])],
  });
  return Number(rows[0].stream_version);
}

// Decide-append loop: read, decide, append at the version read; on ES409
// another writer got there first, so read again and decide again.
async function handle(db, command, afterRead) {
  const { id: name, account: stream } = command;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const state = await load(db, stream);
    if (afterRead && attempt === 1) await afterRead(state);
    let decided;
    try {
      decided = decide(state, command);
    } catch (e) {
      if (!(e instanceof Rejected)) throw e;
      say(`${name}: rejected: ${e.message}`);
      return null;
    }
    const events = decided.map(([type, data], n) => [uuid5(`${name}/${n}`), type, data]);
    let version;
    try {
      version = await append(db, stream, state.version, events);
    } catch (e) {
      if (e.code === 'ES409') {
        say(`${name}: ES409, ${stream} moved past version ${state.version}; reading again`);
        continue;
      }
      if (e.code === '23514') { // check_violation raised by bank.project_balance
        say(`${name}: vetoed by the database (23514): ${e.message}`);
        return null;
      }
      throw e;
    }
    if (version <= state.version) { // the store returned the first attempt's result
      say(`${name}: already applied at version ${version}, nothing appended`);
    } else {
      say(`${name}: appended at version ${version}`);
    }
    return version;
  }
  throw new Error(`${name}: still conflicting after 5 attempts`);
}

// A batch whose event ids come from the bank's line ids: resending the same
// statement is a no-op; a statement that overlaps an imported one (some ids
// known, some new) is refused with 23505.
async function importStatement(db, account, name, lines) {
  const { rows: [{ before }] } = await db.query(
    'SELECT eventstore.stream_version($1) AS before', [account]);
  const events = lines.map(([line, cents]) =>
    [uuid5(`${account}/line/${line}`), 'Deposited', { cents, line }]);
  let version;
  try {
    version = await append(db, account, null, events);
  } catch (e) {
    if (e.code !== '23505') throw e;
    say(`${name}: refused (23505): overlaps an imported statement: ${e.message}`);
    return;
  }
  if (version <= Number(before)) say(`${name}: already imported, nothing appended`);
  else say(`${name}: imported ${events.length} lines, now at version ${version}`);
}

// -- the consumer: outbox route + consumer_poll/ack, LISTEN for wake-ups ---

// E-mails (prints) large withdrawals.  Durable: its checkpoint is in the
// database; NOTIFY only says when to poll, a timeout covers missed ones.
class Mailer {
  constructor(consumer = 'mailer') {
    Object.assign(this, { consumer, stopAt: null, seen: 0, mailed: 0, notifications: 0 });
    this.pending = false;
    this.wake = () => {};
  }

  async start() {
    this.db = await connect('bank_mailer');
    this.db.on('notification', () => {
      this.notifications++;
      this.pending = true;
      this.wake();
    });
    await this.db.query(`LISTEN ${CHANNEL}`);
    this.done = this.loop().finally(() => this.db.end());
  }

  async loop() {
    let acked = 0;
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      this.pending = false;
      const { rows } = await this.db.query(
        'SELECT id, message FROM eventstore.consumer_poll($1, $2, 100)', [this.consumer, CHANNEL]);
      for (const r of rows) this.handle(r.message);
      if (rows.length) {
        // at least once: a crash before this ack re-delivers the batch; a
        // real mailer would dedupe on message.event_id
        const last = rows[rows.length - 1];
        await this.db.query('SELECT eventstore.consumer_ack($1, $2, $3)', [this.consumer, CHANNEL, last.id]);
        acked = Math.max(acked, last.message.position);
        continue;
      }
      if (this.stopAt !== null && acked >= this.stopAt) return;
      if (this.pending) continue; // a notification came in during the poll
      // idle: sleep until a NOTIFY arrives, or 1 s passes
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = () => {};
    }
    throw new Error('mailer: gave up waiting');
  }

  handle(message) {
    this.seen++;
    if (message.data.cents >= LARGE) {
      this.mailed++;
      say(`mailer: e-mail to the owner of ${message.stream_id}: ` +
          `withdrawal of ${money(message.data.cents)} (version ${message.stream_version})`);
    }
  }
}

// -- the run ----------------------------------------------------------------

async function main() {
  const admin = await connect();
  try {
    await admin.query(fs.readFileSync(path.join(__dirname, 'schema.sql'), 'utf8'));
  } catch (e) {
    if (e.code !== '42P06') throw e; // duplicate_schema
    console.error('schema bank exists: run the example against a fresh database');
    process.exit(1);
  }
  say('setup: schema, roles, projection bank_balance, route bank_withdrawals');

  const mailer = new Mailer();
  await mailer.start();
  say(`mailer: listening on ${CHANNEL}`);

  const teller = await connect('bank_teller');
  for (const command of [
    { id: 'open-alice', kind: 'open', account: 'account-alice', owner: 'Alice' },
    { id: 'open-bob', kind: 'open', account: 'account-bob', owner: 'Bob' },
    { id: 'dep-1', kind: 'deposit', account: 'account-alice', cents: 200000 },
    { id: 'dep-1', kind: 'deposit', account: 'account-alice', cents: 200000 }, // resent
    { id: 'dep-2', kind: 'deposit', account: 'account-bob', cents: 10000 },
  ]) await handle(teller, command);

  await importStatement(teller, 'account-bob', 'stmt-1', [['L1', 1000], ['L2', 2000]]);
  await importStatement(teller, 'account-bob', 'stmt-1', [['L1', 1000], ['L2', 2000]]); // resent
  await importStatement(teller, 'account-bob', 'stmt-2', [['L2', 2000], ['L3', 500]]);

  // The conflicting pair: two tellers withdraw from Alice at the same moment.
  // Both read version 2, both append expecting 2: one wins, the other gets
  // ES409, reads again and appends at version 4.
  let arrived = 0;
  let release;
  const bothRead = new Promise((resolve) => { release = resolve; });
  const afterRead = () => { if (++arrived === 2) release(); return bothRead; };
  const versions = await Promise.all([
    { id: 'wd-1', kind: 'withdraw', account: 'account-alice', cents: 150000 },
    { id: 'wd-2', kind: 'withdraw', account: 'account-alice', cents: 30000 },
  ].map(async (command) => {
    const db = await connect('bank_teller');
    try { return await handle(db, command, afterRead); } finally { await db.end(); }
  }));
  say(`conflict pair: versions [${versions.sort((a, b) => a - b).join(', ')}]`);

  // resent after the race: nothing new
  await handle(teller, { id: 'wd-1', kind: 'withdraw', account: 'account-alice', cents: 150000 });
  // overdraft: vetoed, never reaches the outbox
  await handle(teller, { id: 'wd-3', kind: 'withdraw', account: 'account-bob', cents: 500000 });

  // History is immutable: a writer has no UPDATE right at all (42501) ...
  const rewrite = "UPDATE eventstore.events SET data = '{}' WHERE stream_id = 'account-bob'";
  try {
    await teller.query(rewrite);
  } catch (e) {
    if (e.code !== '42501') throw e;
    say(`teller rewrites history: refused (42501): ${e.message}`);
  }
  // ... and even the owner is stopped by the trigger (ES002).
  try {
    await admin.query(rewrite);
  } catch (e) {
    if (e.code !== 'ES002') throw e;
    say('admin rewrites history: refused (ES002): append a compensating event instead');
  }
  await admin.end();

  for (const account of ['account-alice', 'account-bob']) {
    const state = await load(teller, account);
    const { rows: [b] } = await teller.query(
      'SELECT cents, version FROM bank.balances WHERE account = $1', [account]);
    say(`${account}: folded balance ${money(state.cents)} at version ${state.version}; ` +
        `projection ${money(Number(b.cents))} at version ${b.version}`);
  }
  const { rows: [last] } = await teller.query(
    "SELECT max(global_position) AS p FROM eventstore.events WHERE event_type = 'Withdrawn'");
  await teller.end();

  mailer.stopAt = Number(last.p);
  mailer.wake();
  await mailer.done;
  say(`mailer: ${mailer.seen} withdrawals seen, ${mailer.mailed} e-mail sent`);
  say(`mailer: woken by NOTIFY: ${mailer.notifications ? 'yes' : 'no'}`);

  // A restarted mailer resumes from its checkpoint: nothing is sent twice.
  const again = await connect('bank_mailer');
  const { rows: [p] } = await again.query(
    'SELECT count(*) AS n FROM eventstore.consumer_poll($1, $2, 100)', ['mailer', CHANNEL]);
  await again.end();
  say(`mailer restarted: ${p.n} messages after its checkpoint`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
