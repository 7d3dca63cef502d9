/*
 * relay_worker.c
 *		The relay's background workers: a launcher that finds the databases
 *		where eventstore is installed, and one worker per such database that
 *		runs relay passes (relay.c).  Also eventstore.relay_status().
 *
 * How a worker learns there is work: a transaction that wrote outbox rows
 * asks, at commit, for its database's worker latch to be set (a transaction
 * callback, like core's logical replication launcher wake-up).  If no worker
 * runs for that database yet, the launcher's latch is set instead and it
 * starts one; CREATE EXTENSION does the same.  eventstore.relay_naptime is
 * only the fallback poll.
 *
 * Locking rules: es_relay->lock protects the per-database entries.  Holders
 * never do anything but read or write the entries and set latches.
 *
 * Lifecycle: the launcher is registered in _PG_init and starts after
 * recovery (on a hot standby nothing runs).  It reads pg_database, and starts
 * a dynamic worker for each database allowed by eventstore.relay_databases
 * that it has not probed yet or that asked for one.  A worker exits cleanly,
 * recording why, when its database lacks the extension, is being dropped
 * (it polls for DROP DATABASE's lock at least once a second, so it never
 * blocks the drop), or is no longer listed in relay_databases.  A pass that
 * fails is logged, recorded as last_error and retried after the naptime.
 * SIGKILL makes the postmaster reinitialise, after which the launcher starts
 * everything again; nothing is lost, since the outbox is a table.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "compat.h"
#include "eventstore.h"

PG_FUNCTION_INFO_V1(eventstore_relay_status);
PG_FUNCTION_INFO_V1(eventstore_relay_wakeup);

PGDLLEXPORT void eventstore_relay_launcher_main(Datum arg);
PGDLLEXPORT void eventstore_relay_worker_main(Datum arg);

#define ES_RELAY_MAX_DBS	128
#define ES_RELAY_ERRLEN		256
#define ES_RESCAN_MS		10000	/* look for new databases this often */
#define ES_RETRY_DROP_MS	30000	/* re-probe a database whose drop we yielded to */
#define ES_DROP_POLL_MS		1000	/* DROP DATABASE waits 5 s for us */
#define ES_PRUNE_MS			10000	/* apply outbox retention this often */
#define ES_START_TIMEOUT_MS	30000	/* a worker not up by then is started again */

typedef enum EsRelayExit
{
	ES_EXIT_NONE,
	ES_EXIT_NO_EXTENSION,
	ES_EXIT_DROPPING,
	ES_EXIT_NOT_WANTED,
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
	char		state[32];
	uint64		published;
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

static EsRelayShared *es_relay = NULL;
static EsRelayDb *es_my_entry = NULL;	/* in a worker: its entry */
static bool es_wakeup_at_commit = false;

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
static EsRelayDb *
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

/* Transaction end (called from eventstore.c's transaction callback). */
void
es_relay_xact(XactEvent event)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		es_wakeup_at_commit = false;
	if (event != XACT_EVENT_COMMIT || !es_wakeup_at_commit)
		return;
	es_wakeup_at_commit = false;
	if (es_relay == NULL)
		return;

	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	{
		EsRelayDb  *entry = es_relay_entry(MyDatabaseId, true);

		if (entry != NULL && entry->pid != 0 && entry->latch != NULL)
			SetLatch(entry->latch);
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
}

/* eventstore._relay_wakeup(): the install script calls it so the new database is served. */
Datum
eventstore_relay_wakeup(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	es_relay_wakeup_at_commit();
	PG_RETURN_VOID();
}

/* Count published rows and remember the last error for relay_status. */
void
es_relay_report(int published, const char *error)
{
	EsRelayDb  *entry;

	if (es_relay == NULL)
		return;
	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	entry = es_my_entry ? es_my_entry : es_relay_entry(MyDatabaseId, true);
	if (entry != NULL)
	{
		entry->published += published;
		if (error != NULL)
		{
			strlcpy(entry->last_error, error, ES_RELAY_ERRLEN);
			entry->last_error_at = GetCurrentTimestamp();
		}
	}
	LWLockRelease(es_relay->lock);
}

static void
es_relay_set_state(const char *state)
{
	if (es_my_entry == NULL)
		return;
	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	strlcpy(es_my_entry->state, state, sizeof(es_my_entry->state));
	LWLockRelease(es_relay->lock);
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
static bool
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
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("eventstore: could not start a relay worker for database \"%s\"", db->name),
				 errhint("Raise max_worker_processes; the launcher tries again at its next scan.")));
		return false;
	}
	return true;
}

/*
 * Start the workers that should run and do not, and forget the entries of
 * databases that no longer exist.
 */
static void
es_launcher_scan(MemoryContext scratch, bool full)
{
	List	   *dbs;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	MemoryContextReset(scratch);
	dbs = es_list_databases(scratch);

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
	LWLockRelease(es_relay->lock);

	foreach(lc, dbs)
	{
		EsDbInfo   *db = lfirst(lc);
		EsRelayDb  *entry;
		bool		start = false;

		if (!es_relay_wanted(db->name))
			continue;
		LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
		entry = es_relay_entry(db->oid, true);
		if (entry != NULL && entry->pid == 0)
		{
			if (entry->requested || !entry->probed)
				start = true;
			else if (entry->exit_reason == ES_EXIT_DROPPING)
				start = TimestampDifferenceExceeds(entry->exited_at, now, ES_RETRY_DROP_MS);
			else if (entry->exit_reason == ES_EXIT_NOT_WANTED)
				start = full;
			else if (entry->exit_reason == ES_EXIT_NONE)
				start = true;	/* exited without saying why */
			if (start)
			{
				entry->requested = false;
				entry->probed = true;
				/* the worker sets pid; mark it starting meanwhile */
				entry->pid = -1;
				entry->started_at = now;
				strlcpy(entry->state, "starting", sizeof(entry->state));
			}
		}
		LWLockRelease(es_relay->lock);
		if (start && !es_start_worker(db))
		{
			LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
			if (entry->pid == -1)
			{
				entry->pid = 0;
				entry->requested = true;
				strlcpy(entry->state, "waiting for a worker slot", sizeof(entry->state));
			}
			LWLockRelease(es_relay->lock);
		}
	}
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

/* ---------- a database's worker ---------- */

static void
es_worker_detach(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (es_my_entry == NULL)
		return;
	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	if (es_my_entry->pid == MyProcPid)
	{
		es_my_entry->pid = 0;
		es_my_entry->latch = NULL;
		es_my_entry->exited_at = GetCurrentTimestamp();
		if (es_my_entry->exit_reason == ES_EXIT_NONE)
			strlcpy(es_my_entry->state, "exited", sizeof(es_my_entry->state));
	}
	LWLockRelease(es_relay->lock);
	if (es_relay->launcher_latch != NULL)
		SetLatch(es_relay->launcher_latch);
}

static void pg_attribute_noreturn()
es_worker_exit(EsRelayExit reason, const char *state)
{
	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	es_my_entry->exit_reason = reason;
	strlcpy(es_my_entry->state, state, sizeof(es_my_entry->state));
	LWLockRelease(es_relay->lock);
	proc_exit(0);
}

/* Is DROP DATABASE (or another exclusive locker) waiting for this database? */
static bool
es_database_drop_pending(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	if (LockAcquire(&tag, AccessShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, AccessShareLock, false);
	return false;
}

/* One pass in its own transaction; returns rows published, -1 after an error. */
static int
es_worker_pass(void)
{
	static TimestampTz last_prune = 0;
	bool		prune_due = TimestampDifferenceExceeds(last_prune, GetCurrentTimestamp(),
													   ES_PRUNE_MS);
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile int published = 0;
	volatile bool leave = false;
	volatile EsRelayExit reason = ES_EXIT_NONE;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		XactIsoLevel = XACT_READ_COMMITTED;
		PushActiveSnapshot(GetTransactionSnapshot());
		if (es_database_drop_pending())
		{
			leave = true;
			reason = ES_EXIT_DROPPING;
		}
		else if (!OidIsValid(get_extension_oid("eventstore", true)) ||
				 !OidIsValid(get_relname_relid("outbox", get_namespace_oid("eventstore", true))))
		{
			leave = true;
			reason = ES_EXIT_NO_EXTENSION;
		}
		else
		{
			pgstat_report_activity(STATE_RUNNING, "eventstore relay pass");
			published = es_relay_pass(es_relay_batch_size, prune_due);
			if (prune_due)
				last_prune = GetCurrentTimestamp();
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		/* The worker's top level: report, clean up, carry on after a nap. */
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("eventstore relay pass failed: %s", edata->message)));
		es_relay_report(0, edata->message);
		FreeErrorData(edata);
		pgstat_report_activity(STATE_IDLE, NULL);
		return -1;
	}
	PG_END_TRY();

	if (leave)
		es_worker_exit(reason, reason == ES_EXIT_DROPPING ? "left: database dropping"
					   : "left: no extension");
	es_relay_report(published, NULL);
	return published;
}

void
eventstore_relay_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	TimestampTz last_pass = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("eventstore relay");

	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	es_my_entry = es_relay_entry(dbid, true);
	if (es_my_entry == NULL || (es_my_entry->pid > 0 && es_my_entry->pid != MyProcPid &&
								kill(es_my_entry->pid, 0) == 0))
	{
		LWLockRelease(es_relay->lock);
		es_my_entry = NULL;
		proc_exit(0);			/* another worker serves this database */
	}
	es_my_entry->pid = MyProcPid;
	es_my_entry->latch = MyLatch;
	es_my_entry->exit_reason = ES_EXIT_NONE;
	es_my_entry->probed = true;
	strlcpy(es_my_entry->state, "idle", sizeof(es_my_entry->state));
	LWLockRelease(es_relay->lock);
	before_shmem_exit(es_worker_detach, (Datum) 0);

	/* The launcher may have started us before it saw a new relay_databases. */
	{
		char	   *dbname;
		bool		wanted;

		StartTransactionCommand();
		dbname = get_database_name(MyDatabaseId);
		wanted = dbname == NULL || es_relay_wanted(dbname);
		CommitTransactionCommand();
		if (!wanted)
			es_worker_exit(ES_EXIT_NOT_WANTED, "left: not in relay_databases");
	}

	for (;;)
	{
		int			published = 0;
		TimestampTz now;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			char	   *dbname;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			StartTransactionCommand();
			dbname = get_database_name(MyDatabaseId);
			if (dbname != NULL && !es_relay_wanted(dbname))
			{
				CommitTransactionCommand();
				es_worker_exit(ES_EXIT_NOT_WANTED, "left: not in relay_databases");
			}
			CommitTransactionCommand();
		}

		if (RecoveryInProgress())
			es_relay_set_state("idle: standby");
		else
		{
			es_relay_set_state("publishing");
			published = es_worker_pass();
			last_pass = GetCurrentTimestamp();
			es_relay_set_state(published < 0 ? "idle: after error" : "idle");
		}

		/* A full batch: there may be more, go again at once. */
		if (published >= es_relay_batch_size)
			continue;

		/*
		 * Sleep until woken, the naptime passes, or it is time to look for a
		 * pending DROP DATABASE.
		 */
		for (;;)
		{
			int			rc;

			now = GetCurrentTimestamp();
			wait_ms = es_relay_naptime - (long) (TimestampDifferenceMilliseconds(last_pass, now));
			if (wait_ms <= 0)
				break;
			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   Min(wait_ms, ES_DROP_POLL_MS), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if ((rc & WL_LATCH_SET) || ConfigReloadPending)
				break;
			if (!RecoveryInProgress())
			{
				bool		dropping;

				StartTransactionCommand();
				dropping = es_database_drop_pending();
				CommitTransactionCommand();
				if (dropping)
					es_worker_exit(ES_EXIT_DROPPING, "left: database dropping");
			}
		}
	}
}

/* ---------- eventstore.relay_status() ---------- */

/*
 * One row per database the relay knows: worker pid, state, rows published
 * since the server started, and the last error.  Pending count and the age
 * of the oldest pending row are filled in for the current database only
 * (other databases' tables are out of reach).
 */
Datum
eventstore_relay_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		pending = 0;
	Datum		oldest_age = (Datum) 0;
	bool		age_null = true;
	bool		seen_self = false;
	EsRelayDb	copy[ES_RELAY_MAX_DBS];
	int			ncopy = 0;

	InitMaterializedSRF(fcinfo, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "eventstore: SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.count(*), pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(o.created_at)"
					" FROM eventstore.outbox o WHERE o.id OPERATOR(pg_catalog.>)"
					" (SELECT s.last_published_id FROM eventstore.relay_state s)", true, 0) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;

		pending = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		oldest_age = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &age_null);
		if (!age_null)
			oldest_age = datumCopy(oldest_age, false, 16);
	}

	if (es_relay != NULL)
	{
		LWLockAcquire(es_relay->lock, LW_SHARED);
		for (int i = 0; i < ES_RELAY_MAX_DBS; i++)
			if (es_relay->dbs[i].dbid != InvalidOid)
				copy[ncopy++] = es_relay->dbs[i];
		LWLockRelease(es_relay->lock);
	}

	for (int i = 0; i <= ncopy; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};
		EsRelayDb  *e = i < ncopy ? &copy[i] : NULL;
		Oid			dbid = e ? e->dbid : MyDatabaseId;
		char	   *dbname;

		if (e == NULL && seen_self)
			break;
		if (dbid == MyDatabaseId)
			seen_self = true;
		dbname = get_database_name(dbid);
		if (dbname == NULL)
			continue;			/* dropped since */
		values[0] = CStringGetTextDatum(dbname);
		if (e && e->pid > 0)
			values[1] = Int32GetDatum(e->pid);
		else
			nulls[1] = true;
		values[2] = CStringGetTextDatum(e ? e->state : (es_relay ? "not started" : "no worker: not preloaded"));
		values[3] = Int64GetDatum(e ? (int64) e->published : 0);
		if (dbid == MyDatabaseId)
		{
			values[4] = Int64GetDatum(pending);
			values[5] = oldest_age;
			nulls[5] = age_null;
		}
		else
			nulls[4] = nulls[5] = true;
		if (e && e->last_error[0] != '\0')
		{
			values[6] = CStringGetTextDatum(e->last_error);
			values[7] = TimestampTzGetDatum(e->last_error_at);
		}
		else
			nulls[6] = nulls[7] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
