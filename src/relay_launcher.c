/*
 * relay_launcher.c
 *		The relay's shared memory and its launcher: the background worker that
 *		finds the databases where eventstore is installed and starts one relay
 *		worker (relay_worker.c) for each.  Also the wake-up at commit.
 *
 * How a worker learns there is work: a transaction that wrote outbox rows
 * asks, at commit, for its database's worker latch to be set (a transaction
 * callback, like core's logical replication launcher wake-up).  If no worker
 * runs for that database yet, the launcher's latch is set instead and it
 * starts one; CREATE EXTENSION does the same.  eventstore.relay_naptime is
 * only the fallback poll.
 *
 * Lifecycle: the launcher is registered in _PG_init and starts after
 * recovery (on a hot standby nothing runs).  It reads pg_database, and starts
 * a dynamic worker for each database allowed by eventstore.relay_databases
 * that it has not probed yet or that asked for one.  Why a worker exits is
 * recorded in its entry (relay_worker.c).  SIGKILL makes the postmaster reinitialise, after which the launcher starts
 * everything again; nothing is lost, since the outbox is a table.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "compat.h"
#include "eventstore.h"

#include "relay_shared.h"

PG_FUNCTION_INFO_V1(eventstore_relay_wakeup);

EsRelayShared *es_relay = NULL;
static bool es_wakeup_at_commit = false;
static int64 es_wake_position = 0;	/* for subscriptions, at commit (0: none) */
static bool es_wakeup_outbox = false;	/* for outbox rows or messages */

#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---------- shared memory ---------- */

static void
es_relay_shmem_request(void)
{
#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(sizeof(EsRelayShared));
	RequestNamedLWLockTranche("eventstore_relay", 1);
}

static void
es_relay_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_relay = ShmemInitStruct("eventstore_relay", sizeof(EsRelayShared), &found);
	if (!found)
	{
		memset(es_relay, 0, sizeof(EsRelayShared));
		es_relay->lock = &(GetNamedLWLockTranche("eventstore_relay"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The entry of dbid, created if create; NULL if none (or no room). Lock held. */
EsRelayDb *
es_relay_entry(Oid dbid, bool create)
{
	EsRelayDb  *free_entry = NULL;

	for (int i = 0; i < ES_RELAY_MAX_DBS; i++)
	{
		if (es_relay->dbs[i].dbid == dbid)
			return &es_relay->dbs[i];
		if (free_entry == NULL && es_relay->dbs[i].dbid == InvalidOid)
			free_entry = &es_relay->dbs[i];
	}
	if (!create || free_entry == NULL)
		return NULL;
	memset(free_entry, 0, sizeof(EsRelayDb));
	free_entry->dbid = dbid;
	strlcpy(free_entry->state, "not started", sizeof(free_entry->state));
	return free_entry;
}

/* ---------- waking up at commit ---------- */

/*
 * A wake pass of this transaction fired these slots (es_relay_wake_slots):
 * at commit their woken_to moves to es_fired_horizon; at abort the
 * positions it took out of them are put back, so no wake-up is lost (the
 * next commit that signals, or the next pass, fires them).
 */
static uint64 es_fired = 0;
static int64 es_fired_horizon = 0;
static int64 es_fired_lo[ES_WAKE_SLOTS];
static int64 es_fired_hi[ES_WAKE_SLOTS];

/* The subscriptions this transaction's appends matched, by slot (es_relay_wake_position). */
static uint64 es_wake_mask = 0;
static int64 es_wake_lo[ES_WAKE_SLOTS];
static int64 es_wake_hi[ES_WAKE_SLOTS];

/* Settle the slots a wake pass fired, at its transaction's end.  Lock held. */
static void
es_relay_fired_end(EsRelayDb *entry, bool commit)
{
	for (int s = 0; s < ES_WAKE_SLOTS; s++)
	{
		if (!(es_fired & (UINT64CONST(1) << s)))
			continue;
		if (commit)
			entry->woken_to[s] = Max(entry->woken_to[s], es_fired_horizon);
		else
		{
			entry->wake_lo[s] = entry->wake_lo[s] == 0 ? es_fired_lo[s] : Min(entry->wake_lo[s], es_fired_lo[s]);
			entry->wake_hi[s] = Max(entry->wake_hi[s], es_fired_hi[s]);
		}
	}
}

/* Transaction end (called from eventstore.c's transaction callback). */
void
es_relay_xact(XactEvent event)
{
	int64		wake_position = es_wake_position;
	bool		outbox = es_wakeup_outbox;
	uint64		mask = es_wake_mask;
	uint64		fired = es_fired;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE)
		return;
	if (fired != 0 && es_relay != NULL)
	{
		LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
		{
			EsRelayDb  *entry = es_relay_entry(MyDatabaseId, true);

			if (entry != NULL)
				es_relay_fired_end(entry, event == XACT_EVENT_COMMIT);
		}
		LWLockRelease(es_relay->lock);
	}
	es_fired = 0;
	es_fired_horizon = 0;
	if (event != XACT_EVENT_COMMIT || !es_wakeup_at_commit)
	{
		es_wakeup_at_commit = false;
		es_wake_position = 0;
		es_wakeup_outbox = false;
		es_wake_mask = 0;
		return;
	}
	es_wakeup_at_commit = false;
	es_wake_position = 0;
	es_wakeup_outbox = false;
	es_wake_mask = 0;
	if (es_relay == NULL)
		return;

	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	{
		EsRelayDb  *entry = es_relay_entry(MyDatabaseId, true);
		bool		signalled = entry != NULL && entry->sub_signal;

		if (entry != NULL && wake_position > entry->wake_position)
			entry->wake_position = wake_position;
		for (; entry != NULL && mask != 0; mask &= mask - 1)
		{
			int			s = pg_rightmost_one_pos64(mask);

			entry->wake_lo[s] = entry->wake_lo[s] == 0 ? es_wake_lo[s] : Min(entry->wake_lo[s], es_wake_lo[s]);
			entry->wake_hi[s] = Max(entry->wake_hi[s], es_wake_hi[s]);
			entry->sub_signal = true;
		}
		if (entry != NULL && outbox)
			entry->outbox_wake = true;
		/* a commit signalled since the worker's last wake pass set its latch already */
		if (entry != NULL && entry->pid != 0 && entry->latch != NULL)
		{
			if (outbox || !signalled)
				SetLatch(entry->latch);
		}
		else
		{
			if (entry != NULL)
				entry->requested = true;
			if (es_relay->launcher_latch != NULL)
				SetLatch(es_relay->launcher_latch);
		}
	}
	LWLockRelease(es_relay->lock);
}

/* Ask for this database's relay worker to run when this transaction commits. */
void
es_relay_wakeup_at_commit(void)
{
	es_wakeup_at_commit = true;
	es_wakeup_outbox = true;
}

/*
 * Ask for the relay worker at commit for a subscription's wake-up: the
 * transaction appended events matching the subscriptions of slot
 * (es_wake_slot), from position lo to hi.  At commit the slot's range in
 * shared memory takes them in; the worker keeps passing, at short
 * intervals, until its log horizon reaches the highest such position
 * (es_relay_wake_pending).
 */
void
es_relay_wake_position(int slot, int64 lo, int64 hi)
{
	uint64		bit = UINT64CONST(1) << slot;

	es_wakeup_at_commit = true;
	es_wake_position = Max(es_wake_position, hi);
	if (!(es_wake_mask & bit))
	{
		es_wake_mask |= bit;
		es_wake_lo[slot] = lo;
		es_wake_hi[slot] = hi;
	}
	else
	{
		es_wake_lo[slot] = Min(es_wake_lo[slot], lo);
		es_wake_hi[slot] = Max(es_wake_hi[slot], hi);
	}
}

/*
 * A wake pass, with the log horizon it computed: the slots whose lowest
 * signalled position is at or below horizon fire (their subscriptions are
 * notified in this transaction); positions above it stay for a later pass
 * (the slot's range then starts right above horizon: an extra wake-up at
 * worst).  Fills woken_to[] with each slot's woken_to as of this pass
 * (fired ones: horizon).  Returns the fired slots; 0 without shared memory.
 */
uint64
es_relay_wake_slots(int64 horizon, int64 *woken_to)
{
	EsRelayDb  *entry;
	uint64		fired = 0;

	memset(woken_to, 0, sizeof(int64) * ES_WAKE_SLOTS);
	if (es_relay == NULL)
		return 0;
	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	entry = es_my_entry ? es_my_entry : es_relay_entry(MyDatabaseId, false);
	if (entry != NULL)
	{
		entry->sub_signal = false;
		for (int s = 0; s < ES_WAKE_SLOTS; s++)
		{
			woken_to[s] = entry->woken_to[s];
			if (entry->wake_lo[s] == 0 || entry->wake_lo[s] > horizon)
				continue;
			fired |= UINT64CONST(1) << s;
			if (!(es_fired & (UINT64CONST(1) << s)))
			{
				es_fired_lo[s] = entry->wake_lo[s];
				es_fired_hi[s] = entry->wake_hi[s];
			}
			else
			{
				es_fired_lo[s] = Min(es_fired_lo[s], entry->wake_lo[s]);
				es_fired_hi[s] = Max(es_fired_hi[s], entry->wake_hi[s]);
			}
			if (entry->wake_hi[s] > horizon)
				entry->wake_lo[s] = horizon + 1;
			else
				entry->wake_lo[s] = entry->wake_hi[s] = 0;
			woken_to[s] = Max(woken_to[s], horizon);
		}
		es_fired |= fired;
		es_fired_horizon = Max(es_fired_horizon, horizon);
	}
	LWLockRelease(es_relay->lock);
	return fired;
}

/* Whether a committed append matching a subscription lies above horizon (the worker's own entry). */
bool
es_relay_wake_pending(int64 horizon)
{
	bool		pending;

	if (es_relay == NULL || es_my_entry == NULL)
		return false;
	LWLockAcquire(es_relay->lock, LW_SHARED);
	pending = es_my_entry->wake_position > horizon;
	LWLockRelease(es_relay->lock);
	return pending;
}

/*
 * In the worker: whether a commit with outbox rows woke it since the last
 * call (which clears the flag, when clear).
 */
bool
es_relay_outbox_woken(bool clear)
{
	bool		woken;

	if (es_relay == NULL || es_my_entry == NULL)
		return true;
	LWLockAcquire(es_relay->lock, clear ? LW_EXCLUSIVE : LW_SHARED);
	woken = es_my_entry->outbox_wake;
	if (clear)
		es_my_entry->outbox_wake = false;
	LWLockRelease(es_relay->lock);
	return woken;
}

/* eventstore._relay_wakeup(): the install script calls it so the new database is served. */
Datum
eventstore_relay_wakeup(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	es_relay_wakeup_at_commit();
	PG_RETURN_VOID();
}

/* ---------- registration ---------- */

void
es_relay_worker_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

#ifdef ES_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_relay_shmem_request;
#else
	es_relay_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_relay_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "eventstore", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "eventstore_relay_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "eventstore relay launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "eventstore relay launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Is database dbname served according to eventstore.relay_databases? */
bool
es_relay_wanted(const char *dbname)
{
	char	   *copy;
	List	   *names;
	ListCell   *lc;
	bool		wanted = false;

	if (es_relay_databases == NULL || es_relay_databases[0] == '\0')
		return true;
	copy = pstrdup(es_relay_databases);
	if (!SplitIdentifierString(copy, ',', &names))
	{
		ereport(LOG,
				(errmsg("eventstore: invalid eventstore.relay_databases \"%s\"; serving no database",
						es_relay_databases)));
		return false;
	}
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), dbname) == 0)
			wanted = true;
	list_free(names);
	pfree(copy);
	return wanted;
}

/* ---------- the launcher ---------- */

typedef struct EsDbInfo
{
	Oid			oid;
	char		name[NAMEDATALEN];
} EsDbInfo;

/* The databases a worker may connect to, read from pg_database. */
static List *
es_list_databases(MemoryContext cxt)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;
		EsDbInfo   *info;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(cxt);
		info = palloc(sizeof(EsDbInfo));
		info->oid = db->oid;
		strlcpy(info->name, NameStr(db->datname), NAMEDATALEN);
		dbs = lappend(dbs, info);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/* Start a worker for db; false when no background worker slot was free. */
static bool
es_start_worker(EsDbInfo *db)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "eventstore", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "eventstore_relay_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "eventstore relay for database %s", db->name);
	strlcpy(worker.bgw_type, "eventstore relay", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(db->oid);
	/* the postmaster signals us when it exits: its slot is free again */
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/* A database whose worker should start, in the order of es_candidate_cmp. */
typedef struct EsCandidate
{
	EsDbInfo   *db;
	EsRelayDb  *entry;
	bool		requested;		/* a commit is waiting for it */
	TimestampTz since;			/* waiting for a slot since (or now) */
} EsCandidate;

/* Woken by a commit first, then whoever has waited longest for a slot. */
static int
es_candidate_cmp(const void *a, const void *b)
{
	const EsCandidate *x = a;
	const EsCandidate *y = b;

	if (x->requested != y->requested)
		return x->requested ? -1 : 1;
	if (x->since != y->since)
		return x->since < y->since ? -1 : 1;
	return 0;
}

static bool es_short_of_slots = false;	/* for the log: said so already */
static bool es_table_full = false;	/* likewise */

/*
 * Start the workers that should run and do not, and forget the entries of
 * databases that no longer exist.
 *
 * When there are more such databases than background worker slots, those
 * left over wait (waiting_since, shown by relay_status), first in line at
 * the next scan.  A worker that sees a database waiting gives up its slot
 * once it has been idle for ES_YIELD_IDLE_MS (or busy for ES_YIELD_BUSY_MS,
 * and then queues again), and the postmaster's exit notice wakes us to start
 * the next one: databases take turns.  A database whose worker gave up its
 * slot while idle is started again by its next outbox commit, or at the
 * next full scan, so that pruning and the standby horizon move everywhere.
 */
static void
es_launcher_scan(MemoryContext scratch, bool full)
{
	List	   *dbs;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	EsCandidate *cands;
	int			ncands = 0;
	int			nwaiting = 0;
	bool		no_slot = false;
	bool		table_full = false;
	List	   *wanted = NIL;
	MemoryContext old;

	MemoryContextReset(scratch);
	dbs = es_list_databases(scratch);
	old = MemoryContextSwitchTo(scratch);
	foreach(lc, dbs)
		if (es_relay_wanted(((EsDbInfo *) lfirst(lc))->name))
			wanted = lappend(wanted, lfirst(lc));
	cands = palloc(sizeof(EsCandidate) * (list_length(wanted) + 1));
	MemoryContextSwitchTo(old);

	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	for (int i = 0; i < ES_RELAY_MAX_DBS; i++)
	{
		EsRelayDb  *e = &es_relay->dbs[i];
		bool		exists = false;

		if (e->dbid == InvalidOid || e->pid > 0)
			continue;
		foreach(lc, dbs)
			exists |= ((EsDbInfo *) lfirst(lc))->oid == e->dbid;
		if (!exists)
			e->dbid = InvalidOid;	/* dropped: free the entry */
	}

	foreach(lc, wanted)
	{
		EsDbInfo   *db = lfirst(lc);
		EsRelayDb  *entry;
		bool		start = false;

		entry = es_relay_entry(db->oid, true);
		table_full |= entry == NULL;
		if (entry == NULL || entry->pid != 0)
			continue;			/* table full (relay_status says so), or running */
		if (entry->requested || !entry->probed || entry->waiting_since != 0)
			start = true;
		else if (entry->exit_reason == ES_EXIT_DROPPING)
			start = TimestampDifferenceExceeds(entry->exited_at, now, ES_RETRY_DROP_MS);
		else if (entry->exit_reason == ES_EXIT_NOT_WANTED || entry->exit_reason == ES_EXIT_YIELDED)
			start = full;
		else if (entry->exit_reason == ES_EXIT_NONE)
			start = true;		/* exited without saying why */
		if (start)
		{
			cands[ncands].db = db;
			cands[ncands].entry = entry;
			cands[ncands].requested = entry->requested;
			cands[ncands].since = entry->waiting_since != 0 ? entry->waiting_since : now;
			ncands++;
		}
	}
	LWLockRelease(es_relay->lock);

	qsort(cands, ncands, sizeof(EsCandidate), es_candidate_cmp);

	for (int i = 0; i < ncands; i++)
	{
		EsCandidate *c = &cands[i];
		EsRelayDb  *entry = c->entry;
		bool		start = false;

		LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
		if (entry->dbid == c->db->oid && entry->pid == 0)
		{
			if (no_slot)
			{
				/* the slots ran out for an earlier one: this one waits too */
				if (entry->waiting_since == 0)
					entry->waiting_since = now;
				strlcpy(entry->state, "waiting for a worker slot", sizeof(entry->state));
				nwaiting++;
			}
			else
			{
				start = true;
				entry->requested = false;
				entry->probed = true;
				/* the worker sets pid; mark it starting meanwhile */
				entry->pid = -1;
				entry->started_at = now;
				strlcpy(entry->state, "starting", sizeof(entry->state));
			}
		}
		LWLockRelease(es_relay->lock);
		if (!start)
			continue;
		if (es_start_worker(c->db))
		{
			LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
			entry->waiting_since = 0;
			LWLockRelease(es_relay->lock);
			continue;
		}
		no_slot = true;
		nwaiting++;
		LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
		if (entry->pid == -1)
		{
			entry->pid = 0;
			entry->requested = c->requested;
			if (entry->waiting_since == 0)
				entry->waiting_since = now;
			strlcpy(entry->state, "waiting for a worker slot", sizeof(entry->state));
		}
		LWLockRelease(es_relay->lock);
	}

	if (nwaiting > 0 && !es_short_of_slots)
		ereport(LOG,
				(errmsg("eventstore: no background worker slot free for the relay of %d database(s); databases take turns",
						nwaiting),
				 errhint("Raise max_worker_processes to at least 1 + the number of databases the relay serves + what other background workers and parallel queries need; relay_status shows who waits.")));
	else if (nwaiting == 0 && es_short_of_slots && ncands > 0)
		ereport(LOG,
				(errmsg("eventstore: every database waiting for a relay worker got one")));
	if (table_full && !es_table_full)
		ereport(LOG,
				(errmsg("eventstore: the relay serves at most %d databases; the others get no worker",
						ES_RELAY_MAX_DBS),
				 errhint("Limit eventstore.relay_databases to the databases that use the outbox.")));
	es_table_full = table_full;
	if (nwaiting > 0)
		es_short_of_slots = true;
	else if (ncands > 0)
		es_short_of_slots = false;
}

/*
 * Entries whose worker died without detaching are marked exited; entries
 * whose worker was started but never came up are started again.
 */
static void
es_launcher_reap(void)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	for (int i = 0; i < ES_RELAY_MAX_DBS; i++)
	{
		EsRelayDb  *e = &es_relay->dbs[i];

		if (e->dbid == InvalidOid)
			continue;
		if (e->pid > 0 && kill(e->pid, 0) != 0 && errno == ESRCH)
		{
			e->pid = 0;
			e->latch = NULL;
			strlcpy(e->state, "exited", sizeof(e->state));
		}
		else if (e->pid == -1 && TimestampDifferenceExceeds(e->started_at, now, ES_START_TIMEOUT_MS))
		{
			e->pid = 0;
			e->requested = true;
			strlcpy(e->state, "start timed out", sizeof(e->state));
		}
	}
	LWLockRelease(es_relay->lock);
}

void
eventstore_relay_launcher_main(Datum arg)
{
	MemoryContext scratch;
	TimestampTz last_scan = 0;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("eventstore relay launcher");

	scratch = AllocSetContextCreate(TopMemoryContext, "eventstore launcher", ALLOCSET_DEFAULT_SIZES);

	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	es_relay->launcher_pid = MyProcPid;
	es_relay->launcher_latch = MyLatch;
	/* After a restart every worker is gone: their entries must not say otherwise. */
	for (int i = 0; i < ES_RELAY_MAX_DBS; i++)
		if (es_relay->dbs[i].pid == -1)
			es_relay->dbs[i].pid = 0;
	LWLockRelease(es_relay->lock);

	for (;;)
	{
		bool		full;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			last_scan = 0;
		}
		now = GetCurrentTimestamp();
		full = last_scan == 0 || TimestampDifferenceExceeds(last_scan, now, ES_RESCAN_MS);
		es_launcher_reap();
		es_launcher_scan(scratch, full);
		if (full)
			last_scan = now;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ES_RESCAN_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
