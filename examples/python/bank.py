#!/usr/bin/env python3
"""Bank accounts on eventstore, with psycopg 3.

Run against a fresh database that has the extension:
    createdb bank && psql -d bank -c 'CREATE EXTENSION eventstore'
    PGDATABASE=bank python3 bank.py
Connection settings come from the PG* environment variables (or
DATABASE_URL); the setup runs as that user, the tellers and the mailer
connect as the roles schema.sql creates.
"""

import os
import select
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

DSN = os.environ.get("DATABASE_URL", "")
CHANNEL = "bank_withdrawals"
LARGE = 100_000  # cents: withdrawals from 1000.00 up are e-mailed
# Event ids are derived from the command id: a command sent twice produces
# the same ids, and the store recognises the second append as a retry.
IDS = uuid.UUID("6f1c3a52-36a4-4a1b-9d0e-2b8f3c4d5e6f")

_print_lock = threading.Lock()


def say(*args):
    with _print_lock:
        print(*args, flush=True)


def money(cents):
    return f"{cents // 100}.{cents % 100:02d}"


def connect(user=None):
    kwargs = {"user": user} if user else {}
    return psycopg.connect(DSN, autocommit=True, **kwargs)


# -- the domain: state folded from a stream, and decisions ------------------

@dataclass
class Account:
    opened: bool = False
    owner: str = ""
    cents: int = 0
    version: int = 0


def evolve(state, event_type, data):
    if event_type == "AccountOpened":
        state.opened, state.owner = True, data["owner"]
    elif event_type == "Deposited":
        state.cents += data["cents"]
    elif event_type == "Withdrawn":
        state.cents -= data["cents"]
    return state


def load(conn, stream):
    """Read a stream and fold it: the state and the version it reflects."""
    state = Account()
    rows = conn.execute(
        "SELECT stream_version, event_type, data FROM eventstore.read_stream(%s)", (stream,))
    for version, event_type, data in rows:  # data: jsonb arrives as a dict
        evolve(state, event_type, data)
        state.version = version
    return state


class Rejected(Exception):
    pass


def decide(state, command):
    kind = command["kind"]
    if kind == "open":
        if state.opened:
            raise Rejected("account already open")
        return [("AccountOpened", {"owner": command["owner"]})]
    if not state.opened:
        raise Rejected("no such account")
    if command["cents"] <= 0:
        raise Rejected("amount must be positive")
    # No balance check here: the database's projection vetoes overdrafts.
    return [("Deposited" if kind == "deposit" else "Withdrawn", {"cents": command["cents"]})]


APPEND = """
SELECT stream_version, global_position
  FROM eventstore.append(%s, %s, ARRAY(
       SELECT eventstore.event(t, d, NULL, i)
         FROM unnest(%s::text[], %s::jsonb[], %s::uuid[]) WITH ORDINALITY AS e(t, d, i, n)
        ORDER BY n))
"""


def append(conn, stream, expected, events):
    """events: (event_id, type, data) triples; returns (version, position)."""
    return conn.execute(APPEND, (
        stream, expected,
        [t for _, t, _ in events], [Jsonb(d) for _, _, d in events], [i for i, _, _ in events],
    )).fetchone()


def handle(conn, command, after_read=None):
    """Decide-append loop: read, decide, append at the version read; on ES409
    another writer got there first, so read again and decide again."""
    name, stream = command["id"], command["account"]
    for attempt in range(1, 6):
        state = load(conn, stream)
        if after_read and attempt == 1:
            after_read(state)
        try:
            new = decide(state, command)
        except Rejected as e:
            say(f"{name}: rejected: {e}")
            return None
        events = [(uuid.uuid5(IDS, f"{name}/{n}"), t, d) for n, (t, d) in enumerate(new)]
        try:
            version, position = append(conn, stream, state.version, events)
        except psycopg.Error as e:
            if e.sqlstate == "ES409":
                say(f"{name}: ES409, {stream} moved past version {state.version}; reading again")
                continue
            if e.sqlstate == "23514":  # check_violation raised by bank.project_balance
                say(f"{name}: vetoed by the database (23514): {e.diag.message_primary}")
                return None
            raise
        if version <= state.version:  # the store returned the first attempt's result
            say(f"{name}: already applied at version {version}, nothing appended")
        else:
            say(f"{name}: appended at version {version}")
        return version
    raise RuntimeError(f"{name}: still conflicting after 5 attempts")


def import_statement(conn, account, name, lines):
    """A batch whose event ids come from the bank's line ids: resending the
    same statement is a no-op; a statement that overlaps an imported one
    (some ids known, some new) is refused with 23505."""
    before = conn.execute("SELECT eventstore.stream_version(%s)", (account,)).fetchone()[0]
    events = [(uuid.uuid5(IDS, f"{account}/line/{line}"), "Deposited", {"cents": cents, "line": line})
              for line, cents in lines]
    try:
        version, _ = append(conn, account, None, events)
    except psycopg.errors.UniqueViolation as e:  # sqlstate 23505
        say(f"{name}: refused (23505): overlaps an imported statement: {e.diag.message_primary}")
        return
    if version <= before:
        say(f"{name}: already imported, nothing appended")
    else:
        say(f"{name}: imported {len(events)} lines, now at version {version}")


# -- the consumer: outbox route + consumer_poll/ack, LISTEN for wake-ups ----

class Mailer(threading.Thread):
    """E-mails (prints) large withdrawals.  Durable: its checkpoint is in the
    database; NOTIFY only says when to poll, a timeout covers missed ones."""

    def __init__(self, name="mailer"):
        super().__init__(daemon=True)
        self.consumer = name
        self.ready = threading.Event()
        self.stop_at = None          # stop once a message at this log position is acked
        self.seen = self.mailed = self.notifications = 0
        self.error = None

    def run(self):
        try:
            with connect("bank_mailer") as conn:
                conn.add_notify_handler(self._notified)
                conn.execute(f"LISTEN {CHANNEL}")
                self.ready.set()
                self._loop(conn)
        except Exception as e:  # reported by the main thread
            self.error = e
            self.ready.set()

    def _notified(self, notify):
        self.notifications += 1

    def _loop(self, conn):
        acked = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT id, message FROM eventstore.consumer_poll(%s, %s, 100)",
                (self.consumer, CHANNEL)).fetchall()
            for _, message in rows:
                self.handle(message)
            if rows:
                # at least once: a crash before this ack re-delivers the batch;
                # a real mailer would dedupe on message["event_id"]
                conn.execute("SELECT eventstore.consumer_ack(%s, %s, %s)",
                             (self.consumer, CHANNEL, rows[-1][0]))
                acked = max(acked, rows[-1][1]["position"])
                continue
            if self.stop_at is not None and acked >= self.stop_at:
                return
            # idle: sleep until a NOTIFY arrives on the socket, or 1 s passes;
            # the next poll reads the notification (and calls _notified)
            select.select([conn], [], [], 1.0)
        raise TimeoutError("mailer: gave up waiting")

    def handle(self, message):
        self.seen += 1
        cents = message["data"]["cents"]
        if cents >= LARGE:
            self.mailed += 1
            say(f"mailer: e-mail to the owner of {message['stream_id']}: "
                f"withdrawal of {money(cents)} (version {message['stream_version']})")


# -- the run ---------------------------------------------------------------

def main():
    with connect() as admin:
        try:
            admin.execute((Path(__file__).parent / "schema.sql").read_text())
        except psycopg.errors.DuplicateSchema:
            sys.exit("schema bank exists: run the example against a fresh database")
        say("setup: schema, roles, projection bank_balance, route bank_withdrawals")

    mailer = Mailer()
    mailer.start()
    mailer.ready.wait()
    if mailer.error:
        raise mailer.error
    say(f"mailer: listening on {CHANNEL}")

    with connect("bank_teller") as teller:
        for command in [
            {"id": "open-alice", "kind": "open", "account": "account-alice", "owner": "Alice"},
            {"id": "open-bob", "kind": "open", "account": "account-bob", "owner": "Bob"},
            {"id": "dep-1", "kind": "deposit", "account": "account-alice", "cents": 200_000},
            {"id": "dep-1", "kind": "deposit", "account": "account-alice", "cents": 200_000},  # resent
            {"id": "dep-2", "kind": "deposit", "account": "account-bob", "cents": 10_000},
        ]:
            handle(teller, command)

        import_statement(teller, "account-bob", "stmt-1", [("L1", 1_000), ("L2", 2_000)])
        import_statement(teller, "account-bob", "stmt-1", [("L1", 1_000), ("L2", 2_000)])  # resent
        import_statement(teller, "account-bob", "stmt-2", [("L2", 2_000), ("L3", 500)])

        # The conflicting pair: two tellers withdraw from Alice at the same
        # moment.  Both read version 2, both append expecting 2: one wins,
        # the other gets ES409, reads again and appends at version 4.
        both_read = threading.Barrier(2)
        results = {}

        def concurrent(command):
            with connect("bank_teller") as conn:
                results[command["id"]] = handle(conn, command, lambda s: both_read.wait(10))

        pair = [threading.Thread(target=concurrent, args=(c,)) for c in (
            {"id": "wd-1", "kind": "withdraw", "account": "account-alice", "cents": 150_000},
            {"id": "wd-2", "kind": "withdraw", "account": "account-alice", "cents": 30_000})]
        for t in pair:
            t.start()
        for t in pair:
            t.join()
        say(f"conflict pair: versions {sorted(results.values())}")

        handle(teller, {"id": "wd-1", "kind": "withdraw", "account": "account-alice",
                        "cents": 150_000})  # resent after the race: nothing new
        handle(teller, {"id": "wd-3", "kind": "withdraw", "account": "account-bob",
                        "cents": 500_000})  # overdraft: vetoed, never reaches the outbox

        # History is immutable: a writer has no UPDATE right at all (42501) ...
        try:
            teller.execute("UPDATE eventstore.events SET data = '{}' WHERE stream_id = 'account-bob'")
        except psycopg.errors.InsufficientPrivilege as e:
            say(f"teller rewrites history: refused (42501): {e.diag.message_primary}")
        # ... and even the owner is stopped by the trigger (ES002).
        with connect() as admin:
            try:
                admin.execute("UPDATE eventstore.events SET data = '{}' WHERE stream_id = 'account-bob'")
            except psycopg.Error as e:
                if e.sqlstate != "ES002":
                    raise
                say("admin rewrites history: refused (ES002): append a compensating event instead")

        for account in ("account-alice", "account-bob"):
            state = load(teller, account)
            cents, version = teller.execute(
                "SELECT cents, version FROM bank.balances WHERE account = %s", (account,)).fetchone()
            say(f"{account}: folded balance {money(state.cents)} at version {state.version}; "
                f"projection {money(cents)} at version {version}")
        last = teller.execute(
            "SELECT max(global_position) FROM eventstore.events WHERE event_type = 'Withdrawn'"
        ).fetchone()[0]

    mailer.stop_at = last
    mailer.join(35)
    if mailer.error or mailer.is_alive():
        raise SystemExit(f"mailer failed: {mailer.error or 'still running'}")
    say(f"mailer: {mailer.seen} withdrawals seen, {mailer.mailed} e-mail sent")
    say(f"mailer: woken by NOTIFY: {'yes' if mailer.notifications else 'no'}")

    # A restarted mailer resumes from its checkpoint: nothing is sent twice.
    with connect("bank_mailer") as conn:
        pending = conn.execute("SELECT count(*) FROM eventstore.consumer_poll('mailer', %s, 100)",
                               (CHANNEL,)).fetchone()[0]
    say(f"mailer restarted: {pending} messages after its checkpoint")


if __name__ == "__main__":
    main()
