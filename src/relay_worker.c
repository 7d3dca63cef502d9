/*
 * relay_worker.c
 *		A database's relay worker, started by the launcher (relay_launcher.c):
 *		it runs relay passes (relay.c) when a commit wakes it or the naptime
 *		passes.  Also eventstore.relay_status().
 *
 * A worker exits cleanly, recording why, when its database lacks the
 * extension, is being dropped (it polls for DROP DATABASE's lock at least
 * once a second, so it never blocks the drop), or is no longer listed in
 * relay_databases.  A pass that fails is logged, recorded as last_error and
 * retried after the naptime.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
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
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "eventstore.h"

#include "relay_shared.h"

PG_FUNCTION_INFO_V1(eventstore_relay_status);

EsRelayDb  *es_my_entry = NULL;	/* in a worker: its entry */

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

/*
 * In a PG_CATCH of the worker: abort the transaction and log the error;
 * that of a relay pass or wake pass (what) is also recorded as last_error,
 * that of the purge of store is not (what NULL).
 */
static void
es_worker_failed(MemoryContext cxt, const char *what, Oid store)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	if (what == NULL)
		ereport(LOG,
				(errmsg("eventstore purge of store %u failed: %s", store, edata->message)));
	else
	{
		ereport(LOG,
				(errmsg("eventstore relay %s failed: %s", what, edata->message)));
		es_relay_report(0, edata->message);
	}
	FreeErrorData(edata);
}

/*
 * The physical purge of what the stores' lifecycle hides (lifecycle.c), one
 * batch of eventstore.purge_batch_size events per store that has lifecycle
 * rows, each in its own transaction: purge() takes no stream lock and no
 * position, so appends and readers do not wait for it.  An error is logged
 * and the next store is tried; publishing is never held up by it.
 *
 * Paced like autovacuum's cost delay: while a batch comes back full, the
 * next one is due eventstore.purge_delay after this one ended; once every
 * store is drained, after ES_PRUNE_MS.  The worker sleeps on its latch in
 * between and relays as usual; a commit's wake-up does not bring the next
 * batch forward (es_purge_next is a time, not a flag).
 */
static TimestampTz es_purge_next = 0;

static bool
es_worker_purge(void)
{
	List	   *volatile stores = NIL;
	volatile bool more = false;
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (OidIsValid(get_relname_relid("stream_lifecycle", get_namespace_oid("eventstore", true))))
		{
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "eventstore: SPI_connect failed");
			if (SPI_execute("SELECT DISTINCT l.store::pg_catalog.oid FROM eventstore.stream_lifecycle l",
							true, 0) == SPI_OK_SELECT)
			{
				MemoryContext old = MemoryContextSwitchTo(cxt);

				for (uint64 i = 0; i < SPI_processed; i++)
				{
					bool		isnull;
					Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

					if (!isnull)
						stores = lappend_oid(stores, DatumGetObjectId(d));
				}
				MemoryContextSwitchTo(old);
			}
			SPI_finish();
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		AbortCurrentTransaction();
		return false;
	}
	PG_END_TRY();

	foreach(lc, stores)
	{
		Oid			store = lfirst_oid(lc);

		PG_TRY();
		{
			Oid			argtypes[2] = {INT4OID, OIDOID};
			Datum		values[2] = {Int32GetDatum(es_purge_batch_size), ObjectIdGetDatum(store)};
			int64		purged = 0;

			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, "eventstore purge");
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "eventstore: SPI_connect failed");
			if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(store)))
			{
				bool		isnull;

				if (SPI_execute_with_args("SELECT eventstore.purge($1, $2::pg_catalog.regclass)",
										  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT ||
					SPI_processed != 1)
					elog(ERROR, "eventstore: purge failed");
				purged = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			}
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			pgstat_report_activity(STATE_IDLE, NULL);
			if (purged >= es_purge_batch_size)
				more = true;
			elog(DEBUG1, "eventstore purge: " INT64_FORMAT " events of store %u", purged, store);
		}
		PG_CATCH();
		{
			es_worker_failed(cxt, NULL, store);
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		PG_END_TRY();
	}
	list_free(stores);
	return more;
}

/* Milliseconds until the next purge batch is due (0: now, -1: purge off). */
static long
es_purge_wait_ms(void)
{
	if (!es_relay_purge || RecoveryInProgress())
		return -1;
	return Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), es_purge_next), 0);
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
		es_worker_failed(oldcxt, "pass", InvalidOid);
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

/* Run a purge batch per store if one is due (es_worker_purge). */
static void
es_worker_purge_if_due(void)
{
	if (es_purge_wait_ms() == 0)
	{
		bool		more = es_worker_purge();

		es_purge_next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													more ? es_purge_delay : ES_PRUNE_MS);
	}
}

/*
 * A wake pass, in its own transaction: notify the subscriptions that
 * commits signalled up to the log horizon (es_subscriptions_wake_pass):
 * no SQL, no write.  NOTIFY takes a transaction id, so a pass that
 * notified writes a commit record, and only that: PostgreSQL commits a
 * transaction that wrote no other WAL without flushing it, whatever
 * synchronous_commit says.  The passes that read the outbox and publish
 * the log horizon still run when a commit with outbox rows wakes the
 * worker, and every naptime.  An error
 * is logged; the slots it fired are signalled again (es_relay_xact).
 * Like a full pass, it leaves when DROP DATABASE waits for it.
 */
static void
es_worker_wake_pass(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool dropping = false;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		XactIsoLevel = XACT_READ_COMMITTED;
		PushActiveSnapshot(GetTransactionSnapshot());
		dropping = es_database_drop_pending();
		if (!dropping && OidIsValid(get_namespace_oid("eventstore", true)))
			(void) es_subscriptions_wake_pass();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		es_worker_failed(oldcxt, "wake pass", InvalidOid);
	}
	PG_END_TRY();
	if (dropping)
		es_worker_exit(ES_EXIT_DROPPING, "left: database dropping");
}

/*
 * Give the slot to a database waiting for one (relay_launcher.c explains
 * the turns): after ES_YIELD_IDLE_MS without publishing, or, busy, after
 * holding the slot for ES_YIELD_BUSY_MS, in which case this database queues
 * again at once, among the databases that have work.  Exits, or returns.
 */
static TimestampTz es_yield_checked = 0;

static void
es_worker_maybe_yield(TimestampTz last_work)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		idle = TimestampDifferenceExceeds(last_work, now, ES_YIELD_IDLE_MS);
	bool		busy_long = TimestampDifferenceExceeds(es_my_entry->started_at, now, ES_YIELD_BUSY_MS);
	bool		someone_waits = false;

	if (!idle && !busy_long)
		return;
	/*
	 * Looking for a waiting database reads every entry: at most every
	 * ES_YIELD_CHECK_MS, not after each wake pass (every 5 ms under appends
	 * matching a subscription, it was a tenth of the worker's CPU time).
	 */
	if (!TimestampDifferenceExceeds(es_yield_checked, now, ES_YIELD_CHECK_MS))
		return;
	es_yield_checked = now;
	LWLockAcquire(es_relay->lock, LW_EXCLUSIVE);
	for (int i = 0; i < ES_RELAY_MAX_DBS && !someone_waits; i++)
	{
		EsRelayDb  *e = &es_relay->dbs[i];

		someone_waits = e != es_my_entry && e->dbid != InvalidOid && e->pid == 0 &&
			e->waiting_since != 0;
	}
	/* idle, but a commit has just set our latch: there is work after all */
	if (!someone_waits || (idle && MyLatch->is_set))
	{
		LWLockRelease(es_relay->lock);
		return;
	}
	/*
	 * Detach here, under the lock: a commit from now on finds no worker and
	 * asks the launcher for one, so no wake-up is lost.
	 */
	es_my_entry->pid = 0;
	es_my_entry->latch = NULL;
	es_my_entry->exited_at = now;
	es_my_entry->exit_reason = ES_EXIT_YIELDED;
	if (idle)
		strlcpy(es_my_entry->state, "idle: slot yielded", sizeof(es_my_entry->state));
	else
	{
		es_my_entry->requested = true;
		es_my_entry->waiting_since = now;
		strlcpy(es_my_entry->state, "waiting for a worker slot", sizeof(es_my_entry->state));
	}
	LWLockRelease(es_relay->lock);
	proc_exit(0);
}

void
eventstore_relay_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	TimestampTz last_pass = 0;	/* the last pass of either kind */
	TimestampTz last_full = 0;	/* the last pass that read the outbox */
	TimestampTz last_work;
	bool		wake_only = false;	/* the next pass: a wake pass if nothing else is due */
	long		wake_retry_ms = 0;	/* a subscription's event above the horizon: pass again soon */

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
	es_my_entry->waiting_since = 0;
	es_my_entry->started_at = GetCurrentTimestamp();
	strlcpy(es_my_entry->state, "idle", sizeof(es_my_entry->state));
	LWLockRelease(es_relay->lock);
	before_shmem_exit(es_worker_detach, (Datum) 0);
	last_work = GetCurrentTimestamp();

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
			bool		purge_was_on = es_relay_purge;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* the purge just switched on: its first batch is due now */
			if (es_relay_purge && !purge_was_on)
				es_purge_next = 0;
			StartTransactionCommand();
			dbname = get_database_name(MyDatabaseId);
			if (dbname != NULL && !es_relay_wanted(dbname))
			{
				CommitTransactionCommand();
				es_worker_exit(ES_EXIT_NOT_WANTED, "left: not in relay_databases");
			}
			CommitTransactionCommand();
			wake_only = false;
		}

		if (RecoveryInProgress())
			es_relay_set_state("idle: standby");
		else if (wake_only && !es_relay_outbox_woken(false) &&
				 !TimestampDifferenceExceeds(last_full, GetCurrentTimestamp(), es_relay_naptime))
		{
			/* woken for subscriptions only, and the naptime has not passed */
			es_worker_wake_pass();
			last_pass = GetCurrentTimestamp();
		}
		else
		{
			es_relay_set_state("publishing");
			(void) es_relay_outbox_woken(true);
			published = es_worker_pass();
			last_pass = last_full = GetCurrentTimestamp();
			es_relay_set_state(published < 0 ? "idle: after error" : "idle");
		}
		es_worker_purge_if_due();
		wake_only = false;

		if (published > 0)
			last_work = GetCurrentTimestamp();
		/* A full batch: there may be more, go again at once. */
		if (published >= es_relay_batch_size)
		{
			es_worker_maybe_yield(last_work);
			continue;
		}
		es_worker_maybe_yield(last_work);

		/*
		 * An append matching a subscription committed above the horizon this
		 * pass published (a lower position was still in flight): pass again
		 * after 1, 2, 4 ... ms, at most ES_WAKE_RETRY_MAX_MS, until the
		 * horizon passes it.  The commit that settles the lower position need
		 * not wake us: it may match no subscription and write no outbox row.
		 */
		if (published >= 0 && es_relay_wake_pending(es_relay_log_horizon))
			wake_retry_ms = wake_retry_ms == 0 ? 1 : Min(wake_retry_ms * 2, ES_WAKE_RETRY_MAX_MS);
		else
			wake_retry_ms = 0;

		/*
		 * Sleep until woken, the naptime passes, the next purge batch is due,
		 * or it is time to look for a pending DROP DATABASE.  Woken by a
		 * commit or the retry above, the next pass is a wake pass (unless
		 * the commit wrote outbox rows or the naptime is up).
		 */
		for (;;)
		{
			int			rc;
			long		purge_ms = es_purge_wait_ms();

			now = GetCurrentTimestamp();
			wait_ms = es_relay_naptime - (long) (TimestampDifferenceMilliseconds(last_full, now));
			if (wake_retry_ms > 0)
			{
				long		retry_ms = wake_retry_ms - (long) TimestampDifferenceMilliseconds(last_pass, now);

				if (retry_ms <= 0)
				{
					wake_only = true;
					break;
				}
				wait_ms = Min(wait_ms, retry_ms);
			}
			if (purge_ms >= 0)
				wait_ms = Min(wait_ms, purge_ms);
			if (wait_ms <= 0)
				break;
			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   Min(wait_ms, ES_DROP_POLL_MS), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
				break;
			if (rc & WL_LATCH_SET)
			{
				/*
				 * Woken by appends for subscriptions only: at most one pass
				 * every ES_WAKE_MIN_INTERVAL_MS, so that a stream of small
				 * commits costs the worker a pass per interval, not one per
				 * commit; outbox rows are published at once, as before.
				 */
				long		since = (long) TimestampDifferenceMilliseconds(last_pass, GetCurrentTimestamp());

				if (since < ES_WAKE_MIN_INTERVAL_MS && !es_relay_outbox_woken(false))
					(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									 ES_WAKE_MIN_INTERVAL_MS - since, PG_WAIT_EXTENSION);
				wake_only = true;
				break;
			}
			es_worker_maybe_yield(last_work);
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
 * since the server started, the last error, and since when it has waited
 * for a background worker slot.  Pending count and the age of the oldest
 * pending row are filled in for the current database only (other
 * databases' tables are out of reach).  The current database always has a
 * row, saying why it has no worker if it has none.
 */
Datum
eventstore_relay_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		pending = 0;
	Datum		oldest_age = (Datum) 0;
	bool		age_null = true;
	bool		seen_self = false;
	EsRelayDb  *copy = palloc(sizeof(EsRelayDb) * ES_RELAY_MAX_DBS);
	int			ncopy = 0;
	bool		table_full = true;

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
			else
				table_full = false;
		LWLockRelease(es_relay->lock);
	}

	for (int i = 0; i <= ncopy; i++)
	{
		Datum		values[9];
		bool		nulls[9] = {0};
		EsRelayDb  *e = i < ncopy ? &copy[i] : NULL;
		const char *state;
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
		if (e != NULL)
			state = e->state;
		else if (es_relay == NULL)
			state = "no worker: not preloaded";
		else if (!es_relay_wanted(dbname))
			state = "no worker: not in relay_databases";
		else if (table_full)
			state = "no worker: relay table full";
		else
			state = "not started";
		values[2] = CStringGetTextDatum(state);
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
		/* waiting_since: absent from the function of a schema before 0.5.0 */
		if (e && e->pid <= 0 && e->waiting_since != 0)
			values[8] = TimestampTzGetDatum(e->waiting_since);
		else
			nulls[8] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
