/*
 * relay_shared.h
 *		The relay's shared memory, seen by the launcher (relay_launcher.c),
 *		the per-database workers and relay_status() (relay_worker.c).
 *
 * Locking rules: es_relay->lock protects the per-database entries, the
 * subscriptions' wake-up slots included.  Holders never do anything but
 * read or write the entries and set latches.
 */
#ifndef EVENTSTORE_RELAY_SHARED_H
#define EVENTSTORE_RELAY_SHARED_H

#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#define ES_RELAY_MAX_DBS	1024	/* databases the relay can know */
#define ES_RELAY_ERRLEN		256
#define ES_RESCAN_MS		10000	/* look for new databases this often */
#define ES_RETRY_DROP_MS	30000	/* re-probe a database whose drop we yielded to */
#define ES_DROP_POLL_MS		1000	/* DROP DATABASE waits 5 s for us */
#define ES_PRUNE_MS			10000	/* apply outbox retention this often */
#define ES_START_TIMEOUT_MS	30000	/* a worker not up by then is started again */
#define ES_YIELD_IDLE_MS	1000	/* idle this long: give the slot to a waiting database */
#define ES_YIELD_BUSY_MS	10000	/* busy this long: give it up too, and queue again */
#define ES_YIELD_CHECK_MS	100		/* look for a database waiting for a slot at most this often */
#define ES_WAKE_RETRY_MAX_MS	50	/* a subscription's wake-up waits for the horizon: retry this often */
#define ES_WAKE_MIN_INTERVAL_MS	5	/* passes woken for subscriptions only: at most this often */
#define ES_WAKE_SLOTS		64		/* subscriptions signalled by commits, by hash of name */

typedef enum EsRelayExit
{
	ES_EXIT_NONE,
	ES_EXIT_NO_EXTENSION,
	ES_EXIT_DROPPING,
	ES_EXIT_NOT_WANTED,
	ES_EXIT_YIELDED,			/* gave its slot to a database waiting for one */
} EsRelayExit;

typedef struct EsRelayDb
{
	Oid			dbid;			/* InvalidOid: free entry */
	pid_t		pid;			/* running worker, 0 if none */
	Latch	   *latch;			/* its latch */
	bool		requested;		/* a commit asked for a worker */
	bool		probed;			/* a worker has run here at least once */
	EsRelayExit exit_reason;
	TimestampTz started_at;		/* when the launcher last started a worker */
	TimestampTz exited_at;
	TimestampTz waiting_since;	/* no worker slot was free for it since; 0: not waiting */
	char		state[32];
	uint64		published;
	int64		wake_position;	/* a committed append matching a subscription, up to here */
	/*
	 * Commits signal the subscriptions their events matched (es_relay_xact):
	 * slot es_wake_slot(name), lowest and highest committed position not yet
	 * notified (0: none).  A wake pass notifies a slot's subscriptions when
	 * its lowest position is at or below the horizon, and records that
	 * horizon in woken_to (es_relay_wake_slots).
	 */
	bool		sub_signal;		/* a commit signalled since the last wake pass */
	int64		wake_lo[ES_WAKE_SLOTS];
	int64		wake_hi[ES_WAKE_SLOTS];
	int64		woken_to[ES_WAKE_SLOTS];
	bool		outbox_wake;	/* a commit with outbox rows woke the worker since its last pass */
	char		last_error[ES_RELAY_ERRLEN];
	TimestampTz last_error_at;
} EsRelayDb;

typedef struct EsRelayShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	EsRelayDb	dbs[ES_RELAY_MAX_DBS];
} EsRelayShared;

extern EsRelayShared *es_relay;
extern EsRelayDb *es_my_entry;

extern EsRelayDb *es_relay_entry(Oid dbid, bool create);
extern bool es_relay_wanted(const char *dbname);

PGDLLEXPORT void eventstore_relay_launcher_main(Datum arg);
PGDLLEXPORT void eventstore_relay_worker_main(Datum arg);

#endif							/* EVENTSTORE_RELAY_SHARED_H */
